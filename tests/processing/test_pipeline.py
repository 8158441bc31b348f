"""The pipeline with a strap that sends heart rate without RR intervals: readings of heart rate, no HRV."""

from __future__ import annotations

from collector.events import Beat, HeartRate
from processing.pipeline import MIN_HR_SAMPLES, Pipeline, Settings
from processing.reading import NO_RR, Activity, StressState
from processing.stress import StressModel
from sinks.line_protocol import reading_line

HRV_FIELDS = ("mean_rr_ms", "rmssd_ms", "ln_rmssd", "sdnn_ms", "pnn50_pct", "pnn20_pct", "sd1_ms", "sd2_ms",
              "baevsky_si", "stress_index", "pns_index", "sns_index", "lf_hf", "artifact_pct", "stress_score")


def heart_rates(bpm, start: float = 1000.0, seconds: int = 120) -> list[HeartRate]:
    """One a second, as a band notifies; `bpm` a number or a function of the second."""
    at = bpm if callable(bpm) else (lambda k: bpm)
    return [HeartRate("ann", "band", start + k, float(at(k)), contact=True, source="ble") for k in range(seconds)]


def feed(p: Pipeline, events) -> list:
    return [r for e in events for r in p.feed(e)]


def test_heart_rates_without_beats_make_a_reading_each_step_with_the_mean_heart_rate_and_no_hrv():
    p = Pipeline("ann", Settings(step_s=10))
    readings = feed(p, heart_rates(72))
    # the first once MIN_HR_SAMPLES heart rates are in, then one at each 10 s boundary
    assert [r.time for r in readings] == [1000.0 + MIN_HR_SAMPLES - 1] + [1000.0 + k for k in range(10, 120, 10)]
    for r in readings:
        assert r.hr_bpm == 72.0 and r.n_beats == 0 and r.quality == 0.0
        assert all(getattr(r, name) is None for name in HRV_FIELDS)
        assert r.state == StressState.UNKNOWN and r.activity == Activity.REST
        assert r.hrv_unavailable == NO_RR == "the strap sends heart rate without RR intervals"
        assert r.window_s == 300.0


def test_the_heart_rate_is_the_mean_over_the_rmssd_window():
    p = Pipeline("ann", Settings(step_s=10, rmssd_window_s=60))
    readings = feed(p, heart_rates(lambda k: 60 if k < 60 else 90, seconds=150))
    last = readings[-1]
    assert last.time == 1140.0 and last.hr_bpm == 90.0  # the 60 s before it are all at 90
    assert next(r for r in readings if r.time == 1100.0).hr_bpm == 60 + 30 * 41 / 60  # 1041..1100


def test_a_high_heart_rate_without_beats_is_activity_never_stress():
    p = Pipeline("ann", Settings(step_s=10), StressModel(age=40))  # HRmax 180
    readings = feed(p, heart_rates(150))
    assert {r.activity for r in readings} == {Activity.ACTIVE}
    assert {r.state for r in readings} == {StressState.UNKNOWN}


def test_the_resting_heart_rate_is_learned_from_a_strap_without_rr():
    """HR 100 after ten minutes at 55 is heart-rate reserve (100 - 55) / (180 - 55) = 36 %: active;
    against the population's resting 68 bpm it would be 29 %, rest."""
    p = Pipeline("ann", Settings(step_s=10), StressModel(age=40))
    feed(p, heart_rates(55, seconds=600))
    assert p.model.hr_rest() == 55.0
    readings = feed(p, heart_rates(100, start=1600.0, seconds=60))
    assert readings[-1].activity == Activity.ACTIVE


def test_beats_make_the_readings_while_they_can_and_heart_rates_after_they_stop():
    beats, t = [], 1000.0
    for k in range(150):
        t += 0.8 + 0.02 * (k % 3)
        beats.append(Beat("ann", "h10", t, (0.8 + 0.02 * (k % 3)) * 1000.0, source="ble"))
    rates = heart_rates(75, start=t + 1.0, seconds=120)
    p = Pipeline("ann", Settings(step_s=10))
    readings = feed(p, beats + rates)
    times = [r.time for r in readings]
    assert times == sorted(times)
    from_beats = [r for r in readings if r.hrv_unavailable is None]
    from_rates = [r for r in readings if r.hrv_unavailable == NO_RR]
    assert from_beats and from_rates and from_beats[-1].time < from_rates[0].time
    assert all(r.rmssd_ms is not None and r.n_beats >= 20 for r in from_beats)
    assert all(r.hr_bpm == 75.0 for r in from_rates)
    # heart rates take over only once the 60 s RMSSD window holds too few beats (20 of its ~73)
    assert 30 < from_rates[0].time - beats[-1].t < 60


def test_feed_many_gives_the_same_readings_as_feed():
    events = heart_rates(lambda k: 60 + k % 7, seconds=300)
    one = feed(Pipeline("ann", Settings(step_s=10)), events)
    many = Pipeline("ann", Settings(step_s=10)).feed_many(events)
    assert [r.to_dict() for r in many] == [r.to_dict() for r in one] and len(one) == 30


def test_whole_recording_analysis_ignores_heart_rates():
    p = Pipeline("ann", Settings.whole())
    assert feed(p, heart_rates(70)) == [] and p.finish() == []


def test_a_reading_without_hrv_is_valid_line_protocol_with_heart_rate_and_the_reason():
    [r] = feed(Pipeline("ann", Settings(step_s=60)), heart_rates(72, seconds=20))
    text = reading_line(r).text
    measurement, rest = text.split(" ", 1)
    fields, stamp = rest.rsplit(" ", 1)
    assert measurement == "hrv,person=ann" and stamp == str(round(r.time * 1000))
    assert fields.split(",") == ["window_s=300.0", "n_beats=0i", "hr_bpm=72.0", 'activity="rest"', 'state="unknown"', "quality=0.0",
                                 f'hrv_unavailable="{NO_RR}"']
