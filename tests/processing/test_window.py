"""The trailing beat windows: pair statistics from valid successive pairs only, exact after compactions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collector.events import Beat, Gap
from processing.pipeline import MIN_PAIRS, Pipeline, Settings
from processing.window import BeatLog


def brute_force(rr: list[float], paired: list[bool]) -> dict:
    """The statistics recomputed from scratch over the pairs flagged valid."""
    d = np.array([rr[k] - rr[k - 1] for k in range(1, len(rr)) if paired[k]])
    return {
        "n": len(d),
        "rmssd": math.sqrt(np.mean(d**2)) if len(d) else None,
        "pnn50": 100.0 * np.mean(np.abs(d) > 50) if len(d) else None,
        "pnn20": 100.0 * np.mean(np.abs(d) > 20) if len(d) else None,
        "sd1": math.sqrt(np.var(d, ddof=1) / 2) if len(d) > 1 else None,
        "sd2": math.sqrt(np.var([rr[k] + rr[k - 1] for k in range(1, len(rr)) if paired[k]], ddof=1) / 2)
        if len(d) > 1
        else None,
    }


def whole_window(log: BeatLog):
    return log.stats([0], [0], [log.n], 8)[0]


def test_pnn_counts_differences_strictly_over_the_threshold():
    """Differences 25, 40, 22, 50 and 51 ms: pNN20 is 100 %, pNN50 20 % (50 is not over 50)."""
    log = BeatLog()
    for t, rr in enumerate([800, 825, 865, 887, 837, 888]):
        log.append(float(t), rr, False, True)
    w = whole_window(log)
    assert w.pnn20 == 100.0
    assert w.pnn50 == pytest.approx(20.0)


def test_no_pair_spans_a_gap():
    """Two runs of beats with a gap between them (and a jump of 300 ms across it): RMSSD is that
    of the pairs inside each run; the jump is not a difference."""
    log = BeatLog()
    first, second = [800, 820, 800, 820], [1100, 1120, 1100]
    t = 0.0
    for rr in first:
        t += rr / 1000
        log.append(t, rr, False, True)
    t += 30.0
    for k, rr in enumerate(second):
        t += rr / 1000
        log.append(t, rr, False, k > 0)
    w = whole_window(log)
    assert w.n_beats == 7 and w.short_pairs == 5
    assert w.rmssd == pytest.approx(20.0)
    assert w.pnn50 == 0.0


def test_sums_stay_exact_when_gapped_beats_leave_the_window():
    """Random beats with random gaps through a 60 s window, the arrays compacted as they fill
    (as the pipeline does): every pair statistic equals a from-scratch computation over the
    valid pairs still inside, at many points along the way."""
    rng = np.random.default_rng(3)
    log = BeatLog()
    times, rrs, flags = [], [], []
    t = 0.0
    checked = 0
    for k in range(12000):
        rr = float(800 + 60 * rng.standard_normal())
        successive = rng.random() > 0.05
        t += rr / 1000 + (0.0 if successive else rng.uniform(2, 20))
        if log.n == log.capacity:
            log.compact(log.start_after(t - 60.0))
        log.append(t, rr, False, successive)
        times.append(t)
        rrs.append(rr)
        flags.append(successive)
        if k % 997 == 996:
            lo = log.start_after(t - 60.0)
            w = log.stats([lo], [lo], [log.n], 8)[0]
            start = next(j for j, x in enumerate(times) if x > t - 60.0)
            inside, paired = rrs[start:], [False] + flags[start + 1 :]
            want = brute_force(inside, paired)
            assert w.n_beats == len(inside) and w.short_pairs == want["n"]
            assert w.rmssd == pytest.approx(want["rmssd"], rel=1e-9)
            assert w.pnn50 == pytest.approx(want["pnn50"]) and w.pnn20 == pytest.approx(want["pnn20"])
            assert w.sd1 == pytest.approx(want["sd1"], rel=1e-9)
            assert w.sd2 == pytest.approx(want["sd2"], rel=1e-9)
            assert w.sdnn == pytest.approx(np.std(inside, ddof=1), rel=1e-9)
            checked += 1
    assert checked == 12


def test_the_sums_do_not_depend_on_how_the_beats_arrive_between_reads():
    """The prefix sums are brought up to date when a window is read: read after every beat (as
    `Pipeline.window_stats` may be), every 13 beats (a live reading every 10 s) or once for
    5000 beats (a chunk of a file), the statistics are the same to the bit, and those of a
    from-scratch computation (snapshots rely on the first: restored and fed the same beats, a
    pipeline must give the same readings)."""
    rng = np.random.default_rng(8)
    beats = [
        (float(800 + 60 * rng.standard_normal()), bool(rng.random() > 0.05), bool(rng.random() < 0.02))
        for _ in range(5000)
    ]
    results = []
    for every in (1, 13, 5000):
        log = BeatLog(len(beats) + 1)
        t = 0.0
        for k, (rr, successive, artifact) in enumerate(beats):
            t += rr / 1000
            log.append(t, rr, artifact, successive)
            if (k + 1) % every == 0 or k == len(beats) - 1:
                lo = log.start_after(t - 300.0)
                short_lo = log.start_after(t - 60.0)
                last = log.stats([lo, 0], [short_lo, 0], [log.n, log.n], 8)
        results.append(last)
    assert results[0] == results[1] == results[2]
    whole = results[0][1]
    want = brute_force([rr for rr, _, _ in beats], [False] + [s for _, s, _ in beats[1:]])
    assert whole.short_pairs == want["n"] and whole.n_artifacts == sum(a for _, _, a in beats)
    assert whole.rmssd == pytest.approx(want["rmssd"], rel=1e-9)
    assert whole.sd1 == pytest.approx(want["sd1"], rel=1e-9) and whole.sd2 == pytest.approx(
        want["sd2"], rel=1e-9
    )
    assert whole.pnn50 == pytest.approx(want["pnn50"]) and whole.pnn20 == pytest.approx(want["pnn20"])
    assert whole.sdnn == pytest.approx(np.std([rr for rr, _, _ in beats], ddof=1), rel=1e-9)


def gappy_beats(keep_s: float, every_s: float, minutes: float, rr: float = 800.0) -> list:
    """Beats at a steady RR with small alternation, of which only the first `keep_s` seconds of
    every `every_s` survive (a wrist device losing the pulse), with Gap events between runs."""
    events, t, run_start, last = [], 0.0, 0.0, None
    k = 0
    while t < minutes * 60:
        t += rr / 1000
        k += 1
        if t - run_start >= every_s:
            run_start = t
        if t - run_start < keep_s:
            if last is not None and t - last > 2 * rr / 1000:
                events.append(Gap("p", "d", last, t - rr / 1000, "test"))
            events.append(Beat("p", "d", t, rr + (10.0 if k % 2 else -10.0)))
            last = t
    return events


def test_a_reading_with_enough_pairs_is_scored_however_much_of_the_window_was_lost():
    """Only 25 s of every 60 s arrive (~30 pairs per RMSSD window, over MIN_PAIRS): readings get
    a score (once the new baseline is calibrated by 20 rest samples, one a minute here:
    processing/stress.py), RMSSD is exactly that of the alternation (20 ms), and never that of a
    gap."""
    readings = []
    pipe = Pipeline("p", Settings())
    for ev in gappy_beats(keep_s=25.0, every_s=60.0, minutes=28):
        readings += pipe.feed(ev)
    late = [r for r in readings if r.time > 23 * 60]
    assert late and pipe.n_gaps > 10
    assert all(r.rmssd_ms == pytest.approx(20.0) for r in late)
    assert all(r.stress_score is not None for r in late)
    assert all(r.quality >= 0.5 for r in late)


def test_too_few_pairs_give_no_score():
    """Only 10 s of every 40 s: at most ~22 pairs per RMSSD window, fewer than MIN_PAIRS, so
    readings come (>= 20 beats) but without a score (quality < 0.5)."""
    readings = []
    pipe = Pipeline("p", Settings())
    for ev in gappy_beats(keep_s=10.0, every_s=40.0, minutes=10):
        readings += pipe.feed(ev)
    assert MIN_PAIRS > 22
    assert readings and all(r.stress_score is None and r.quality < 0.5 for r in readings)


def test_lf_hf_never_interpolates_across_a_gap():
    """4 min of beats, a 30 s gap, then 90 s: the 300 s window holds beats on both sides, but
    LF/HF needs 2 min of continuous beats, so it is absent until the new segment has them."""
    events, t = [], 0.0
    for k in range(int(240 / 0.8)):
        t += 0.8
        events.append(Beat("p", "d", t, 800.0 + 30 * math.sin(k / 2)))
    events.append(Gap("p", "d", t, t + 30.0, "test"))
    t += 30.0
    for k in range(int(90 / 0.8)):
        t += 0.8
        events.append(Beat("p", "d", t, 800.0 + 30 * math.sin(k / 2)))
    pipe = Pipeline("p", Settings())
    readings = [r for e in events for r in pipe.feed(e)]
    before = [r for r in readings if r.time <= 240]
    after = [r for r in readings if r.time > 280]
    assert before[-1].lf_hf is not None
    assert after and all(r.lf_hf is None for r in after)
    assert all(r.n_beats > 300 for r in after)  # the long window kept the beats before the gap


def test_the_window_statistics_can_be_read_at_any_beat_and_match_the_readings():
    """Pipeline.window_stats follows the windows beat by beat (O(1): prefix sums); at a reading's
    beat it gives that reading's values."""
    rng = np.random.default_rng(5)
    pipe = Pipeline("p", Settings(correction=False))
    t, checked = 0.0, 0
    assert pipe.window_stats() is None
    for _ in range(3000):
        rr = float(850 + 40 * rng.standard_normal())
        t += rr / 1000
        readings = pipe.feed(Beat("p", "d", t, rr))
        w = pipe.window_stats()
        assert w is not None and w.n_beats == len(pipe.window()[0])
        for r in readings:
            assert (w.n_beats, w.short_rmssd, w.sdnn, w.sd1, w.sd2, w.pnn50) == (
                r.n_beats,
                r.rmssd_ms,
                r.sdnn_ms,
                r.sd1_ms,
                r.sd2_ms,
                r.pnn50_pct,
            )
            assert 60000.0 / w.short_mean_rr == r.hr_bpm
            checked += 1
    assert checked > 200
