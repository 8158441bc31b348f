"""Helpers for the alert tests: Readings built directly, and the coarse simulator's minutes as Readings.

The engine is tested on Readings we construct, not on today's processing/stress.py output (its
score is being reworked): `minute_readings` labels each simulated minute with a stress score of
the same form as processing/stress.py (a normal CDF of a weighted z of lnRMSSD and HR against
the person's rest values, SDs 0.4 ln units and 8 bpm) and the same 70/35 state thresholds.
"""

from __future__ import annotations

import math

from collector.simulator import Minute, Person
from processing.reading import Activity, Reading, StressState

T0 = 1_700_006_400.0  # a local midnight (UTC offset 0): 2023-11-15 00:00
MIN = 60.0


def reading(
    t: float,
    state: StressState = StressState.NEUTRAL,
    activity: Activity = Activity.REST,
    score: float | None = 50.0,
    ln_rmssd: float | None = 3.7,
    hr: float = 65.0,
    quality: float = 1.0,
    person: str = "p",
) -> Reading:
    rmssd = None if ln_rmssd is None else math.exp(ln_rmssd)
    return Reading(
        person,
        t,
        60.0,
        60,
        60000.0 / hr,
        hr,
        rmssd,
        ln_rmssd,
        rmssd,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        0.0,
        activity,
        score,
        state,
        quality,
    )


def stressed(t: float, score: float = 80.0, **kw) -> Reading:
    return reading(t, StressState.STRESSED, score=score, **{"ln_rmssd": 2.6, "hr": 85.0, **kw})


def calm(t: float, **kw) -> Reading:
    return reading(t, StressState.CALM, score=20.0, **{"ln_rmssd": 3.9, "hr": 62.0, **kw})


def minutes(start: float, n: int, make=calm, step: float = MIN) -> list[Reading]:
    """`n` readings one `step` apart, the first at `start + step`."""
    return [make(start + (i + 1) * step) for i in range(n)]


def score_of(m: Minute, person: Person) -> float:
    z = (
        0.65 * (math.log(person.rest_rmssd_ms) - math.log(m.rmssd_ms)) / 0.4
        + 0.35 * (m.hr_bpm - person.rest_hr_bpm) / 8
    )
    return 100.0 * 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def minute_readings(mins: list[Minute], person: Person | None = None, name: str = "p") -> list[Reading]:
    """The coarse simulator's minutes as Readings (see the module docstring)."""
    person = person or Person()
    out = []
    for m in mins:
        ln = math.log(m.rmssd_ms)
        if m.label == "active":
            out.append(reading(m.t, StressState.UNKNOWN, Activity.ACTIVE, None, ln, m.hr_bpm, person=name))
            continue
        activity = Activity.RECOVERY if m.label == "recovery" else Activity.REST
        score = score_of(m, person)
        if score >= 70 and activity == Activity.REST:
            state = StressState.STRESSED
        elif score <= 35:
            state = StressState.CALM
        else:
            state = StressState.NEUTRAL
        out.append(reading(m.t, state, activity, round(score, 2), ln, m.hr_bpm, person=name))
    return out


def run(engine, readings) -> list:
    out = []
    for r in readings:
        out += engine.feed(r)
    return out


def of_type(outputs, cls, **match) -> list:
    return [o for o in outputs if isinstance(o, cls) and all(getattr(o, k) == v for k, v in match.items())]
