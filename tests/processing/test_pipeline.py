"""The streaming pipeline: across a clock set back (a new segment, no beat lost, sensible readings),
and with a strap that sends heart rate without RR intervals (readings of heart rate, no HRV)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from collector.beat_timing import BeatTimer
from collector.events import Beat, Gap, HeartRate
from collector.heart_rate import parse
from processing.pipeline import MIN_BEATS, MIN_HR_SAMPLES, Pipeline, Settings
from processing.reading import NO_RR, Activity, StressState
from processing.stress import RECOVERY_S, StressModel
from sinks.line_protocol import reading_line

START = 1_767_268_800.0  # 2026-01-01 12:00 UTC


def strap_events(rr_ms: np.ndarray, step_at_s: float, step_s: float) -> list:
    """Beat/Gap events as the collector makes them from a strap notifying about once a second,
    while the wall clock is set by `step_s` after `step_at_s` (NTP on a Pi without a real-time
    clock): the same notifications through `BeatTimer`, with the monotonic clock beside."""
    timer = BeatTimer("p", "strap")
    raw = np.round(rr_ms * 1.024).astype(int)
    events, pending, t, sent = [], [], 0.0, 0.0
    for r in raw.tolist():
        t += r / 1024.0
        pending.append(r)
        if t - sent >= 1.0:
            arrival = t + 0.25
            wall = START + arrival + (step_s if arrival >= step_at_s else 0.0)
            payload = bytes([0x16, 70]) + b"".join(x.to_bytes(2, "little") for x in pending)
            events += timer.notification(wall, parse(payload), arrival)
            pending, sent = [], t
    return events


def rest_then(minutes_rest: float, minutes_other: float, other_rr: float, seed: int = 0) -> np.ndarray:
    """RR (ms) of rest at ~70 bpm with respiratory variation, then `minutes_other` at `other_rr`."""
    rng = np.random.default_rng(seed)
    rest = 860.0 + 40.0 * np.sin(np.arange(int(minutes_rest * 70)) * 2 * np.pi / 4.5)
    other = np.full(int(minutes_other * 60000 / other_rr), other_rr)
    return np.concatenate([rest, other]) + rng.normal(0, 8, len(rest) + len(other))


def feed(p: Pipeline, events: list) -> tuple[list, list, int]:
    """Readings of the events up to the first Gap and after it, and the beats the pipeline released."""
    before, after, released = [], [], 0
    out = before
    for e in events:
        out += p.feed(e)
        out = after if isinstance(e, Gap) else out
        released += len(p.beats_out)
    after += p.finish()
    return before, after, released + len(p.beats_out)


def test_a_clock_set_back_starts_a_new_segment_and_no_beat_is_lost():
    rr = rest_then(25, 0, 860.0)  # calibrated (10 min of rest) before the step
    events = strap_events(rr, step_at_s=900.0, step_s=-3600.0)
    gap = next(e for e in events if isinstance(e, Gap))
    p = Pipeline("p")
    before, after, released = feed(p, events)
    n_beats = sum(isinstance(e, Beat) for e in events)
    assert n_beats == len(rr) and released == n_beats and p.n_dropped == 0
    assert before[-1].time > gap.end + 3500.0  # the old clock was an hour ahead
    # readings come again as soon as the short window holds MIN_BEATS new beats, on the new clock
    assert len(after) > 55 and all(y.time > x.time for x, y in itertools.pairwise(after))
    assert gap.end < after[0].time < gap.end + (MIN_BEATS + 10) * 0.86
    # ... from the beats after the step alone: as a pipeline that never saw the old ones
    fresh = Pipeline("p")
    alone = [r for e in events[events.index(gap) + 1 :] for r in fresh.feed(e)]
    assert [(r.time, r.n_beats, r.hr_bpm, r.rmssd_ms, r.sdnn_ms) for r in after[: len(alone)]] == [
        (r.time, r.n_beats, r.hr_bpm, r.rmssd_ms, r.sdnn_ms) for r in alone
    ]
    assert all(60 < r.hr_bpm < 80 and r.activity == "rest" for r in before + after)
    # scored again once the new clock's beats fill a full RMSSD window (a stream's first minute),
    # not once the new clock passes the old stream's first minute (an hour later)
    assert all(r.stress_score is None for r in after if r.time < gap.end + 60.0)
    assert all(r.stress_score is not None for r in after if r.time >= gap.end + 61.0)


def test_a_recovery_keeps_its_length_in_real_time_when_the_clock_goes_back():
    """Exercise, then rest; the clock goes back an hour right after the exercise. The recovery
    after it lasts RECOVERY_S of real time, not until the new clock reaches the old one."""
    first = rest_then(10, 20, 400.0)
    rr = np.concatenate([first, rest_then(20, 0, 860.0, seed=1)])
    events = strap_events(rr, step_at_s=float(np.sum(first)) / 1000.0 + 5.0, step_s=-3600.0)
    gap = next(e for e in events if isinstance(e, Gap))
    before, after, _ = feed(Pipeline("p"), events)
    assert before[-1].activity == "active"
    assert any(r.activity == "recovery" for r in after)
    settled = [r for r in after if r.time - gap.end > RECOVERY_S + 120.0]
    assert len(settled) > 30 and all(r.activity == "rest" for r in settled)


def test_beats_after_any_gap_that_are_earlier_than_the_windows_start_afresh_too():
    """A gap that does not say the clock went back (a disconnect, stamped on the old clock), then
    beats an hour earlier: a new segment as well, not beats out of order in the windows."""
    rr = rest_then(6, 0, 860.0)
    t = START + np.cumsum(rr) / 1000.0
    half = len(rr) // 2
    events = [Beat("p", "d", float(a), float(b)) for a, b in zip(t[:half], rr[:half])]
    events.append(Gap("p", "d", float(t[half - 1]), float(t[half - 1]) + 1.0, "disconnect"))
    events += [Beat("p", "d", float(a) - 3600.0, float(b)) for a, b in zip(t[half:], rr[half:])]
    p = Pipeline("p")
    _, after, released = feed(p, events)
    assert released == len(rr) and p.n_dropped == 0
    assert after and all(r.time < START for r in after) and all(r.n_beats <= len(rr) - half for r in after)


# -- a strap that sends heart rate without RR intervals -------------------------------------------


HRV_FIELDS = (
    "mean_rr_ms",
    "rmssd_ms",
    "ln_rmssd",
    "sdnn_ms",
    "pnn50_pct",
    "pnn20_pct",
    "sd1_ms",
    "sd2_ms",
    "baevsky_si",
    "stress_index",
    "pns_index",
    "sns_index",
    "lf_hf",
    "artifact_pct",
    "stress_score",
)


def heart_rates(bpm, start: float = 1000.0, seconds: int = 120) -> list[HeartRate]:
    """One a second, as a band notifies; `bpm` a number or a function of the second."""
    at = bpm if callable(bpm) else (lambda k: bpm)
    return [
        HeartRate("ann", "band", start + k, float(at(k)), contact=True, source="ble") for k in range(seconds)
    ]


def readings_of(p: Pipeline, events) -> list:
    return [r for e in events for r in p.feed(e)]


def test_heart_rates_without_beats_make_a_reading_each_step_with_the_mean_heart_rate_and_no_hrv():
    p = Pipeline("ann", Settings(step_s=10))
    readings = readings_of(p, heart_rates(72))
    # the first once MIN_HR_SAMPLES heart rates are in, then one at each 10 s boundary
    assert [r.time for r in readings] == [1000.0 + MIN_HR_SAMPLES - 1] + [
        1000.0 + k for k in range(10, 120, 10)
    ]
    for r in readings:
        assert r.hr_bpm == 72.0 and r.n_beats == 0 and r.quality == 0.0
        assert all(getattr(r, name) is None for name in HRV_FIELDS)
        assert r.state == StressState.UNKNOWN and r.activity == Activity.REST
        assert r.hrv_unavailable == NO_RR == "the strap sends heart rate without RR intervals"
        assert r.window_s == 300.0


def test_the_heart_rate_is_the_mean_over_the_rmssd_window():
    p = Pipeline("ann", Settings(step_s=10, rmssd_window_s=60))
    readings = readings_of(p, heart_rates(lambda k: 60 if k < 60 else 90, seconds=150))
    last = readings[-1]
    assert last.time == 1140.0 and last.hr_bpm == 90.0  # the 60 s before it are all at 90
    assert next(r for r in readings if r.time == 1100.0).hr_bpm == 60 + 30 * 41 / 60  # 1041..1100


def test_a_high_heart_rate_without_beats_is_activity_never_stress():
    p = Pipeline("ann", Settings(step_s=10), StressModel(age=40))  # HRmax 180
    readings = readings_of(p, heart_rates(150))
    assert {r.activity for r in readings} == {Activity.ACTIVE}
    assert {r.state for r in readings} == {StressState.UNKNOWN}


def test_the_resting_heart_rate_is_learned_from_a_strap_without_rr():
    """HR 100 after ten minutes at 55 is heart-rate reserve (100 - 55) / (180 - 55) = 36 %: active;
    against the population's resting 68 bpm it would be 29 %, rest."""
    p = Pipeline("ann", Settings(step_s=10), StressModel(age=40))
    readings_of(p, heart_rates(55, seconds=600))
    assert p.model.hr_rest() == 55.0
    readings = readings_of(p, heart_rates(100, start=1600.0, seconds=60))
    assert readings[-1].activity == Activity.ACTIVE


def test_beats_make_the_readings_while_they_can_and_heart_rates_after_they_stop():
    beats, t = [], 1000.0
    for k in range(150):
        t += 0.8 + 0.02 * (k % 3)
        beats.append(Beat("ann", "h10", t, (0.8 + 0.02 * (k % 3)) * 1000.0, source="ble"))
    rates = heart_rates(75, start=t + 1.0, seconds=120)
    p = Pipeline("ann", Settings(step_s=10))
    readings = readings_of(p, beats + rates)
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
    one = readings_of(Pipeline("ann", Settings(step_s=10)), events)
    many = Pipeline("ann", Settings(step_s=10)).feed_many(events)
    assert [r.to_dict() for r in many] == [r.to_dict() for r in one] and len(one) == 30


def test_whole_recording_analysis_ignores_heart_rates():
    p = Pipeline("ann", Settings.whole())
    assert readings_of(p, heart_rates(70)) == [] and p.finish() == []


def test_a_reading_without_hrv_is_valid_line_protocol_with_heart_rate_and_the_reason():
    [r] = readings_of(Pipeline("ann", Settings(step_s=60)), heart_rates(72, seconds=20))
    text = reading_line(r).text
    measurement, rest = text.split(" ", 1)
    fields, stamp = rest.rsplit(" ", 1)
    assert measurement == "hrv,person=ann" and stamp == str(round(r.time * 1000))
    assert fields.split(",") == [
        "window_s=300.0",
        "n_beats=0i",
        "hr_bpm=72.0",
        'activity="rest"',
        'state="unknown"',
        "quality=0.0",
        'motion="unknown"',
        f'hrv_unavailable="{NO_RR}"',
    ]


def test_heart_rates_without_rr_after_a_clock_set_back_make_readings_on_the_new_clock():
    """A band's heart rates through the BeatTimer while the wall clock is set back an hour: the
    heart rates after the step start the window afresh instead of being dropped as out of order."""
    timer = BeatTimer("ann", "band")
    events = []
    for k in range(300):
        wall = START + k + (-3600.0 if k >= 150 else 0.0)
        events += timer.notification(wall, parse(bytes([0x06, 60 if k < 150 else 90])), 5.0 + k)
    p = Pipeline("ann", Settings(step_s=10))
    before, after, _ = feed(p, events)
    assert any(isinstance(e, Gap) for e in events)
    assert before and all(r.hr_bpm == 60.0 for r in before)
    # readings again once MIN_HR_SAMPLES heart rates of the new clock are in, from them alone
    assert after[0].time == pytest.approx(START - 3600.0 + 150 + MIN_HR_SAMPLES - 1 - timer.latency_s)
    assert len(after) >= 14 and all(r.hr_bpm == 90.0 and r.hrv_unavailable == NO_RR for r in after)
    assert all(y.time > x.time for x, y in itertools.pairwise(after))
