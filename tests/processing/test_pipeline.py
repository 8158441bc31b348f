"""The streaming pipeline across a clock set back: a new segment, no beat lost, sensible readings."""

from __future__ import annotations

import itertools

import numpy as np

from collector.beat_timing import BeatTimer
from collector.events import Beat, Gap
from collector.heart_rate import parse
from processing.pipeline import MIN_BEATS, Pipeline
from processing.stress import RECOVERY_S

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
    rr = rest_then(20, 0, 860.0)
    events = strap_events(rr, step_at_s=600.0, step_s=-3600.0)
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
        (r.time, r.n_beats, r.hr_bpm, r.rmssd_ms, r.sdnn_ms) for r in alone]
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
