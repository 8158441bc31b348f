"""The `Reading`: one row of HRV metrics and stress state per step and person (a JSON contract)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Activity(StrEnum):
    """What the body is doing (processing/stress.py decides)."""

    REST = "rest"
    ACTIVE = "active"  # physical activity: never scored as stress
    RECOVERY = "recovery"  # the minutes after activity, while HRV is still suppressed
    # not known yet; or, without motion, too active to judge (the RR-only gate, processing/stress.py)
    UNKNOWN = "unknown"


class MotionState(StrEnum):
    """What the person's motion said over the reading's window (processing/motion.py decides)."""

    STILL = "still"
    MOVING = "moving"
    UNKNOWN = "unknown"  # no motion source, or what it saw was neither


# `Reading.hrv_unavailable` of a reading made from a strap's heart rate alone.
NO_RR = "the strap sends heart rate without RR intervals"


class StressState(StrEnum):
    """The stress state of a reading (processing/stress.py decides)."""

    CALM = "calm"
    NEUTRAL = "neutral"
    STRESSED = "stressed"
    UNKNOWN = "unknown"  # no score: poor signal, physical activity, too active to judge, a new baseline


@dataclass(frozen=True, slots=True)
class Reading:
    """Field names and meanings are a contract (README "The Reading"; MQTT state, InfluxDB `hrv`).

    Units: time in unix seconds; *_ms in milliseconds; hr_bpm in beats/min; *_pct in percent;
    baevsky_si dimensionless (Kubios convention); stress_index = sqrt(baevsky_si);
    stress_score 0-100 relative to the person's resting baseline; quality 0-1 (from the share
    of corrected beats and the number of valid successive pairs in the RMSSD window; a score
    needs >= 0.5, see processing/pipeline.py).
    `None` means "not computable from this window" (too few beats or pairs, too short for
    LF/HF, or a stress score while physically active, too active to judge, in the first minute of
    a stream or before a new baseline holds 3 min of rest).

    `hrv_unavailable` is None, or says why the reading has no HRV at all: NO_RR for a reading
    made from the heart rate a strap reports without RR intervals (processing/pipeline.py); then
    `n_beats` is 0, `hr_bpm` the mean of the strap's heart rates, every beat-based field
    (mean_rr_ms, the HRV metrics, artifact_pct) None, quality 0 and the state `unknown`.
    """

    person: str
    time: float
    window_s: float
    n_beats: int
    mean_rr_ms: float | None
    hr_bpm: float
    rmssd_ms: float | None
    ln_rmssd: float | None
    sdnn_ms: float | None
    pnn50_pct: float | None
    pnn20_pct: float | None
    sd1_ms: float | None
    sd2_ms: float | None
    baevsky_si: float | None
    stress_index: float | None
    pns_index: float | None
    sns_index: float | None
    lf_hf: float | None
    artifact_pct: float | None
    activity: Activity
    stress_score: float | None
    state: StressState
    quality: float
    motion: MotionState = MotionState.UNKNOWN
    hrv_unavailable: str | None = None

    def to_dict(self, digits: int = 6) -> dict:
        """A JSON-ready dict; floats rounded to `digits` significant decimals, NaN -> None."""
        # A plain loop over the fields: dataclasses.asdict deep-copies every value and cost
        # `analyze --json` ~0.1 ms a reading.
        out = {}
        for k in FIELDS:
            v = getattr(self, k)
            if isinstance(v, float):  # numpy floats too
                v = round(v, digits) if math.isfinite(v) else None
            elif isinstance(v, StrEnum):
                v = v.value
            out[k] = v
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Reading:
        """The inverse of `to_dict` (a reading that travelled as JSON, e.g. through Kafka)."""
        values = {k: d.get(k) for k in FIELDS}
        values["activity"] = Activity(values["activity"])
        values["state"] = StressState(values["state"])
        values["motion"] = MotionState(values["motion"] or MotionState.UNKNOWN)
        return cls(**values)


FIELDS = tuple(Reading.__dataclass_fields__)
