"""The events a collector emits: one `Beat` per heartbeat, a `Gap` where data is missing, and a
`HeartRate` where a strap reports heart rate without the RR intervals of its beats."""

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

    Windows never bridge a gap by interpolation: every stage resets its trailing state.
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


Event = Beat | Gap | HeartRate
