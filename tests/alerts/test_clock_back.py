"""A wall clock set back (NTP correcting a clock that was ahead, before or across a restart): the
engine follows the new clock at once, counts no minute or date twice, and keeps what was pending."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from alerts_world import MIN, T0, calm, minutes, of_type, run, stressed

from alerts.daily import DailySummary
from alerts.engine import CLOCK_BACK_TOLERANCE_S, AlertEngine, Decision
from alerts.prompt import Prompt

HOUR = 3600.0
DAY = 86400.0


def restarted(eng: AlertEngine) -> AlertEngine:
    """The engine as the service restores it after a restart (its state through JSON)."""
    return AlertEngine.from_dict(json.loads(json.dumps(eng.to_dict())))


def test_after_a_restart_with_the_clock_corrected_every_reading_counts_again():
    """Issue 16 row 2: the clock ran an hour ahead, the service restarts with it corrected. Before,
    `last_time` stayed in the future and every reading of that hour was dropped, silently."""
    ahead = T0 + 9 * HOUR + HOUR  # 09:00 real, 10:00 on the clock
    eng = AlertEngine("p")
    run(eng, minutes(ahead, 120))  # two hours on the clock that is ahead
    eng = restarted(eng)
    out = run(eng, minutes(T0 + 11 * HOUR + 5 * MIN, 120))  # from 11:06 real: before the saved 12:00
    (clock,) = of_type(out, Decision, what="clock")
    assert clock.data["step_s"] == pytest.approx(-54 * MIN) and "went back 3240 s" in clock.reason
    assert eng.last_time == T0 + 13 * HOUR + 5 * MIN
    # every reading after the correction counted once: 119 + 119 minutes (the first of each run starts it)
    assert eng.days.open.date == "2023-11-15" and eng.days.open.worn_min == pytest.approx(238)


def test_a_prompt_comes_right_after_the_clock_went_back_and_the_cooldown_keeps_its_real_length():
    eng = AlertEngine("p")
    at_10 = T0 + 10 * HOUR
    (first,) = of_type(run(eng, minutes(at_10 - 30 * MIN, 30) + minutes(at_10, 10, stressed)), Prompt)
    later = minutes(at_10 + 10 * MIN - 2 * HOUR, 200, stressed)  # NTP sets the clock 2 h back
    out = run(eng, later)
    (clock,) = of_type(out, Decision, what="clock")
    # the cooldown (90 min) counts from the prompt in real time: the next one comes 90 min after
    # it, taking no time to have passed between the last reading on the old clock and the first on
    # the new one (the step is measured between them: -2 h + 1 min)
    step = clock.data["step_s"]
    assert step == later[0].time - (at_10 + 10 * MIN)
    assert of_type(out, Prompt)[0].time == first.time + step + 90 * MIN


def test_the_effect_of_an_exercise_is_measured_as_long_after_it_with_the_clock_set_back():
    def effect_after_done(back: float) -> float:
        eng = AlertEngine("p")
        at_10 = T0 + 10 * HOUR
        (p,) = of_type(run(eng, minutes(at_10 - 30 * MIN, 30) + minutes(at_10, 10, stressed)), Prompt)
        eng.respond(p.id, "done", None, at_10 + 11 * MIN)
        out = run(eng, minutes(at_10 + 10 * MIN + back, 60, calm))
        (effect,) = of_type(out, Decision, what="effect")
        return effect.time - (
            at_10 + 11 * MIN + sum(d.data["step_s"] for d in of_type(out, Decision, what="clock"))
        )

    assert effect_after_done(-5 * HOUR) == effect_after_done(0.0)


def test_a_snooze_keeps_its_length_in_real_time():
    eng = AlertEngine("p")
    at_10 = T0 + 10 * HOUR
    (p,) = of_type(run(eng, minutes(at_10 - 30 * MIN, 30) + minutes(at_10, 10, stressed)), Prompt)
    eng.respond(p.id, "snooze", 20, at_10 + 11 * MIN)
    out = run(eng, minutes(at_10 + 11 * MIN - 3 * HOUR, 40, calm))  # the clock set 3 h back
    (clock,) = of_type(out, Decision, what="clock")
    (again,) = of_type(out, Prompt)
    assert again.time == at_10 + 31 * MIN + clock.data["step_s"]  # 20 minutes after the answer


def test_a_small_step_back_drops_the_readings_it_repeats_and_changes_nothing_else():
    eng = AlertEngine("p")
    run(eng, minutes(T0 + 10 * HOUR, 30))
    before = json.dumps(eng.to_dict(), sort_keys=True)
    out = run(eng, [calm(T0 + 10 * HOUR + 30 * MIN - CLOCK_BACK_TOLERANCE_S + 1)])
    assert out == [] and json.dumps(eng.to_dict(), sort_keys=True) == before


def dates(outputs) -> list[str]:
    return [o.date for o in of_type(outputs, DailySummary)]


def test_a_clock_days_ahead_corrected_moves_the_open_day_and_no_date_is_summarised_twice():
    """The clock ran 2 days ahead for a day and a half, then was corrected: the date closed on the
    wrong clock leaves the history, the open day (measured just now) becomes today's, and every
    date after is summarised once, from the readings of its own day."""
    ahead = 2 * DAY
    eng = AlertEngine("p")
    wrong = run(eng, minutes(T0 + 8 * HOUR + ahead, 28 * 60))  # real 15th 08:00 - 16th 12:00
    assert dates(wrong) == ["2023-11-17"]
    eng = restarted(eng)
    right = run(eng, minutes(T0 + DAY + 12 * HOUR + 10 * MIN, 60 * 60))  # real 16th 12:10 for 60 h
    (clock,) = of_type(right, Decision, what="clock")
    assert clock.data["open_day"] == "2023-11-18" and clock.data["now_day"] == "2023-11-16"
    assert clock.data["removed_days"] == ["2023-11-17"] and "leave the history" in clock.reason
    assert dates(right) == ["2023-11-16", "2023-11-17", "2023-11-18"]
    assert Counter(h.date for h in eng.history) == {"2023-11-16": 1, "2023-11-17": 1, "2023-11-18": 1}
    sixteenth = of_type(right, DailySummary)[0]
    # the 12 h measured under the 18th's date (real 16th 00:00-12:00: 721 readings) and the rest of
    # the 16th (12:11-23:59: 709 readings, the first of them starting the count again)
    assert sixteenth.worn_min == pytest.approx(721 + 708)
    assert [d.worn_min for d in of_type(right, DailySummary)[1:]] == pytest.approx([1440, 1440], abs=1)


def test_a_clock_hours_ahead_across_midnight_reopens_the_day_it_closed_too_early():
    """Five hours ahead: the 15th was closed at 19:00 real time. Corrected at 22:00, the 15th is
    reopened and gets its evening; it is summarised again once, with all of its minutes."""
    ahead = 5 * HOUR
    eng = AlertEngine("p")
    first = run(eng, minutes(T0 + 8 * HOUR + ahead, 14 * 60))  # real 08:00-22:00 on the 15th
    assert [(d.date, round(d.worn_min)) for d in of_type(first, DailySummary)] == [("2023-11-15", 658)]
    out = run(eng, minutes(T0 + 22 * HOUR + 2 * MIN, 4 * 60))  # real 22:02 - 02:02
    (clock,) = of_type(out, Decision, what="clock")
    assert clock.data["reopened"] is True and "which is reopened" in clock.reason
    (day,) = of_type(out, DailySummary)
    # every reading of the 15th counted once: 840 on the clock that was ahead, 117 from 22:03
    assert day.date == "2023-11-15" and day.worn_min == pytest.approx(840 - 1 + 117 - 1)
    assert [h.date for h in eng.history] == ["2023-11-15"]
