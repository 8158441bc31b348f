"""RSC Measurement (GATT characteristic 0x2A53 of the Running Speed and Cadence service 0x1814): parse
what a foot pod (Stryd, Polar Stride, ...) notifies (pure).

Bluetooth SIG, Running Speed and Cadence Service 1.0 and the GATT Specification Supplement,
"RSC Measurement": byte 0 is a flags field,
- bit 0: instantaneous stride length present (uint16, 1/100 m);
- bit 1: total distance present (uint32, 1/10 m);
- bit 2: walking (0) or running (1);
then instantaneous speed (uint16, 1/256 m/s) and instantaneous cadence (uint8, 1/min: foot
falls, i.e. steps per minute), then the optional fields in that order. Little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.events import Motion, MotionKind

RSC_SERVICE = "00001814-0000-1000-8000-00805f9b34fb"
RSC_MEASUREMENT = "00002a53-0000-1000-8000-00805f9b34fb"


class MalformedRsc(ValueError):
    """The bytes are shorter than the flags announce."""


@dataclass(frozen=True, slots=True)
class RscMeasurement:
    speed_m_s: float
    cadence_spm: int
    running: bool
    stride_m: float | None = None
    distance_m: float | None = None


def parse(data: bytes | bytearray) -> RscMeasurement:
    """Decode a 0x2A53 value. Raises MalformedRsc (and nothing else) on bad input."""
    data = bytes(data)
    flags = data[0] if data else 0
    need = 4 + (2 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
    if len(data) < need:
        raise MalformedRsc(f"{len(data)} byte(s); flags {flags:#04x} announce {need}")
    speed = int.from_bytes(data[1:3], "little") / 256.0
    pos = 4
    stride = distance = None
    if flags & 0x01:
        stride = int.from_bytes(data[pos : pos + 2], "little") / 100.0
        pos += 2
    if flags & 0x02:
        distance = int.from_bytes(data[pos : pos + 4], "little") / 10.0
    return RscMeasurement(speed, data[3], bool(flags & 0x04), stride, distance)


def motion(m: RscMeasurement, person: str, device: str, t: float, span_s: float) -> Motion:
    """What a foot pod's measurement says: standing (no speed, no cadence) is still, otherwise
    walking or running as its flag says."""
    if m.speed_m_s == 0 and m.cadence_spm == 0:
        kind = MotionKind.STILL
    else:
        kind = MotionKind.RUNNING if m.running else MotionKind.WALKING
    return Motion(
        person, device, t, kind, span_s, cadence_spm=float(m.cadence_spm), speed_m_s=m.speed_m_s, source="rsc"
    )
