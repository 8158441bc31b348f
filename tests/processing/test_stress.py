"""Activity, stress score and state: exercise is `active`, never `stressed`; stress is seen."""

from __future__ import annotations

from collections import Counter

from collector.files import read_recording
from collector.simulator import phase, simulate, to_beats
from processing.pipeline import Settings, run
from processing.stress import Baseline, StressModel


def states_by_phase(script, seed=11):
    sim = simulate(script, seed=seed)
    readings = run(to_beats(sim), "p", Settings())
    bounds, t = {}, sim[0].t
    for ph in script:
        bounds[ph.name] = (t + 90, t + ph.duration_s)  # skip the 90 s transition
        t += ph.duration_s
    return {
        name: Counter((r.activity, r.state) for r in readings if lo <= r.time < hi)
        for name, (lo, hi) in bounds.items()
    }


def test_work_stress_after_rest_reads_stressed_and_exercise_reads_active():
    got = states_by_phase([phase("rest", 15), phase("stress", 10), phase("exercise", 10), phase("calm", 10)])
    stress, exercise, calm = got["stress"], got["exercise"], got["calm"]
    assert stress[("rest", "stressed")] >= 0.8 * sum(stress.values())
    assert all(activity == "active" for activity, _ in exercise)
    assert not any(state == "stressed" for _, state in exercise)
    assert sum(n for (a, s), n in calm.items() if s == "stressed") == 0


def test_no_stressed_state_while_calibrating_a_new_person():
    model = StressModel()
    states = [model.assess(t, 95.0, 2.5, 1.0).state for t in range(0, 590, 10)]
    assert "stressed" not in states
    assert model.baseline.rest_s > 500  # it learned from that rest even though it looked stressed


def test_energy_expended_marks_activity_even_at_modest_heart_rate():
    model = StressModel()
    acts = [model.assess(t, 80.0, 3.5, 1.0, energy_kj=t * 0.5).activity for t in range(0, 300, 10)]
    assert acts[-1] == "active"  # 30 kJ/min


def test_baseline_blends_from_population_to_personal():
    b = Baseline()
    pop = b.blended()
    for _ in range(400):
        b.update(3.0, 75.0, 10.0)
    ln_mean, _, hr_mean, _ = b.blended()
    assert abs(ln_mean - 3.0) < 0.01 and abs(hr_mean - 75.0) < 0.1
    assert pop[0] != ln_mean


def test_real_cycling_is_active_never_stressed(reference):
    """exercise_rri.hrm: ~5 min seated rest, ~30 min cycling, ~5 min recovery (Polar HRM)."""
    rec = read_recording(reference / "rr/rest_exercise/exercise_rri.hrm")
    readings = run(rec.events, "p", Settings())
    t0 = readings[0].time
    cycling = [r for r in readings if 9 * 60 <= r.time - t0 <= 35 * 60]
    counts = Counter((r.activity, r.state) for r in cycling)
    print(f"\nexercise_rri.hrm cycling minutes 9-35: {dict(counts)}")
    assert len(cycling) > 100
    assert not any(r.state == "stressed" for r in cycling)
    assert sum(r.activity == "active" for r in cycling) >= 0.95 * len(cycling)
