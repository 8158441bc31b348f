"""The events a collector emits: a `Beat` per heartbeat, a `Gap` where data is missing, a `HeartRate`
where a strap reports heart rate without the RR intervals of its beats, and motion: `Acceleration`
samples from a strap's accelerometer and `Motion`, what a source says the body is doing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# A beat later than its own RR interval allows by more than this follows missing data: the
# importers and the processing core both turn such a jump into a Gap.
GAP_TOLERANCE_S = 2.0


class ArtifactKind(StrEnum):
    """The correction applied to a beat (processing/correction.py; Lipponen & Tarvainen 2019)."""

    ECTOPIC = "ectopic"
    MISSED = "missed"
    EXTRA = "extra"
    LONGSHORT = "longshort"


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat: the RR interval that ends at time `t`.

    `t` is unix seconds (float) of the beat; `rr_ms` the interval since the previous beat in
    milliseconds at full precision (BLE straps report 1/1024 s units, never rounded here).
    `artifact` is None for a beat as measured and names the correction applied otherwise
    (an `ArtifactKind`), so downstream stages can count artifacts.
    """

    person: str
    device: str
    t: float
    rr_ms: float
    hr_bpm: float | None = None
    contact: bool | None = None
    energy_kj: float | None = None
    source: str = ""
    artifact: ArtifactKind | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """No data from `start` to `end` (unix seconds): disconnect, no skin contact, a stall.

    Windows never bridge a gap by interpolation: every stage resets its trailing state. A gap
    that ends before beats already sent marks a wall clock set back (collector/beat_timing.py:
    an empty gap at the step, on the new clock); the beats after it are earlier than those before,
    and a stage that keeps beats in time order starts afresh there (processing/pipeline.py).
    """

    person: str
    device: str
    start: float
    end: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HeartRate:
    """The heart rate a strap reported at time `t` (unix seconds) without RR intervals.

    Straps and bands that do not send RR intervals (many optical arm and wrist bands, some cheap
    or older chest straps) still report heart rate once a second (GATT Heart Rate Measurement,
    0x2A37, with the RR flag clear). `hr_bpm` is the strap's own value, averaged by its firmware
    over recent beats; no beat times can be had from it, so it gives heart rate and activity but
    never HRV. The collector emits these only from a strap found not to send RR intervals, not
    for the occasional notification of an RR strap in which no beat ended
    (collector/beat_timing.py).
    """

    person: str
    device: str
    t: float
    hr_bpm: float
    contact: bool | None = None
    energy_kj: float | None = None
    source: str = ""


class MotionKind(StrEnum):
    """What a motion source says the person is doing (ARCHITECTURE.md "Events")."""

    STILL = "still"
    WALKING = "walking"
    RUNNING = "running"
    CYCLING = "cycling"
    IN_VEHICLE = "in_vehicle"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Motion:
    """What one device says about the person's movement over the `span_s` seconds ending at `t`,
    and, for a source that reports now and then (the phone), for `hold_s` seconds after `t` until
    the device's next report.

    `intensity_mg` is the mean amplitude deviation of the acceleration's vector magnitude
    (processing/motion.py) where an accelerometer measured it; `cadence_spm` steps per minute
    and `speed_m_s` where known (a foot pod, or steps found in the acceleration). `source` names
    where it came from: "acc" (a strap's accelerometer), "rsc" (a foot pod), "file".
    """

    person: str
    device: str
    t: float
    kind: MotionKind
    span_s: float = 0.0
    intensity_mg: float | None = None
    cadence_spm: float | None = None
    speed_m_s: float | None = None
    source: str = ""
    hold_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Acceleration:
    """Accelerometer samples of one device: unix times `t` (s) and x, y, z in mg (1 g = 1000 mg).

    processing/motion.py turns them into `Motion`; the samples themselves are not stored."""

    person: str
    device: str
    t: tuple[float, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    z: tuple[float, ...]
    source: str = ""


Event = Beat | Gap | HeartRate | Motion | Acceleration
