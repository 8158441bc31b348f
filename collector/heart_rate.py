"""Heart Rate Measurement (GATT characteristic 0x2A37): parse the bytes a strap notifies.

Bluetooth SIG, Heart Rate Service 1.0 (HRS_SPEC_V10) and the GATT Specification Supplement,
section "Heart Rate Measurement": byte 0 is a flags field,
- bit 0: heart rate value format, 0 = uint8, 1 = uint16 (bpm);
- bits 1-2: sensor contact status, 0 or 1 = not supported, 2 = supported but not detected,
  3 = supported and detected;
- bit 3: energy expended present (uint16, kilojoules, accumulated since the last reset);
- bit 4: RR intervals present: "one or more RR-Interval values are present" (uint16, unit
  1/1024 s, oldest first; the characteristic definition of the flags field). A payload whose
  bit 4 is set but which carries no whole RR value is malformed, like one whose bit 3
  announces an energy field that is not there.
All multi-byte fields are little-endian. RR values are kept at full precision (raw 1/1024 s
and exact milliseconds), never rounded to whole milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTACT = {0: "not_supported", 1: "not_supported", 2: "supported_not_detected", 3: "supported_detected"}
# RR intervals outside this range cannot be a single heartbeat (300 bpm .. 20 bpm).
MIN_RR_MS = 200.0
MAX_RR_MS = 3000.0
# The heart rates of those intervals: a reported heart rate outside them is no measurement (many
# straps report 0 while they cannot measure, e.g. before they sit on the skin).
MIN_HR_BPM = 60000.0 / MAX_RR_MS
MAX_HR_BPM = 60000.0 / MIN_RR_MS


class MalformedMeasurement(ValueError):
    """The bytes are not a Heart Rate Measurement (too short for what the flags announce)."""


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One decoded notification. `trailing_bytes` counts bytes after the last whole RR value
    (a truncated payload); `rejected_rr` holds raw RR values outside 200-3000 ms."""

    flags: int
    hr_bpm: int
    contact: str
    energy_kj: int | None
    rr_raw: tuple[int, ...]
    trailing_bytes: int = 0
    rejected_rr: tuple[int, ...] = ()

    @property
    def rr_ms(self) -> tuple[float, ...]:
        return tuple(r * 1000.0 / 1024.0 for r in self.rr_raw)

    @property
    def has_contact(self) -> bool:
        """False only when the strap says it supports contact detection and has none."""
        return self.contact != "supported_not_detected"

    @property
    def malformed(self) -> bool:
        return bool(self.trailing_bytes or self.rejected_rr)


def parse(data: bytes | bytearray) -> HeartRateMeasurement:
    """Decode a 0x2A37 value. Raises MalformedMeasurement (and nothing else) on bad input."""
    data = bytes(data)
    if len(data) < 2:
        raise MalformedMeasurement(f"{len(data)} byte(s); a measurement has at least 2")
    flags = data[0]
    pos = 1
    if flags & 0x01:
        if len(data) < 3:
            raise MalformedMeasurement("flags announce a 16-bit heart rate but only 1 byte follows")
        hr = data[1] | (data[2] << 8)
        pos = 3
    else:
        hr = data[1]
        pos = 2
    energy = None
    if flags & 0x08:
        if len(data) < pos + 2:
            raise MalformedMeasurement("flags announce energy expended but the payload ends before it")
        energy = data[pos] | (data[pos + 1] << 8)
        pos += 2
    rr: list[int] = []
    rejected: list[int] = []
    trailing = 0
    if flags & 0x10:
        body = data[pos:]
        if len(body) < 2:
            raise MalformedMeasurement("flags announce RR intervals but the payload ends before the first")
        trailing = len(body) % 2
        for i in range(0, len(body) - trailing, 2):
            raw = body[i] | (body[i + 1] << 8)
            if MIN_RR_MS <= raw * 1000.0 / 1024.0 <= MAX_RR_MS:
                rr.append(raw)
            else:
                rejected.append(raw)
    else:
        trailing = len(data) - pos
    return HeartRateMeasurement(
        flags, hr, CONTACT[(flags >> 1) & 0x03], energy, tuple(rr), trailing, tuple(rejected)
    )
