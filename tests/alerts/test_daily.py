"""Daily summaries: time worn, per state and activity, stress load, the night or morning value, validity."""

from __future__ import annotations

import math
from collections import deque

import pytest
from alerts_world import MIN, T0, calm, minutes, reading, stressed

from alerts.daily import DayBook, night_value
from alerts.settings import AlertSettings
from processing.reading import Activity, StressState

HOUR = 3600.0


def close_day(book: DayBook, readings) -> object:
    for r in readings:
        assert book.feed(r) == []
    return book.feed(reading(T0 + 86400 + 30))[0]  # the first reading of the next day closes it


def sleeping(t, ln=4.2, hr=52.0):
    return reading(t, StressState.CALM, score=10.0, ln_rmssd=ln, hr=hr)


def test_minutes_worn_per_state_and_activity_and_the_stress_load():
    rs = minutes(T0 + 8 * HOUR, 300)  # 08:01-13:00 calm rest
    rs += minutes(T0 + 13 * HOUR, 60, stressed)  # 13:01-14:00 stressed at rest, score 80
    rs += minutes(T0 + 14 * HOUR, 30, lambda t: reading(t, StressState.UNKNOWN, Activity.ACTIVE, None))
    day = close_day(DayBook(AlertSettings()), rs)
    assert day.date == "2023-11-15" and day.valid
    assert day.worn_min == pytest.approx(389, abs=1)  # the first reading has no predecessor
    assert day.state_min["stressed"] == pytest.approx(60) and day.activity_min["active"] == pytest.approx(30)
    assert day.rest_min == pytest.approx(359) and day.stressed_rest_min == pytest.approx(60)
    assert day.stress_load == pytest.approx(60 / 359)
    assert day.load_integral == pytest.approx(60 * (80 - 50) / 50)  # 36 "full-load" minutes


def test_a_day_with_too_little_data_is_invalid_and_says_why():
    day = close_day(DayBook(AlertSettings()), minutes(T0 + 9 * HOUR, 120))
    assert not day.valid and day.invalid_reason == "worn 119 min, fewer than 240"
    assert day.stress_load == 0.0  # still reported, never used by a baseline


def test_the_night_value_is_the_mean_lnrmssd_over_detected_sleep():
    # Awake in bed 23:00-23:30 (HR 70, lnRMSSD 3.5), asleep 23:30-06:30 (HR 52, lnRMSSD 4.2),
    # a restless 5 minutes at 03:00 (moving), up at 07:00.
    prev = T0 - 86400
    rs = minutes(prev + 23 * HOUR, 30, lambda t: reading(t, ln_rmssd=3.5, hr=70.0))
    rs += minutes(prev + 23.5 * HOUR, 30, sleeping) + minutes(T0, 180, sleeping)
    rs += minutes(T0 + 3 * HOUR, 5, lambda t: reading(t, StressState.UNKNOWN, Activity.ACTIVE, None, hr=95))
    rs += minutes(T0 + 3 * HOUR + 5 * MIN, 205, sleeping)
    rs += minutes(T0 + 7 * HOUR, 600)
    book = DayBook(AlertSettings())
    for r in rs[:60]:
        book.feed(r)
    day = close_day(book, rs[60:])
    assert day.night_source == "sleep" and day.night_ln_rmssd == pytest.approx(4.2)
    assert 360 <= day.sleep_min <= 420  # the awake half hour and the restless block are not sleep


def test_without_enough_sleep_the_first_calm_morning_minutes_are_used():
    rs = minutes(T0 + 7 * HOUR, 5, lambda t: calm(t, ln_rmssd=3.95))
    rs += minutes(T0 + 7 * HOUR + 5 * MIN, 400, lambda t: calm(t, ln_rmssd=3.0))
    day = close_day(DayBook(AlertSettings()), rs)
    assert day.night_source == "morning"
    # The first reading has no weight, so the first 5 weighted minutes are 4 at 3.95 and one at 3.0.
    assert day.night_ln_rmssd == pytest.approx((4 * 3.95 + 3.0) / 5)


def test_no_night_and_no_calm_morning_gives_no_value_rather_than_a_guess():
    day = close_day(DayBook(AlertSettings()), minutes(T0 + 12 * HOUR, 400))
    assert day.night_ln_rmssd is None and day.night_source is None


def test_night_value_needs_steady_low_heart_rate():
    steady = {i: [5.0, 5 * 52.0, 5 * 52.0**2, 5 * 4.2, 0.0] for i in range(20)}
    assert night_value(steady, 60) == (pytest.approx(4.2), 100.0)
    unsteady = {i: [5.0, 5 * 52.0, 5 * (52.0**2 + 25.0), 5 * 4.2, 0.0] for i in range(20)}  # SD 5 bpm
    assert night_value(unsteady, 60) == (None, 0.0)
    assert night_value(steady, 120) == (None, 100.0)  # too short a night


def test_days_roll_over_by_reading_time_and_a_gap_closes_every_day_in_it():
    book = DayBook(AlertSettings())
    book.feed(calm(T0 + 10 * HOUR))
    closed = book.feed(calm(T0 + 3 * 86400 + 10 * HOUR))
    assert [d.date for d in closed] == ["2023-11-15", "2023-11-16", "2023-11-17"]
    assert all(not d.valid for d in closed)


def test_local_time_follows_the_time_zone():
    book = DayBook(AlertSettings(timezone="Africa/Cairo"))  # UTC+2 in November
    book.feed(calm(T0 + 21 * HOUR))  # 23:00 local
    closed = book.feed(calm(T0 + 22.5 * HOUR))  # 00:30 local, the next day
    assert [d.date for d in closed] == ["2023-11-15"]
    assert math.isclose(book.open.day, closed[0].day + 1)


def test_finish_closes_the_open_day_of_a_recording_as_it_stands():
    from alerts.engine import AlertEngine

    eng = AlertEngine("p")
    for r in minutes(T0 + 9 * HOUR, 300):
        eng.feed(r)
    (day,) = eng.finish()
    assert day.date == "2023-11-15" and day.worn_min == pytest.approx(299) and day.valid
    assert eng.finish() == []


@pytest.mark.slow
def test_a_beat_level_night_through_the_real_pipeline_gives_the_night_value():
    """The coarse path's night detection, checked once on 10-second Readings of simulated beats."""
    import numpy as np

    from alerts.engine import AlertEngine
    from collector.simulator import day_script, plan_days, simulate, to_beats
    from processing.pipeline import Pipeline

    day0, day1 = plan_days(2, seed=6)
    night = [day0[-1], *day1[:2]]  # to bed, asleep past midnight, up and resting until 07:30
    sim = simulate(day_script(night), seed=6, start=T0 + night[0].start_s)
    pipe, eng = Pipeline("p"), AlertEngine("p")
    readings = [r for b in to_beats(sim) for r in pipe.feed(b)]
    for r in readings:
        eng.feed(r)
    summaries = eng.finish()
    assert [d.date for d in summaries] == ["2023-11-16"]  # day 0 (its last hour) closed during feed
    day = summaries[0]
    asleep = [r.ln_rmssd for r in readings if T0 + 86400 <= r.time < T0 + 86400 + day1[0].duration_s]
    assert day.night_source == "sleep"
    assert day.night_ln_rmssd == pytest.approx(np.mean(asleep), abs=0.05)
    assert day.sleep_min >= 0.8 * day1[0].duration_s / 60


@pytest.mark.slow
def test_readings_from_a_strap_without_rr_count_as_worn_but_never_as_rest_stress_or_a_night_value():
    """Heart rate alone (processing/pipeline.py: no lnRMSSD, quality 0, state unknown): the day knows
    the strap was worn, but the engine learns nothing about rest or HRV from it and sends nothing."""
    from alerts.engine import AlertEngine
    from collector.events import HeartRate
    from processing.pipeline import Pipeline, Settings

    pipeline = Pipeline("p", Settings(step_s=60))
    rates = [HeartRate("p", "band", T0 + 2 * HOUR + k, 58.0 + (k // 600) % 30) for k in range(20 * 3600)]
    readings = [r for e in rates for r in pipeline.feed(e)]
    assert readings and all(r.ln_rmssd is None and r.hrv_unavailable for r in readings)
    engine = AlertEngine("p", AlertSettings())
    outputs = [o for r in readings for o in engine.feed(r)] + engine.finish()
    [day] = [o for o in outputs if hasattr(o, "worn_min")]
    assert day.worn_min == pytest.approx(20 * 60 - 1, abs=1) and day.state_min["unknown"] == day.worn_min
    assert day.rest_min == 0 and day.stress_load is None and day.night_ln_rmssd is None and not day.valid
    assert outputs == [day]  # no prompt, no decision
    assert engine.recent == deque() and engine.noise.means == [] and engine.noise.diffs == []
