"""The personal baseline: robust, always learning from rest, by day and night, persistable."""

from __future__ import annotations

import json
import math
from zoneinfo import ZoneInfo

import pytest

from processing.baseline import (
    CALIBRATION_SAMPLES,
    KEPT_UNTIL_BPM,
    MIN_HR_SD,
    POPULATION_LN_RMSSD,
    POPULATION_REST_HR,
    PRIOR_SAMPLES,
    SAMPLE_S,
    Baseline,
    shrunk_sd,
)
from processing.stress import StressModel

DAY = 1_767_268_800.0  # 2026-01-01 12:00 UTC
NIGHT = DAY + 14 * 3600.0  # 02:00 UTC the next night


def feed(b: Baseline, start: float, minutes: float, ln: float, hr: float) -> None:
    t = start
    while t < start + minutes * 60:
        b.add_rest(t, ln, hr)
        b.add_hr(t, hr)
        t += 10.0


def test_new_baseline_is_the_population_norm():
    ref = Baseline().reference(DAY)
    assert (ref.ln_rmssd_mean, ref.hr_mean, ref.samples) == (POPULATION_LN_RMSSD[0], POPULATION_REST_HR[0], 0)
    assert not Baseline().calibrated


def test_ten_minutes_of_rest_calibrate_and_the_median_is_the_person():
    b = Baseline()
    feed(b, DAY, 10, ln=3.2, hr=74.0)
    ref = b.reference(DAY + 600)
    assert b.calibrated and ref.samples == CALIBRATION_SAMPLES
    assert ref.ln_rmssd_mean == pytest.approx(3.2) and ref.hr_mean == pytest.approx(74.0)


def test_a_stressful_hour_in_a_day_of_rest_barely_moves_it_but_a_new_normal_wins():
    b = Baseline()
    feed(b, DAY - 4 * 3600, 120, ln=3.6, hr=64.0)
    feed(b, DAY - 2 * 3600, 60, ln=2.8, hr=85.0)  # a stressful hour, seated
    assert b.reference(DAY).hr_mean == pytest.approx(64.0)
    feed(b, DAY - 3600, 150, ln=3.3, hr=70.0)  # rest is now higher: the baseline follows
    assert b.reference(DAY).hr_mean == pytest.approx(70.0)


def test_night_rest_has_its_own_baseline_and_borrows_the_days_until_calibrated():
    b = Baseline()
    feed(b, DAY, 30, ln=3.3, hr=72.0)
    assert b.period(DAY) == "day" and b.period(NIGHT) == "night"
    assert b.reference(NIGHT).hr_mean == pytest.approx(72.0)  # no night data yet: the day's
    feed(b, NIGHT, 30, ln=4.0, hr=54.0)
    night, day = b.reference(NIGHT), b.reference(DAY)
    assert night.hr_mean == pytest.approx(54.0) and night.ln_rmssd_mean == pytest.approx(4.0)
    assert day.hr_mean == pytest.approx(72.0) and day.ln_rmssd_mean == pytest.approx(3.3)


def test_local_time_decides_the_period():
    """02:00 UTC is 11:00 in Tokyo (UTC+9): day there."""
    assert Baseline(ZoneInfo("Asia/Tokyo")).period(NIGHT) == "day"
    assert StressModel(tz=ZoneInfo("Asia/Tokyo")).baseline.period(NIGHT) == "day"


def test_the_period_follows_daylight_saving_time():
    """In Berlin 21:30 UTC is 22:30 in winter (CET, night) and 23:30 in summer (CEST, night); 20:30
    UTC is 21:30 CET (day) in winter but 22:30 CEST (night) in summer, the same zone throughout."""
    berlin = Baseline(ZoneInfo("Europe/Berlin"))
    winter, summer = 1767225600.0, 1782864000.0  # 2026-01-01 and 2026-07-01, 00:00 UTC
    assert berlin.period(winter + 20.5 * 3600) == "day"
    assert berlin.period(summer + 20.5 * 3600) == "night"


def test_resting_heart_rate_is_the_lowest_sustained_heart_rate():
    b = Baseline()
    assert b.resting_hr() == POPULATION_REST_HR[0]
    feed(b, DAY, 5, ln=3.0, hr=62.0)
    feed(b, DAY + 300, 30, ln=1.5, hr=150.0)  # exercise: most of the readings
    assert b.resting_hr() == pytest.approx(62.0)
    flat = Baseline()
    feed(flat, DAY, 60, ln=3.0, hr=97.0)  # seated all hour at a high heart rate
    assert flat.resting_hr() == pytest.approx(97.0)


def test_round_trip_through_json_keeps_everything_learned():
    b = Baseline(ZoneInfo("Europe/Berlin"))
    feed(b, DAY, 25, ln=3.1, hr=71.0)
    feed(b, NIGHT, 12, ln=3.9, hr=55.0)
    copy = Baseline.from_dict(json.loads(json.dumps(b.to_dict())), ZoneInfo("Europe/Berlin"))
    for t in (DAY, NIGHT):
        assert copy.reference(t) == b.reference(t)
    assert copy.resting_hr() == b.resting_hr() and copy.calibrated
    # and it goes on learning where it left off: the next sample is 30 s after the last one
    last = max(row[0] for rows in b.to_dict()["rest"].values() for row in rows)
    assert not copy.add_rest(last + SAMPLE_S / 2, 3.0, 70.0)
    assert copy.add_rest(last + SAMPLE_S, 3.0, 70.0)
    # a clock that went back (an older recording replayed on it) does not stop the learning
    assert copy.add_rest(last - 7 * 86400.0, 3.0, 70.0)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"version": 2},
        {"version": 1, "rest": {"dusk": []}, "hr": []},
        {"version": 1, "rest": {"day": [[1.0, 2.0]]}, "hr": []},
    ],
)
def test_unreadable_baseline_data_is_a_value_error(data):
    with pytest.raises(ValueError, match="baseline"):
        Baseline.from_dict(data)


def test_spread_has_floors():
    b = Baseline()
    feed(b, DAY, 20, ln=3.0, hr=70.0)  # perfectly steady: zero spread
    ref = b.reference(DAY)
    assert ref.hr_sd > 0 and ref.ln_rmssd_sd > 0 and not math.isnan(ref.hr_sd)


def test_a_young_baselines_spread_is_shrunk_toward_the_populations_until_enough_rest_is_seen():
    """Issue 17: a few minutes of steady rest made every wobble of 2 bpm read as stress (the
    demo's morning rest scored 94 at HR 68). The spread is the population's with a weight of
    PRIOR_SAMPLES rest samples and the person's own with the weight of the samples seen."""
    spreads = []
    # By hand: the population's 8 bpm with the weight of 20 samples, the person's floor of 2 bpm
    # with the weight of 2 samples a minute: sqrt((20 x 64 + n x 4) / (20 + n)).
    want = {3: 7.082, 10: 5.831, 60: 3.546, 8 * 60: 2.286}
    for minutes in (3, 10, 60, 8 * 60):  # all in the day period (12:00-20:00)
        b = Baseline()
        feed(b, DAY, minutes, ln=3.5, hr=66.0)  # perfectly steady: the person's own spread is the floor
        ref = b.reference(DAY)
        assert ref.hr_sd == pytest.approx(want[minutes], abs=1e-3)
        spreads.append(ref.hr_sd)
    assert spreads == sorted(spreads, reverse=True)
    assert (
        spreads[1] > 5.0 and spreads[-1] < MIN_HR_SD + 0.5
    )  # 10 min: still wide; a day: nearly the person's


def test_shrunk_sd_is_the_moderated_variance():
    assert shrunk_sd(2.0, 0, 8.0) == 8.0
    assert shrunk_sd(2.0, PRIOR_SAMPLES, 8.0) == pytest.approx(math.sqrt((64 + 4) / 2))
    assert shrunk_sd(3.0, 10**9, 8.0) == pytest.approx(3.0, rel=1e-6)


def test_declared_rest_counts_its_independent_samples_for_the_spread():
    """A calibration gives a sample per reading (10 s apart, overlapping 60 s windows): all are
    kept for the median, but the spread's shrinkage counts one per SAMPLE_S."""
    declared, inferred = Baseline(), Baseline()
    t = DAY
    while t < DAY + 600:
        declared.add_rest(t, 3.5, 66.0, known=True)
        inferred.add_rest(t, 3.5, 66.0)
        t += 10.0
    assert declared.reference(DAY).samples == 60 and inferred.reference(DAY).samples == 20
    assert declared.reference(DAY).hr_sd == pytest.approx(inferred.reference(DAY).hr_sd)
    copy = Baseline.from_dict(json.loads(json.dumps(declared.to_dict())))
    assert copy.reference(DAY) == declared.reference(DAY)


def test_the_score_reference_is_the_one_the_day_began_with():
    """Issue 17: a reference that followed the day's own readings let a stressful afternoon raise
    its own bar, and the score ranked readings unlike heart rate. A scored reading is compared
    with the baseline as it stood at the day's first score; the rings go on learning, and the next
    day (from 07:00 local) starts from all of it. A rest that moved KEPT_UNTIL_BPM renews it."""
    b = Baseline(ZoneInfo("Europe/Berlin"))
    feed(b, DAY, 15, ln=3.1, hr=65.0)
    morning = b.score_reference(DAY + 15 * 60)
    feed(b, DAY + 15 * 60, 60, ln=2.9, hr=65.0 + KEPT_UNTIL_BPM - 0.5)  # an hour of rest 3.7 bpm higher
    assert b.reference(DAY + 75 * 60).hr_mean == pytest.approx(68.7)  # learned...
    assert b.score_reference(DAY + 75 * 60) == morning  # ...but not by today's score
    tomorrow = DAY + 86400.0
    assert b.score_reference(tomorrow) == b.reference(tomorrow) != morning
    moved = Baseline(ZoneInfo("Europe/Berlin"))
    feed(moved, DAY, 15, ln=3.1, hr=65.0)
    moved.score_reference(DAY + 15 * 60)
    feed(moved, DAY + 15 * 60, 60, ln=2.9, hr=78.0)  # an hour of rest 13 bpm higher
    assert moved.score_reference(DAY + 75 * 60).hr_mean == pytest.approx(78.0)
    # a night is one day: its reference is kept across midnight (22:00 to 07:00 local)
    evening = DAY + 9 * 3600  # 22:00 in Berlin
    sleeper = Baseline(ZoneInfo("Europe/Berlin"))
    feed(sleeper, evening, 15, ln=3.8, hr=55.0)
    night = sleeper.score_reference(evening + 15 * 60)
    feed(sleeper, evening + 15 * 60, 120, ln=3.7, hr=57.0)
    assert sleeper.score_reference(evening + 2.5 * 3600) == night  # 00:30: the same night
    assert sleeper.day(evening) == sleeper.day(evening + 2.5 * 3600) != sleeper.day(evening + 9.5 * 3600)


def test_the_kept_reference_survives_a_restart():
    b = Baseline(ZoneInfo("Europe/Berlin"))
    feed(b, DAY, 15, ln=3.1, hr=65.0)
    kept = b.score_reference(DAY + 15 * 60)
    feed(b, DAY + 15 * 60, 30, ln=2.9, hr=67.0)
    exact = Baseline.from_dict(json.loads(json.dumps(b.to_dict(exact=True))), ZoneInfo("Europe/Berlin"))
    assert exact.score_reference(DAY + 50 * 60) == kept
    rounded = Baseline.from_dict(json.loads(json.dumps(b.to_dict())), ZoneInfo("Europe/Berlin"))
    assert rounded.score_reference(DAY + 50 * 60).hr_mean == pytest.approx(kept.hr_mean, abs=1e-3)
    older = b.to_dict()
    del older["kept"]  # saved before the kept reference existed: kept anew at the next score
    assert Baseline.from_dict(older).score_reference(DAY + 50 * 60) == b.reference(DAY + 50 * 60)
    with pytest.raises(ValueError, match="kept"):
        Baseline.from_dict({**b.to_dict(), "kept": {"noon": ["2026-01-01", 3, 0.2, 60, 2, 20, True]}})


def test_a_strap_put_on_just_before_the_night_keeps_its_calibration_through_a_stressful_call():
    """10 min of rest calibrate whichever periods they fall in; the reference the night began with
    (both periods' rest together, the night's own ring being young) stays the night's when that
    ring comes of age full of a call: a change of source, not of the person's rest."""
    b = Baseline()  # UTC
    start = DAY + 9 * 3600 + 52 * 60  # 21:52
    feed(b, start, 11, ln=3.3, hr=65.0)  # to 22:03: 22 samples, 16 of them in the day period
    assert b.calibrated and max(len(r) for r in b.periods.values()) < CALIBRATION_SAMPLES
    kept = b.score_reference(start + 11 * 60)
    assert kept.hr_mean == pytest.approx(65.0)
    feed(b, start + 11 * 60, 20, ln=2.8, hr=84.0)  # a call, learned as rest (the phone said still)
    assert b.reference(start + 31 * 60).hr_mean == pytest.approx(84.0)  # the night ring's own median
    assert b.score_reference(start + 31 * 60) == kept
