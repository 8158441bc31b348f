"""The events a collector emits: one `Beat` per heartbeat and a `Gap` where data is missing."""

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


Event = Beat | Gap
