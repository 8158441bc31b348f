"""The measured effect of an exercise, on beats from the simulator through the real Pipeline, and the
choice of exercise by what works for the person.

The Pipeline gives the physiology (lnRMSSD, HR, activity, quality); the `stressed` state of the
minutes before the exercise is scripted (the simulator knows that phase), because the stress
model is not what these tests are about.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from alerts_world import T0

from alerts.effect import breathing_peak_hz, judge, paced
from alerts.engine import AlertEngine, Decision
from alerts.exercises import CATALOGUE, choose, posterior
from alerts.prompt import Prompt
from alerts.settings import AlertSettings
from collector.simulator import breathing, exercise_session, phase, simulate, to_beats
from processing.pipeline import Pipeline
from processing.reading import Activity, StressState

HOUR = 3600.0


def session(
    eng: AlertEngine,
    pipe: Pipeline,
    start: float,
    helps: dict[str, float],
    seed: int,
    breathe_at: float | None = None,
) -> list:
    """A stressed person at rest gets a prompt, does the exercise offered (at its pace, or at
    `breathe_at` breaths/min) when the stressed stretch ends, and answers `done` at its end."""
    out: list = []
    prompt: Prompt | None = None
    before = 14.0
    # The exercise is known only once the prompt comes, so simulate the stressed part first.
    stress = simulate([phase("stress", before, "before")], seed=seed, start=start)
    for b in to_beats(stress):
        for r in pipe.feed(b):
            r = replace(r, state=StressState.STRESSED if r.activity == Activity.REST else StressState.UNKNOWN)
            for o in eng.feed(r):
                out.append(o)
                prompt = o if isinstance(o, Prompt) else prompt
    assert prompt is not None, "the stressed stretch gave no prompt"
    ex = prompt.exercise
    rate = breathe_at or ex.breaths_per_min
    script = exercise_session(
        rate, helps[ex.name], before_min=0.0, during_min=ex.duration_s / 60.0, after_min=8.0
    )
    rest = simulate(script[1:], seed=seed + 1000, start=stress[-1].t)
    during = [b for b in rest if b.phase == "exercise"]
    done_at = during[-1].t
    answered = False
    for b in to_beats(rest):
        if not answered and b.t > done_at:
            out += eng.respond(
                prompt.id, "done", None, done_at, rr=([x.t for x in during], [x.rr_ms for x in during])
            )
            answered = True
        for r in pipe.feed(b):
            out += eng.feed(
                replace(r, state=StressState.NEUTRAL if r.state != StressState.UNKNOWN else r.state)
            )
    return out


def effects(out) -> list[Decision]:
    return [o for o in out if isinstance(o, Decision) and o.what == "effect"]


def test_the_spectrum_peak_is_at_the_paced_breathing_rate():
    for name in ("resonance breathing", "box breathing", "cyclic sighing"):
        ex = CATALOGUE[name]
        sim = simulate([breathing(5, ex.breaths_per_min)], seed=2)
        peak = breathing_peak_hz([b.t for b in sim], [b.rr_ms for b in sim])
        assert peak == pytest.approx(ex.breaths_per_min / 60, abs=0.01), name
        assert paced(peak, ex.breaths_per_min)
    spontaneous = simulate([phase("rest", 5)], seed=3)  # 12 breaths/min
    peak = breathing_peak_hz([b.t for b in spontaneous], [b.rr_ms for b in spontaneous])
    assert peak == pytest.approx(0.2, abs=0.02) and paced(peak, 6.0) is False
    assert breathing_peak_hz([0.0, 1.0], [800.0, 800.0]) is None  # too short to say


@pytest.mark.parametrize(("helps", "verdict"), [(1.0, "improved"), (0.0, "no measurable effect")])
def test_the_effect_is_judged_on_rest_before_the_prompt_against_rest_after_the_exercise(helps, verdict):
    eng = AlertEngine("p", AlertSettings(acute_exercises=("resonance breathing",)))
    out = session(eng, Pipeline("p"), T0 + 10 * HOUR, {"resonance breathing": helps}, seed=7)
    (e,) = effects(out)
    assert e.data["verdict"] == verdict and e.data["paced"] is True
    assert abs(e.data["peak_hz"] - 0.1) < 0.01
    if helps:
        assert e.data["d_ln_rmssd"] > e.data["threshold"] and e.data["d_hr_bpm"] < -10
        assert e.reason.startswith("After resonance breathing your resting HRV (lnRMSSD) went from")
    else:
        assert abs(e.data["d_ln_rmssd"]) < e.data["threshold"] and abs(e.data["d_hr_bpm"]) < 4
        assert "no measurable effect" in e.reason
    assert eng.effects["resonance breathing"] == [e.data["d_ln_rmssd"]]
    assert eng.days.open.effects[0]["verdict"] == verdict and eng.days.open.done == 1


def test_a_session_without_paced_breathing_is_reported_and_not_learned_from():
    eng = AlertEngine("p", AlertSettings(acute_exercises=("resonance breathing",)))
    out = session(eng, Pipeline("p"), T0 + 10 * HOUR, {"resonance breathing": 1.0}, seed=8, breathe_at=14.0)
    (e,) = effects(out)
    assert e.data["paced"] is False and "did not follow the paced breathing rate" in e.reason
    assert eng.effects == {}


def test_no_rest_after_the_exercise_means_not_measurable():
    result = judge({"ln_rmssd": 3.0, "hr_bpm": 80.0, "stress_score": 80.0, "minutes": 5.0}, None, 0.1, 0.08)
    assert result["verdict"] == "not measurable"
    # the smallest worthwhile change (0.1) or, when larger, the 90 % one-sided bound of the
    # difference of two means with a typical error of 0.08: 1.645 x sqrt(2) x 0.08 = 0.1861
    assert judge(None, None, 0.1, 0.08)["threshold"] == pytest.approx(0.1861, abs=1e-4)
    assert judge(None, None, 0.1, 0.04)["threshold"] == pytest.approx(0.1)


@pytest.mark.slow
def test_a_person_whom_one_exercise_helps_ends_up_being_offered_that_one():
    settings = AlertSettings(acute_exercises=("cyclic sighing", "box breathing"))
    eng = AlertEngine("p", settings, seed=3)
    pipe = Pipeline("p")
    helps = {"cyclic sighing": 0.4, "box breathing": 0.0}  # sighing takes 40 % of the way back to rest
    offered = []
    for k in range(14):
        start = T0 + (k // 3) * 86400 + (9 + 3 * (k % 3)) * HOUR  # 09:00, 12:00, 15:00
        out = session(eng, pipe, start, helps, seed=100 + k)
        offered += [p.exercise.name for p in out if isinstance(p, Prompt)]
    assert len(offered) == 14
    assert offered[-6:].count("cyclic sighing") >= 5, offered
    sighing, box = (
        posterior(eng.effects["cyclic sighing"], 0.2),
        posterior(eng.effects.get("box breathing", []), 0.2),
    )
    assert sighing[0] > 0.2 and abs(box[0]) < 0.15


def test_the_choice_is_reproducible_from_the_seed_and_explores():
    effects_ = {"a": [0.5] * 10, "b": [0.0] * 10}
    picks = [choose(("a", "b"), effects_, 0.2, 0.1, np.random.default_rng([1, i])) for i in range(400)]
    assert picks == [
        choose(("a", "b"), effects_, 0.2, 0.1, np.random.default_rng([1, i])) for i in range(400)
    ]
    share_b = picks.count("b") / len(picks)
    assert 0.02 < share_b < 0.1  # the exploration floor (half of 10 % lands on "b")


def test_the_typical_error_is_learned_from_rest_and_ignores_a_few_real_changes():
    from alerts.effect import DEFAULT_TE, Noise

    rng = np.random.default_rng(4)
    noise = Noise()
    assert noise.te() == DEFAULT_TE  # until 20 pairs of blocks exist
    level = 3.7
    for minute in range(1, 24 * 60):
        if minute % 240 == 0:
            level += 0.5 if level < 4 else -0.5  # a real change every 4 hours
        noise.add(T0 + minute * 60.0, 1.0, level + 0.1 * rng.standard_normal())
    # Minute values with SD 0.1 give 5-minute means with SD 0.1 / sqrt(5) = 0.045: that is the TE.
    assert noise.te() == pytest.approx(0.1 / math.sqrt(5), rel=0.2)
    noise.add(T0 + 24 * 3600.0, 1.0, None)  # anything but rest breaks the block in progress
    assert noise.block[1] == -math.inf
