"""The phone's answers to prompts: a snooze lasts 1-240 minutes and shows in the status; anything
else is refused before the engine changes; the first answer stands and later ones are counted."""

from __future__ import annotations

import json
import math

import pytest
from alerts_world import MIN, T0, calm, minutes, of_type, run, stressed

from alerts.engine import AlertEngine
from alerts.prompt import SNOOZE_MINUTES, Prompt, parse_response, snooze_minutes
from alerts.settings import AlertSettings

AT_10 = T0 + 10 * 3600.0
ANSWERED = AT_10 + 11 * MIN


def prompted(settings: AlertSettings | None = None) -> tuple[AlertEngine, Prompt]:
    """An engine that has just sent one acute prompt (10 stressed minutes at rest from 10:00)."""
    eng = AlertEngine("ann", settings)
    (p,) = of_type(run(eng, minutes(AT_10 - 30 * MIN, 30, calm) + minutes(AT_10, 10, stressed)), Prompt)
    return eng, p


def state(eng: AlertEngine) -> str:
    return json.dumps(eng.to_dict(), sort_keys=True)


BAD_MINUTES = [1e9, math.inf, -math.inf, math.nan, 10**400, -5, 0, 0.5, 240.5, True, "30", [30], {}]


@pytest.mark.parametrize("bad", BAD_MINUTES, ids=lambda v: repr(v)[:12])
def test_a_snooze_outside_1_to_240_minutes_is_refused_before_anything_changes(bad):
    eng, p = prompted()
    before = state(eng)
    with pytest.raises(ValueError, match=r"^minutes: must be a snooze length from 1 to 240 minutes, got "):
        eng.respond(p.id, "snooze", bad, ANSWERED)
    assert state(eng) == before
    # the person can still answer properly
    (ack,) = eng.respond(p.id, "snooze", 30, ANSWERED)
    assert ack.what == "response" and eng.status()["snoozed_until"] == ANSWERED + 30 * MIN


def test_the_limits_themselves_are_snooze_lengths_and_a_huge_integer_is_named_by_its_length():
    assert SNOOZE_MINUTES == (1, 240)
    assert [snooze_minutes(m) for m in (1, 2.5, 240, None)] == [1, 2.5, 240, None]
    with pytest.raises(ValueError, match="got an integer of 401 digits$"):
        snooze_minutes(10**400)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("1e9", "1000000000.0"),
        ("1e400", "inf"),
        ("Infinity", "inf"),
        ("-Infinity", "-inf"),
        ("NaN", "nan"),
        ("1" + "0" * 400, "an integer of 401 digits"),
        ("true", "True"),
        ('"30"', "'30'"),
        ("-5", "-5"),
        ("0", "0"),
    ],
)
def test_the_phone_s_json_gets_the_same_check(text, shown):
    payload = '{"id": "ann-1-acute", "action": "snooze", "minutes": ' + text + "}"
    with pytest.raises(ValueError) as err:
        parse_response(payload.encode())
    assert str(err.value) == f"minutes: must be a snooze length from 1 to 240 minutes, got {shown}"
    assert parse_response(b'{"id": "ann-1-acute", "action": "snooze", "minutes": 240}')["minutes"] == 240


def test_the_default_snooze_must_be_a_snooze_length_too():
    with pytest.raises(
        ValueError, match="^snooze_default_min: must be a snooze length from 1 to 240 minutes"
    ):
        AlertSettings(snooze_default_min=1e9)


def test_a_pending_snooze_shows_in_the_status_until_the_reminder_comes():
    eng, p = prompted()
    assert (eng.status()["snoozed_until"], eng.status()["snoozed_prompt"]) == (None, None)
    eng.respond(p.id, "snooze", 20, ANSWERED)
    assert (eng.status()["snoozed_until"], eng.status()["snoozed_prompt"]) == (ANSWERED + 20 * MIN, p.id)
    assert AlertEngine.from_dict(eng.to_dict()).status()["snoozed_until"] == ANSWERED + 20 * MIN
    (reminder,) = of_type(run(eng, minutes(AT_10 + 10 * MIN, 25, calm)), Prompt)
    assert reminder.time == ANSWERED + 20 * MIN
    assert (eng.status()["snoozed_until"], eng.status()["snoozed_prompt"]) == (None, None)


def test_the_first_answer_stands_and_later_ones_are_counted():
    eng, p = prompted()
    (taken,) = eng.respond(p.id, "done", None, ANSWERED)
    assert taken.what == "response"
    after_first = eng.to_dict()
    (again,) = eng.respond(p.id, "done", None, ANSWERED + MIN)  # a QoS 1 redelivery
    (changed,) = eng.respond(p.id, "dismiss", None, ANSWERED + 2 * MIN)  # a change of mind
    assert again.what == changed.what == "ignored"
    assert changed.reason == f"Prompt {p.id} already answered done; dismiss ignored."
    assert changed.data == {"id": p.id, "action": "dismiss", "minutes": None, "answered": "done"}
    # Nothing but the counter moved: the answer, the exercise being measured, the policy, the day.
    assert eng.to_dict() == {**after_first, "ignored_answers": 2}
    assert eng.status()["ignored_answers"] == 2
    assert AlertEngine.from_dict(eng.to_dict()).status()["ignored_answers"] == 2


def test_a_later_snooze_does_not_snooze_an_answered_prompt():
    eng, p = prompted()
    eng.respond(p.id, "not_stressed", None, ANSWERED)
    (ignored,) = eng.respond(p.id, "snooze", 30, ANSWERED + MIN)
    assert ignored.what == "ignored" and eng.status()["snoozed_until"] is None
    assert of_type(run(eng, minutes(AT_10 + 10 * MIN, 60, calm)), Prompt) == []


def test_a_state_saved_before_the_counter_restores_with_none_counted():
    eng, _ = prompted()
    saved = eng.to_dict()
    del saved["ignored_answers"]
    assert AlertEngine.from_dict(saved).status()["ignored_answers"] == 0


@pytest.mark.parametrize("due_min", [1e9, math.inf, math.nan])
def test_a_saved_snooze_beyond_240_minutes_is_dropped_at_restore_and_said(due_min):
    eng, p = prompted()
    eng.respond(p.id, "snooze", 30, ANSWERED)
    saved = json.loads(json.dumps(eng.to_dict()))  # as the store keeps it
    saved["policy"]["snooze"]["due"] = ANSWERED + due_min * 60.0  # as the code before the bound saved it
    restored = AlertEngine.from_dict(saved)
    assert restored.policy.snooze is None and restored.status()["snoozed_until"] is None
    (note,) = restored.repaired
    assert note.startswith(f"dropped the saved snooze of prompt {p.id}: due ")
    assert note.endswith("minutes after it was asked for, more than the 240 allowed")
    # acute prompts are no longer held by it
    assert of_type(run(restored, minutes(AT_10 + 100 * MIN, 12, stressed)), Prompt)
    assert AlertEngine.from_dict(eng.to_dict()).repaired == []  # a 30-minute snooze is kept
