"""Acute prompts and the prompt policy: N of M stressed minutes at rest, cooldown, cap, quiet hours,
snooze, dismiss, `not_stressed`, expiry, deterministic ids."""

from __future__ import annotations

import pytest
from alerts_world import MIN, T0, calm, minutes, of_type, reading, run, stressed

from alerts.engine import AlertEngine, Decision
from alerts.prompt import Prompt, PromptKind
from alerts.settings import AlertSettings
from processing.reading import Activity, StressState

HOUR = 3600.0
AT_10 = T0 + 10 * HOUR


def prompts(out) -> list[Prompt]:
    return of_type(out, Prompt)


def episode(start: float, n: int, make=stressed) -> list:
    """Half an hour of calm rest, then `n` minutes of `make` from `start`."""
    return minutes(start - 30 * MIN, 30) + minutes(start, n, make)


def test_an_acute_stress_hour_at_rest_gives_exactly_one_prompt_after_10_of_15_minutes():
    eng = AlertEngine("ann")
    out = run(eng, episode(AT_10, 60) + minutes(AT_10 + HOUR, 30))
    (p,) = prompts(out)
    assert p.time == AT_10 + 10 * MIN and p.kind == PromptKind.ACUTE
    assert p.reason == "You have been stressed for 10 of the last 15 minutes at rest (stress score 80)."
    assert p.id == f"ann-{int(p.time)}-acute" and p.expires_at == p.time + 15 * MIN and p.stress_score == 80
    assert p.exercise.name in AlertSettings().acute_exercises and p.exercise.instructions
    # The rest of the hour is in the cooldown; said once, not every minute.
    (held,) = of_type(out, Decision, what="suppressed")
    assert "cooldown" in held.reason


def test_the_cooldown_holds_a_second_episode_until_90_minutes_have_passed():
    eng = AlertEngine("p")
    out = run(eng, episode(AT_10, 20) + minutes(AT_10 + 20 * MIN, 40))
    out += run(eng, minutes(AT_10 + HOUR, 60, stressed))
    first, second = prompts(out)
    assert first.time == AT_10 + 10 * MIN
    assert second.time == first.time + 90 * MIN  # the first reading out of the cooldown


def test_stress_that_is_not_sustained_gives_no_prompt():
    eng = AlertEngine("p")
    flicker = [stressed(AT_10 + i * MIN) if i % 2 else calm(AT_10 + i * MIN) for i in range(1, 61)]
    assert prompts(run(eng, flicker)) == []  # 7-8 of every 15 minutes


@pytest.mark.parametrize(
    "make",
    [
        lambda t: stressed(t, activity=Activity.ACTIVE),
        lambda t: stressed(t, activity=Activity.RECOVERY),
        lambda t: stressed(t, quality=0.3),
    ],
    ids=["active", "recovery", "poor signal"],
)
def test_no_acute_prompt_during_activity_recovery_or_poor_signal(make):
    eng = AlertEngine("p")
    assert prompts(run(eng, episode(AT_10, 60, make))) == []


def test_no_acute_prompt_in_the_sleep_window_even_outside_quiet_hours():
    eng = AlertEngine("p", AlertSettings(quiet_hours=("00:00", "00:00")))
    assert prompts(run(eng, minutes(T0 + 1 * HOUR, 60, stressed))) == []
    assert of_type(run(eng, episode(T0 + 9 * HOUR, 15)), Prompt)


def test_quiet_hours_hold_and_nothing_is_queued_for_later():
    eng = AlertEngine("p", AlertSettings(sleep_window=("01:00", "06:00")))
    out = run(eng, minutes(T0 + 22 * HOUR, 90, stressed))  # 22:00-23:30, quiet from 22:00
    assert prompts(out) == []
    (held,) = of_type(out, Decision, what="suppressed")
    assert held.reason.endswith("Not sent: quiet hours (22:00-07:30).")
    assert prompts(run(eng, minutes(T0 + 23.5 * HOUR, 60 * 8, calm))) == []  # the morning brings nothing


def test_the_daily_cap_limits_prompts_to_three():
    eng = AlertEngine("p", AlertSettings(cooldown_min=10))
    out = run(eng, episode(T0 + 8 * HOUR, 600))
    assert len(prompts(out)) == 3
    assert any("daily cap (3 prompts) reached" in d.reason for d in of_type(out, Decision, what="suppressed"))
    assert len(prompts(run(eng, minutes(T0 + 86400 + 8 * HOUR, 15, stressed)))) == 1  # a new day


def test_no_acute_prompt_within_minutes_of_an_exercise_done():
    eng = AlertEngine("p", AlertSettings(cooldown_min=1))
    (p,) = prompts(run(eng, episode(AT_10, 10)))
    eng.respond(p.id, "done", None, AT_10 + 16 * MIN)
    out = run(eng, minutes(AT_10 + 10 * MIN, 15, stressed))  # still stressed up to 9 min after done
    assert prompts(out) == []
    assert prompts(run(eng, minutes(AT_10 + 25 * MIN, 2, stressed)))  # 10 min after done: again


def test_snooze_brings_the_same_exercise_back_after_the_minutes_asked():
    eng = AlertEngine("p")
    (p,) = prompts(run(eng, episode(AT_10, 10)))
    (ack,) = eng.respond(p.id, "snooze", 20, AT_10 + 11 * MIN)
    assert ack.what == "response" and ack.data["action"] == "snooze"
    out = run(eng, minutes(AT_10 + 10 * MIN, 30, calm))
    (again,) = prompts(out)
    assert again.time == AT_10 + 31 * MIN and again.exercise == p.exercise
    assert again.reason.startswith("The reminder you asked for: You have been stressed")
    eng.respond(again.id, "snooze", None, AT_10 + 32 * MIN)  # snoozed again: the default 15 minutes
    (third,) = prompts(run(eng, minutes(AT_10 + 40 * MIN, 10, calm)))
    assert third.time == AT_10 + 47 * MIN and third.reason == again.reason


def test_dismiss_closes_the_prompt_and_a_repeated_answer_is_ignored():
    eng = AlertEngine("p")
    (p,) = prompts(run(eng, episode(AT_10, 10)))
    assert len(eng.respond(p.id, "dismiss", None, AT_10 + 11 * MIN)) == 1
    (ignored,) = eng.respond(p.id, "done", None, AT_10 + 12 * MIN)  # a QoS 1 redelivery, or a change of mind
    assert ignored.what == "ignored" and eng.prompts[p.id]["answer"]["action"] == "dismiss"
    assert prompts(run(eng, minutes(AT_10 + 10 * MIN, 60, calm))) == []
    with pytest.raises(ValueError, match="unknown prompt id 'nope'"):
        eng.respond("nope", "done", None, AT_10)
    with pytest.raises(
        ValueError, match="action must be one of done, snooze, dismiss, not_stressed, got 'maybe'"
    ):
        eng.respond(p.id, "maybe", None, AT_10)


def test_not_stressed_makes_the_engine_less_eager_in_that_context_only():
    eng = AlertEngine("p", AlertSettings(cooldown_min=1, daily_cap=10))
    (p,) = prompts(run(eng, episode(AT_10, 10)))  # morning (06-12)
    eng.respond(p.id, "not_stressed", None, AT_10 + 11 * MIN)
    assert eng.status()["not_stressed"]["morning"] == 1
    assert eng.status()["required_stressed_min"] == {
        "night": 10,
        "morning": 12,
        "afternoon": 10,
        "evening": 10,
    }
    run(eng, minutes(AT_10 + 10 * MIN, 30))
    assert prompts(run(eng, minutes(AT_10 + 40 * MIN, 11, stressed))) == []  # 11 < 12 minutes: not enough
    assert prompts(run(eng, minutes(AT_10 + 51 * MIN, 1, stressed)))  # the 12th minute
    run(eng, minutes(T0 + 13 * HOUR, 30))
    assert len(prompts(run(eng, minutes(T0 + 13.5 * HOUR, 10, stressed)))) == 1  # afternoon: 10 still suffice
    # `done` in the morning context takes the step back.
    eng.respond(
        prompts(run(eng, minutes(AT_10 + 86400, 12, stressed)))[0].id, "done", None, AT_10 + 86400 + 13 * MIN
    )
    assert eng.status()["required_stressed_min"]["morning"] == 10


def test_prompt_json_keeps_the_contract_fields():
    eng = AlertEngine("p")
    (p,) = prompts(run(eng, episode(AT_10, 10)))
    d = p.to_dict()
    assert set(d) == {"id", "person", "time", "kind", "exercise", "reason", "stress_score", "expires_at"}
    assert set(d["exercise"]) >= {
        "name",
        "inhale_s",
        "hold_in_s",
        "exhale_s",
        "hold_out_s",
        "cycles",
        "duration_s",
        "instructions",
        "breaths_per_min",
    }


def test_unknown_state_is_never_counted_as_stress():
    eng = AlertEngine("p")
    unknown = episode(AT_10, 60, lambda t: reading(t, StressState.UNKNOWN, score=None))
    assert prompts(run(eng, unknown)) == []


def test_each_exercise_carries_exact_pacing_and_instructions():
    from alerts.exercises import CATALOGUE

    expected = {  # name: (breaths per minute, minutes)
        "resonance breathing": (6.0, 5.0),
        "resonance breathing (10 min)": (6.0, 10.0),
        "cyclic sighing": (60 / 9, 4.95),
        "box breathing": (3.75, 304 / 60),
    }
    for name, (bpm, minutes_) in expected.items():
        ex = CATALOGUE[name]
        assert ex.name == name and ex.breaths_per_min == pytest.approx(bpm)
        assert ex.duration_s / 60 == pytest.approx(minutes_, abs=0.1)
        assert f"{ex.inhale_s:.0f} seconds" in ex.instructions or "2 seconds" in ex.instructions
    assert CATALOGUE["box breathing"].hold_in_s == CATALOGUE["box breathing"].hold_out_s == 4.0
