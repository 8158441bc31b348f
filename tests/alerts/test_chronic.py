"""Chronic patterns over weeks, on the coarse simulator path (one Reading per simulated minute).

Why coarse: a beat-level day is ~100 k beats and seconds through the pipeline; the chronic rules
only need per-minute states and values, so `collector.simulator.simulate_minutes` generates
minutes directly and `alerts_world.minute_readings` turns them into Readings. Eight weeks of
minutes (~80 k readings) run through the engine in about 2 s.
"""

from __future__ import annotations

from functools import cache

import pytest
from alerts_world import T0, minute_readings, of_type, run

from alerts.daily import DailySummary
from alerts.engine import AlertEngine, Decision
from alerts.prompt import Prompt, PromptKind
from collector.simulator import Chronic, plan_days, simulate_minutes

DAY = 86400.0


@cache
def weeks(n_days: int, seed: int, chronic: Chronic | None = None) -> tuple[AlertEngine, list]:
    eng = AlertEngine("p", seed=seed)
    out = run(eng, minute_readings(simulate_minutes(plan_days(n_days, seed, chronic=chronic), seed, T0)))
    return eng, out


def day_index(t: float) -> int:
    return int((t - T0) // DAY)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eight_stable_weeks_give_no_chronic_prompt(seed):
    eng, out = weeks(56, seed)
    summaries = of_type(out, DailySummary)
    assert len(summaries) == 56 and all(d.valid and d.night_source == "sleep" for d in summaries)
    assert of_type(out, Decision, what="chronic") == []
    assert [p for p in of_type(out, Prompt) if p.kind == PromptKind.CHRONIC] == []
    # The bands exist and move with the person: the check could have fired.
    assert all(d.hrv_band and d.load_band for d in summaries[14:])
    assert eng.status()["calibrating"] is False


@pytest.mark.slow
def test_calibrating_until_the_warm_up_and_no_chronic_rule_before_it():
    eng = AlertEngine("p")
    start = Chronic(start=0)  # stressed from the first day: nothing to compare with yet
    days = plan_days(20, 5, chronic=start)
    states = []
    for r in minute_readings(simulate_minutes(days, 5, T0)):
        for o in eng.feed(r):
            if isinstance(o, DailySummary):
                states.append(eng.status()["calibrating"])
            assert not (isinstance(o, Decision) and o.what == "chronic" and eng.status()["calibrating"])
    assert states[:13] == [True] * 13 and states[13:] == [False] * (len(states) - 13)
    assert eng.status()["warmup_days"] == 14


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_chronic_stress_period_is_detected_within_3_days_of_its_start(seed):
    # From day 35: nightly and resting lnRMSSD 0.3 lower (2 daily SDs) and 3 more stress episodes a day.
    _, out = weeks(42, seed, Chronic(start=35))
    findings = of_type(out, Decision, what="chronic")
    assert findings and day_index(findings[0].time) - 1 <= 35 + 2  # decided when day 37 closes, at the latest
    assert all(day_index(f.time) > 35 for f in findings)
    numbers = findings[0].data
    assert numbers["stress_load"] > numbers["load_band"][1] or numbers["hrv_week_mean"] < numbers["hrv_limit"]
    sessions = [p for p in of_type(out, Prompt) if p.kind == PromptKind.CHRONIC]
    # One suggested session a day at the chosen time, not repeated interruptions.
    assert sessions and len({day_index(p.time) for p in sessions}) == len(sessions)
    first = sessions[0]
    assert first.time % DAY == pytest.approx(18.5 * 3600, abs=60) and first.expires_at == first.time + 7200
    assert first.exercise.name == "resonance breathing (10 min)" and first.exercise.duration_s == 600
    assert first.reason.startswith(("You were stressed during", "Your 7-day average night-time HRV"))
    assert first.reason.endswith("A longer breathing session today may help.")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 8])
def test_a_drop_of_nightly_hrv_alone_is_found_by_the_7_day_rule_within_8_days(seed):
    # Nights only (daytime unchanged): lnRMSSD 0.45 lower, three daily SDs. Over seeds 0-11 the
    # finding came on the 4th to 8th day (a 7-day mean moves 1/7 of a drop per day).
    _, out = weeks(45, seed, Chronic(start=35, ln_drop=0.45, rest_drop=0.0, extra_episodes=0))
    first = of_type(out, Decision, what="chronic")[0]
    assert first.rule == "chronic_hrv" and 35 < day_index(first.time) - 1 <= 35 + 7
    assert "below your normal range" in first.reason and "3 days in a row" in first.reason


def test_invalid_days_feed_no_baseline():
    eng = AlertEngine("p")
    out = run(eng, minute_readings(simulate_minutes(plan_days(3, 1), 1, T0)[::10]))  # a reading every 10 min
    assert [d.valid for d in of_type(out, DailySummary)] == [False, False]
    assert eng.status()["valid_days"] == 0


@pytest.mark.slow
def test_the_chronic_session_always_fits_under_the_daily_cap():
    _, out = weeks(42, 1, Chronic(start=35))
    per_day: dict[int, list[Prompt]] = {}
    for p in of_type(out, Prompt):
        per_day.setdefault(day_index(p.time), []).append(p)
    assert max(len(v) for v in per_day.values()) <= 3
    session_days = {d for d, v in per_day.items() if any(p.kind == PromptKind.CHRONIC for p in v)}
    findings = {day_index(f.time) for f in of_type(out, Decision, what="chronic")}
    assert session_days == {d for d in findings if d < 42}  # every finding got its session the next day
    assert all(sum(p.kind == PromptKind.ACUTE for p in per_day[d]) <= 2 for d in session_days)


def test_each_day_counts_its_prompts_answers_and_effects():
    _, out = weeks(42, 1, Chronic(start=35))
    days = of_type(out, DailySummary)
    prompts = of_type(out, Prompt)
    assert len(days) == 42 and sum(d.prompts for d in days) == len(prompts) > 0
    assert all(d.answered == 0 and d.effects == [] for d in days)  # nobody answered in this run
