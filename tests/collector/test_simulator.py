"""The simulator: deterministic, physiologically directed phases; artifact injection and scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collector.artifacts import inject, score_repairs
from collector.simulator import (
    PRESETS,
    Chronic,
    day_script,
    exercise_session,
    phase,
    plan_days,
    simulate,
    simulate_minutes,
    to_beats,
)
from processing.pipeline import Settings, run


def test_same_seed_same_beats_and_different_seed_differs():
    script = [phase("rest", 3)]
    a = simulate(script, seed=1)
    assert a == simulate(script, seed=1)
    assert a != simulate(script, seed=2)


def test_phases_move_hr_and_rmssd_in_the_documented_directions():
    script = [phase("rest", 6), phase("stress", 6), phase("exercise", 6)]
    sim = simulate(script, seed=3)
    stats = {}
    for name in ("rest", "stress", "exercise"):
        rr = np.array([b.rr_ms for b in sim if b.phase == name][60:])  # skip the transition
        stats[name] = (60000 / rr.mean(), np.sqrt(np.mean(np.diff(rr) ** 2)))
    (hr_rest, rm_rest), (hr_st, rm_st), (hr_ex, rm_ex) = stats["rest"], stats["stress"], stats["exercise"]
    assert 58 < hr_rest < 70 and 30 < rm_rest < 60  # Nunan 2010 resting range
    assert hr_st > hr_rest + 10 and rm_st < rm_rest / 2
    assert hr_ex > 120 and rm_ex < rm_st


def test_stress_raises_lf_hf():
    sim = simulate([phase("rest", 8), phase("stress", 8)], seed=4)
    readings = run(to_beats(sim), "p", Settings(correction=False))
    half = sim[len(sim) // 2].t
    rest = [r.lf_hf for r in readings if r.lf_hf and r.time < half]
    stress = [r.lf_hf for r in readings if r.lf_hf and r.time > half + 360]
    assert np.median(stress) > 3 * np.median(rest)


def test_injection_counts_and_perfect_repair_scores_full():
    times = np.cumsum(np.full(2000, 0.8))
    bad, injected = inject(times, 0.01, seed=5)
    kinds = [i.kind for i in injected]
    assert {k: kinds.count(k) for k in set(kinds)} == {"missed": 20, "extra": 20, "ectopic": 20}
    assert len(bad) == len(times)  # one beat lost per missed, one gained per extra
    assert score_repairs(times, injected) == {"missed": (20, 20), "extra": (20, 20), "ectopic": (20, 20)}
    scores = score_repairs(bad, injected)
    assert all(ok == 0 for ok, _ in scores.values())


def test_planned_days_are_reproducible_and_cover_each_day_in_order():
    days = plan_days(7, seed=3)
    assert days == plan_days(7, seed=3) and days != plan_days(7, seed=4)
    for segments in days:
        assert segments[0].start_s == 0 and segments[0].label == "sleep" and segments[-1].label == "sleep"
        ends = [s.start_s + s.duration_s for s in segments]
        assert ends[-1] == 86400 and all(b.start_s == pytest.approx(a) for a, b in zip(ends, segments[1:]))


def test_a_chronic_period_lowers_night_hrv_and_adds_stress_from_its_first_day():
    def night_and_stress(days):
        night = [math.log(d[0].rmssd_ms) for d in days]
        stress = [sum(s.duration_s for s in d if s.label == "stress") / 60 for d in days]
        return np.array(night), np.array(stress)

    n0, s0 = night_and_stress(plan_days(60, seed=1))
    n1, s1 = night_and_stress(plan_days(60, seed=1, chronic=Chronic(start=30)))
    assert abs(n0[30:].mean() - n0[:30].mean()) < 0.1
    assert n1[:30].mean() - n1[30:].mean() == pytest.approx(0.3, abs=0.1)
    assert s1[30:].mean() > s0[30:].mean() + 40  # ~3 more episodes of 15-45 min


def test_the_minute_path_has_one_value_per_worn_minute_with_the_segment_labels():
    mins = simulate_minutes(plan_days(2, seed=2), seed=2, start=1000.0 * 86400)
    per_day = [sum(1 for m in mins if int(m.t // 86400) - 1000 == d) for d in (0, 1)]
    assert all(1420 <= n <= 1425 for n in per_day)  # 1440 minus the 15 with the strap off
    assert np.all(np.diff([m.t for m in mins]) > 0)
    sleep = [m for m in mins if m.label == "sleep"]
    assert 50 < np.mean([m.hr_bpm for m in sleep]) < 58 and {m.label for m in mins} >= {
        "sleep",
        "rest",
        "stress",
    }


def test_an_exercise_that_helps_moves_the_after_phase_back_to_rest():
    helped = exercise_session(6.0, helps=1.0)[2]
    useless = exercise_session(6.0, helps=0.0)[2]
    assert (helped.hr_bpm, helped.rsa_ms) == (PRESETS["rest"].hr_bpm, PRESETS["rest"].rsa_ms)
    assert (useless.hr_bpm, useless.rsa_ms) == (PRESETS["stress"].hr_bpm, PRESETS["stress"].rsa_ms)
    assert exercise_session(6.0, 0.5)[1].breaths_per_min == 6.0


def test_a_planned_day_as_beat_level_phases():
    segments = plan_days(1, seed=5)[0]
    script = day_script(segments)
    assert sum(p.duration_s for p in script) == pytest.approx(86400)
    assert [p.name for p in script] == [s.label for s in segments]
    sleep = script[0]
    assert sleep.hr_bpm == segments[0].hr_bpm and sleep.rsa_ms == pytest.approx(segments[0].rmssd_ms / 0.76)


# -- morning readings ------------------------------------------------------------------------------


def test_planned_mornings_miss_two_a_week_spoil_some_and_a_chronic_period_lowers_and_spreads_them():
    from collector.simulator import MorningPerson, plan_mornings

    plans = plan_mornings(70, seed=4)
    assert plans == plan_mornings(70, seed=4) and plans != plan_mornings(70, seed=5)
    for week in range(10):
        assert sum(not p.attempts for p in plans[7 * week : 7 * week + 7]) == 2
    attempts = [a for p in plans for a in p.attempts]
    spoiled = [a for a in attempts if a != "ok"]
    assert {a for a in spoiled} <= {"movement", "artifacts"} and 0.03 < len(spoiled) / len(attempts) < 0.2
    base = np.array([p.ln_rmssd for p in plan_mornings(400, seed=1)])
    hit = np.array(
        [p.ln_rmssd for p in plan_mornings(400, seed=1, chronic=Chronic(0, ln_drop=0.3, sd_factor=1.5))]
    )
    assert abs(base.mean() - MorningPerson().ln_rmssd) < 0.02 and abs(base.std() - 0.12) < 0.015
    assert hit.mean() == pytest.approx(base.mean() - 0.3, abs=0.03) and hit.std() == pytest.approx(
        0.18, abs=0.02
    )


def test_a_simulated_morning_reading_measures_the_planned_ln_rmssd_and_movement_spoils_it():
    from collector.simulator import MorningPlan, morning_script
    from processing.morning import MorningReading, Protocol

    def take(plan, outcome, seed):
        m = MorningReading("me", Protocol(), 0.0)
        for b in to_beats(simulate(morning_script(plan, outcome), seed=seed, start=0.0)):
            if (r := m.feed(b)) is not None:
                return r
        return m.tick(1e6)

    errors = []
    for k, ln in enumerate((3.5, 3.8, 4.0, 4.3)):
        r = take(MorningPlan(0, 420.0, ln, 58.0, ("ok",)), "ok", k)
        assert r.valid and r.hr_bpm == pytest.approx(58.0, abs=2.0)
        errors.append(r.ln_rmssd - ln)
    assert max(abs(e) for e in errors) < 0.1
    moved = take(MorningPlan(0, 420.0, 4.0, 58.0, ("movement",)), "movement", 9)
    assert not moved.valid and moved.failure == "movement"
