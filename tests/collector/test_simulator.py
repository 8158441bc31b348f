"""The simulator: deterministic, physiologically directed phases; artifact injection and scoring."""

from __future__ import annotations

import numpy as np

from collector.artifacts import inject, score_repairs
from collector.simulator import phase, simulate, to_beats
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
