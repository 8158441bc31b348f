"""Polar Measurement Data (PMD): the bytes of the accelerometer stream of Polar straps (pure).

Primary source: Polar Electro, "Polar Measurement Data", technical_documentation/
online_measurement.pdf of polarofficial/polar-ble-sdk (version 1.0, August 2024), with its byte
examples (sections 5.2-5.4: an H10's ACC settings response, start request, first data frame and
stop). The control-point status codes are not in that document; they are the SDK's
`PmdControlPointResponse.PmdControlPointResponseCode` (same repository, sources/Android/...
/pmd/PmdControlPointResponse.kt), and the delta-frame details the document leaves open (bit
order, the G units of compressed type-0 frames) follow the SDK's `BlePMDClient.parseDeltaFramesAll`
and `AccData`. bleakheart's `_decode_acc_data` was read as an independent check, not copied.

- Service FB005C80-02E7-F387-1CAD-8ACD2D8DF0C8; control point ...5C81... (read: the features;
  write + indicate: commands and their responses); data ...5C82... (notify: frames).
- Commands: [op, measurement type, settings...]; op 0x01 get measurement settings, 0x02 start,
  0x03 stop; type ACC = 0x02 (ECG 0x00, PPG 0x01, PPI 0x03, GYRO 0x05, ...). For an online
  measurement the type byte is (recording type 0 << 7) | type.
- A response: 0xF0, op, type, status (0 = success, see `Status`), more-frames flag, then
  parameters: settings as (setting type, count, count values), type 0 sample rate (uint16 Hz),
  1 resolution (uint16 bits), 2 range (uint16, +-G), 4 channels (uint8), 5 conversion factor
  (float32); multi-byte values little-endian. The H10's ACC answer: sample rates 25, 50, 100,
  200 Hz, resolution 16, ranges 2, 4, 8 G.
- The control point read: 0x0F, then a bit field of the measurement types supported (bit n =
  type n: an H10 has ECG and ACC, 0x05).
- A data frame: byte 0 measurement type (low 6 bits), bytes 1-8 the time of the frame's LAST
  sample in ns since 2000-01-01T00:00:00 UTC (uint64), byte 9 the frame type (low 7 bits; bit
  0x80 = delta compressed), then samples. ACC frame type 0: int8 x, y, z; type 1: int16 (the
  H10); type 2: int24; all in mG, times the conversion factor when the device gives one.
- Delta compressed frames: a reference sample (channels x ceil(resolution / 8) bytes, signed),
  then blocks of [delta width in bits, sample count, count x channels deltas packed
  least-significant bit first]; each sample is the previous plus its deltas.

Our choices (labelled): the sensor clock only spaces the samples; the link maps it onto the
host clock (collector/ble.py), because a strap's clock need not be set to real time.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from enum import IntEnum

PMD_SERVICE = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

ACC = 0x02
OP_GET_SETTINGS = 0x01
OP_START = 0x02
OP_STOP = 0x03
RESPONSE = 0xF0
FEATURES = 0x0F
# 2000-01-01T00:00:00 UTC, the epoch of PMD timestamps, as unix seconds.
PMD_EPOCH_UNIX = 946_684_800

SAMPLE_RATE, RESOLUTION, RANGE, CHANNELS, FACTOR = 0, 1, 2, 4, 5
_SETTING_SIZE = {SAMPLE_RATE: 2, RESOLUTION: 2, RANGE: 2, CHANNELS: 1, FACTOR: 4}
OPS = {OP_GET_SETTINGS: "get settings", OP_START: "start", OP_STOP: "stop"}


class Status(IntEnum):
    """Control-point response status (the SDK's PmdControlPointResponseCode)."""

    SUCCESS = 0
    INVALID_OP_CODE = 1
    INVALID_MEASUREMENT_TYPE = 2
    NOT_SUPPORTED = 3
    INVALID_LENGTH = 4
    INVALID_PARAMETER = 5
    ALREADY_IN_STATE = 6
    INVALID_RESOLUTION = 7
    INVALID_SAMPLE_RATE = 8
    INVALID_RANGE = 9
    INVALID_MTU = 10
    INVALID_NUMBER_OF_CHANNELS = 11
    INVALID_STATE = 12
    DEVICE_IN_CHARGER = 13
    DISK_FULL = 14


class PmdError(ValueError):
    """Bytes that are not what the PMD document describes; the message says what is wrong."""


def status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return f"status {code} (not documented)"


def supported_types(data: bytes | bytearray) -> frozenset[int]:
    """The measurement types a control-point read announces (0x0F, then bit n = type n)."""
    data = bytes(data)
    if len(data) < 2 or data[0] != FEATURES:
        raise PmdError(f"control point read {data.hex(' ')!r} does not start with 0x0f")
    return frozenset(8 * (k - 1) + bit for k in range(1, len(data)) for bit in range(8) if data[k] >> bit & 1)


@dataclass(frozen=True, slots=True)
class Response:
    """A control-point response. `params` holds the parameters (settings) after the header."""

    op: int
    measurement_type: int
    status: int
    more: bool
    params: bytes

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS

    def describe(self) -> str:
        return f"{OPS.get(self.op, f'op {self.op:#04x}')}: {status_name(self.status)}"


def parse_response(data: bytes | bytearray) -> Response:
    """Decode a control-point response (0xF0 op type status [more params...])."""
    data = bytes(data)
    if len(data) < 4 or data[0] != RESPONSE:
        raise PmdError(f"{data.hex(' ')!r} is not a control point response (0xf0 op type status ...)")
    more = len(data) > 4 and data[4] != 0
    return Response(data[1], data[2], data[3], more, data[5:] if data[3] == Status.SUCCESS else b"")


@dataclass(frozen=True)
class Settings:
    """Measurement settings: the values a device offers (get settings) or uses (start)."""

    values: dict[int, tuple[float, ...]] = field(default_factory=dict)

    def get(self, setting: int) -> tuple[float, ...]:
        return self.values.get(setting, ())

    @property
    def factor(self) -> float:
        f = self.get(FACTOR)
        return f[0] if f else 1.0


def parse_settings(params: bytes, strict: bool = True) -> Settings:
    """Settings as (type, count, values...). `strict=False` stops quietly at anything else, as
    in a start response, whose parameters may be a reserved byte (the H10 sends 0x01)."""
    out: dict[int, tuple[float, ...]] = {}
    pos = 0
    while pos < len(params):
        kind = params[pos]
        size = _SETTING_SIZE.get(kind)
        if size is None or pos + 1 >= len(params):
            if not strict:
                break
            raise PmdError(f"setting type {kind} at byte {pos} is not one the document describes")
        count = params[pos + 1]
        end = pos + 2 + count * size
        if end > len(params):
            if not strict:
                break
            raise PmdError(f"setting type {kind} announces {count} values but the response ends")
        raw = params[pos + 2 : end]
        if kind == FACTOR:
            vals = struct.unpack(f"<{count}f", raw)
        else:
            vals = tuple(int.from_bytes(raw[i : i + size], "little") for i in range(0, len(raw), size))
        out[kind] = tuple(vals)
        pos = end
    return Settings(out)


def get_settings_command(measurement_type: int = ACC) -> bytes:
    return bytes([OP_GET_SETTINGS, measurement_type])


def stop_command(measurement_type: int = ACC) -> bytes:
    return bytes([OP_STOP, measurement_type])


def start_command(chosen: Settings, measurement_type: int = ACC) -> bytes:
    """Start an online measurement with one value per setting (the document's section 5.3)."""
    out = bytearray([OP_START, (0 << 7) | measurement_type])
    for kind in (RANGE, SAMPLE_RATE, RESOLUTION, CHANNELS):
        vals = chosen.get(kind)
        if vals:
            out += bytes([kind, 1]) + int(vals[0]).to_bytes(_SETTING_SIZE[kind], "little")
    return bytes(out)


# Ours: the lowest rate that still resolves steps. Step cadence is at most ~3.5 Hz (200
# steps/min), whose impacts need >= 10 samples a second; 25 Hz is the H10's lowest offer and
# leaves the harmonics of running impacts some room. A higher rate only costs radio and battery.
MIN_ACC_HZ = 25
# Ours: 8 G is the H10's widest range; trunk acceleration peaks at 2-4 g in running, so a 2 G
# range could clip the very movements that tell running from stress.
PREFERRED_RANGE_G = 8


def choose_acc(offered: Settings) -> Settings:
    """The ACC settings to start with: the lowest sample rate >= MIN_ACC_HZ (else the highest
    offered), range PREFERRED_RANGE_G if offered (else the widest), the first resolution and
    channel count offered. Raises PmdError when no sample rate is offered."""
    rates = sorted(offered.get(SAMPLE_RATE))
    if not rates:
        raise PmdError("the ACC settings offer no sample rate")
    rate = next((r for r in rates if r >= MIN_ACC_HZ), rates[-1])
    ranges = sorted(offered.get(RANGE))
    chosen = {SAMPLE_RATE: (rate,)}
    if ranges:
        chosen[RANGE] = (PREFERRED_RANGE_G if PREFERRED_RANGE_G in ranges else ranges[-1],)
    for kind in (RESOLUTION, CHANNELS):
        if offered.get(kind):
            chosen[kind] = (offered.get(kind)[0],)
    return Settings(chosen)


@dataclass(frozen=True, slots=True)
class AccFrame:
    """Decoded ACC samples: sensor times (ns since 2000-01-01, the last one the frame's
    timestamp) and x, y, z in mG."""

    t_ns: tuple[int, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    z: tuple[float, ...]


class AccDecoder:
    """Decodes one ACC stream's frames; keeps the previous frame's timestamp to space samples.

    Sample spacing: (this timestamp - the previous frame's) / samples in this frame, as the SDK
    does; for the first frame (or after the clock went backwards) 1 / sample rate."""

    def __init__(self, used: Settings):
        self.rate = float((used.get(SAMPLE_RATE) or (MIN_ACC_HZ,))[0])
        self.resolution = int((used.get(RESOLUTION) or (16,))[0])
        self.channels = int((used.get(CHANNELS) or (3,))[0])
        self.factor = used.factor
        self._previous_ns: int | None = None

    def decode(self, data: bytes | bytearray) -> AccFrame:
        data = bytes(data)
        if len(data) < 10:
            raise PmdError(f"a data frame has a 10-byte header; got {len(data)} byte(s)")
        if data[0] & 0x3F != ACC:
            raise PmdError(f"measurement type {data[0] & 0x3F} is not ACC ({ACC})")
        stamp = int.from_bytes(data[1:9], "little")
        frame_type, compressed = data[9] & 0x7F, bool(data[9] & 0x80)
        body = data[10:]
        if compressed:
            raw = _delta_samples(body, self.channels, self.resolution)
            # The SDK: compressed type-0 values are in G (times the factor), type 1 in mG.
            scale = self.factor * (1000.0 if frame_type == 0 else 1.0)
        else:
            width = {0: 1, 1: 2, 2: 3}.get(frame_type)
            if width is None:
                raise PmdError(f"ACC frame type {frame_type} is not one the document describes (0, 1, 2)")
            step = 3 * width
            if len(body) % step:
                raise PmdError(
                    f"ACC frame type {frame_type}: {len(body)} data bytes is not a whole number "
                    f"of {step}-byte samples"
                )
            raw = [
                tuple(
                    int.from_bytes(body[i + k * width : i + (k + 1) * width], "little", signed=True)
                    for k in range(3)
                )
                for i in range(0, len(body), step)
            ]
            scale = self.factor
        if not raw:
            raise PmdError("an ACC frame without samples")
        if len(raw[0]) < 3:
            raise PmdError(f"{len(raw[0])} channel(s); ACC needs x, y and z")
        n = len(raw)
        prev, self._previous_ns = self._previous_ns, stamp
        if prev is not None and stamp > prev:
            step_ns = (stamp - prev) / n
        else:
            step_ns = 1e9 / self.rate
        times = tuple(stamp - round((n - 1 - i) * step_ns) for i in range(n))
        return AccFrame(times, *(tuple(s[k] * scale for s in raw) for k in range(3)))


def _delta_samples(body: bytes, channels: int, resolution: int) -> list[tuple[int, ...]]:
    """A delta-compressed frame's samples (integers, before the conversion factor)."""
    width = math.ceil(resolution / 8)
    ref_len = channels * width
    if len(body) < ref_len:
        raise PmdError(
            f"a delta frame starts with a {ref_len}-byte reference sample; got {len(body)} byte(s)"
        )
    sample = [
        _signed(int.from_bytes(body[k * width : (k + 1) * width], "little"), resolution)
        for k in range(channels)
    ]
    out = [tuple(sample)]
    pos = ref_len
    while pos < len(body):
        if pos + 2 > len(body):
            raise PmdError(f"a delta block header at byte {pos} is cut short")
        bits, count = body[pos], body[pos + 1]
        pos += 2
        if not 1 <= bits <= 32:
            raise PmdError(f"delta width {bits} bits is not possible")
        total = bits * count * channels
        nbytes = math.ceil(total / 8)
        if pos + nbytes > len(body):
            raise PmdError(f"a delta block announces {count} samples of {bits} bits but the frame ends")
        packed = int.from_bytes(body[pos : pos + nbytes], "little")  # bit i of the block = bit i here
        pos += nbytes
        mask = (1 << bits) - 1
        for i in range(count):
            for k in range(channels):
                sample[k] += _signed((packed >> ((i * channels + k) * bits)) & mask, bits)
            out.append(tuple(sample))
    return out


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def sensor_seconds(t_ns: int) -> float:
    """A PMD timestamp as unix seconds, were the sensor's clock set to real time."""
    return PMD_EPOCH_UNIX + t_ns * 1e-9
