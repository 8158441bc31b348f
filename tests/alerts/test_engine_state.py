"""The engine's whole state survives a restart: saving and restoring mid-day (as JSON) changes no decision."""

from __future__ import annotations

import json
import math

import pytest
import sample
from alerts_world import MIN, T0, minute_readings, minutes, of_type, run, stressed

from alerts.daily import DailySummary
from alerts.engine import AlertEngine
from alerts.prompt import Prompt
from collector.simulator import Chronic, plan_days, simulate_minutes

HOUR = 3600.0


def canonical(o) -> tuple:
    """An output as comparable plain data."""
    if isinstance(o, Prompt):
        return ("prompt", json.dumps(o.to_dict(), sort_keys=True))
    if isinstance(o, DailySummary):
        return ("day", json.dumps(o.to_dict(), sort_keys=True))
    return ("decision", o.time, o.what, o.rule, o.reason, json.dumps(o.data, sort_keys=True, default=str))


class Phone:
    """Answers every prompt: `done` 6 minutes after an acute one, `not_stressed` to every third."""

    def __init__(self) -> None:
        self.due: list[tuple[float, str, str]] = []
        self.n = 0

    def drive(self, eng: AlertEngine, readings) -> list:
        out = []
        for r in readings:
            while self.due and self.due[0][0] <= r.time:
                t, pid, action = self.due.pop(0)
                out += eng.respond(pid, action, None, t)
            for o in eng.feed(r):
                out.append(o)
                if isinstance(o, Prompt):
                    self.n += 1
                    self.due.append((o.time + 6 * MIN, o.id, "not_stressed" if self.n % 3 == 0 else "done"))
        return out


@pytest.mark.slow
def test_a_restart_mid_week_and_mid_day_keeps_baselines_cooldowns_and_every_decision():
    readings = minute_readings(simulate_minutes(plan_days(21, 4, chronic=Chronic(start=16)), 4, T0))
    phone = Phone()
    straight = [canonical(o) for o in phone.drive(AlertEngine("p", seed=9), readings)]

    cut = next(i for i, r in enumerate(readings) if r.time >= T0 + 17 * 86400 + 10.5 * HOUR)  # Thursday 10:30
    phone = Phone()
    first = AlertEngine("p", seed=9)
    before = phone.drive(first, readings[:cut])
    saved = json.dumps(first.to_dict())  # what the service writes to its store
    second = AlertEngine.from_dict(json.loads(saved))
    after = phone.drive(second, readings[cut:])
    assert [canonical(o) for o in before + after] == straight
    kinds = {c[0] for c in straight} | {c[2] for c in straight if c[0] == "decision"}
    assert {
        "prompt",
        "day",
        "chronic",
        "effect",
        "response",
    } <= kinds  # every part of the state was exercised
    assert second.to_dict() == json.loads(json.dumps(second.to_dict()))  # plain JSON data, nothing else


def test_the_cooldown_survives_a_restart():
    eng = AlertEngine("p")
    t = T0 + 10 * HOUR
    (p,) = of_type(run(eng, minutes(t - 30 * MIN, 30) + minutes(t, 15, stressed)), Prompt)
    eng = AlertEngine.from_dict(json.loads(json.dumps(eng.to_dict())))
    later = of_type(run(eng, minutes(t + 15 * MIN, 100, stressed)), Prompt)
    assert [q.time - p.time for q in later] == [90 * MIN]


def test_state_from_another_version_is_refused_with_a_clear_error():
    state = AlertEngine("p").to_dict()
    state["version"] = 99
    with pytest.raises(ValueError, match="alert engine state version 99 is not 1"):
        AlertEngine.from_dict(state)


def test_the_state_is_strict_json_even_mid_block_after_poor_signal():
    eng = AlertEngine("p")
    run(eng, minutes(T0 + 9 * HOUR, 30, stressed) + [stressed(T0 + 9 * HOUR + 31 * MIN, quality=0.1)])
    restored = AlertEngine.from_dict(json.loads(json.dumps(eng.to_dict(), allow_nan=False)))
    assert restored.noise.block[1] == -math.inf  # the broken 5-minute block stays broken


def test_the_status_carries_todays_stress_load_as_it_stands():
    from alerts.engine import AlertEngine
    from processing.reading import Activity, StressState

    engine = AlertEngine("ann")
    assert engine.status()["today_stress_load"] is None
    t0 = 1_767_254_400.0 + 9 * 3600  # 09:00 UTC, awake
    for k in range(40):  # 20 min calm rest, then 20 min stressed rest, a reading a minute
        state = StressState.CALM if k < 20 else StressState.STRESSED
        engine.feed(
            sample.reading(
                time=t0 + 60 * k, activity=Activity.REST, stress_score=40.0 if k < 20 else 85.0, state=state
            )
        )
    load = engine.status()["today_stress_load"]
    assert 0.45 <= load <= 0.55  # half of the resting time was stressed
