"""The 4 Hz resampling spline: a sliding window re-solved only at its ends equals a full solve."""

from __future__ import annotations

import numpy as np
import pytest

from collector.files import read_recording
from processing import hrv, spline, spline_batch


def nsr001(reference) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (s) and RR (ms) of the 24 h nsr2db recording nsr001."""
    beats = read_recording(reference / "rr/nsr2db_24h/nsr001.csv").beats
    return np.array([b.t for b in beats]), np.array([b.rr_ms for b in beats])


def window_spans(t, ends, window_s=300.0) -> list[tuple[int, int]]:
    """(i, j): the beats t[i:j] of the trailing window ending at each time of `ends`."""
    return [
        (int(np.searchsorted(t, e - window_s, side="right")), int(np.searchsorted(t, e, side="right")))
        for e in ends
    ]


def sliding_windows(reference, hours=1.0, step_s=10.0):
    t, rr = nsr001(reference)
    for i, j in window_spans(t, np.arange(t[30000], t[30000] + hours * 3600, step_s)):
        yield t[i:j], rr[i:j]


@pytest.mark.slow
def test_sliding_windows_reuse_the_interior_and_match_a_full_solve(reference):
    cache = spline.SplineCache()
    worst = 0.0
    for t, rr in sliding_windows(reference):
        grid = np.arange(t[0], t[-1] + 0.25, 0.25)
        incremental = spline.resample(t, rr, grid, cache)
        full = spline.resample(t, rr, grid)
        worst = max(worst, float(np.abs(incremental - full).max()))
    assert cache.full_solves == 1 and cache.edge_solves > 300
    assert worst < 1e-6  # ms, on RR values of ~1000 ms


@pytest.mark.slow
def test_lf_hf_is_the_same_with_and_without_the_cache(reference):
    cache = spline.SplineCache()
    pairs = [(hrv.lf_hf(t, rr), hrv.lf_hf(t, rr, cache)) for t, rr in sliding_windows(reference, hours=0.5)]
    assert all(abs(a - b) <= 1e-8 * abs(a) for a, b in pairs if a is not None)


@pytest.mark.slow
def test_the_4_hz_samples_lie_on_a_grid_fixed_in_time_and_are_as_many_as_neurokit2s(reference):
    """Sliding windows sample the spline at multiples of 0.25 s, so a step can copy the samples
    between its re-solved ends from the previous step; their number is that of neurokit2's grid
    (which starts at the first beat), and they equal a fresh evaluation of a full solve."""
    cache = spline.SplineCache()
    worst = 0.0
    for t, rr in sliding_windows(reference, hours=0.5):
        samples = spline.sample_grid(t, rr, 4.0, cache)
        assert cache.first == np.ceil(t[0] * 4.0) and cache.first / 4.0 >= t[0]
        assert len(samples) == len(np.arange(t[0], t[-1] + 0.25, 0.25))
        times = (cache.first + np.arange(len(samples))) / 4.0
        inside = times <= t[-1]
        fresh = spline.resample(t, rr, times[inside])
        worst = max(worst, float(np.abs(samples[inside] - fresh).max()))
        assert np.all(samples[~inside] == rr[-1])  # past the last beat: its value, as scipy's fill value
    assert cache.full_solves == 1 and cache.edge_solves > 150
    assert worst < 1e-6  # ms


def test_a_window_that_does_not_continue_the_last_one_is_solved_in_full():
    rng = np.random.default_rng(1)
    rr = 900 + 60 * rng.standard_normal(400)
    t = np.cumsum(rr) / 1000.0
    cache = spline.SplineCache()
    spline.resample(t[:300], rr[:300], np.arange(t[0], t[299], 0.25), cache)
    later = slice(350, 400)  # shares no beat with the cached window
    out = spline.resample(t[later], rr[later], np.arange(t[350], t[399], 0.25), cache)
    assert cache.full_solves == 2 and cache.edge_solves == 0
    # an interpolating spline passes through its data points
    assert np.allclose(spline.resample(t[later], rr[later], t[later]), rr[later])
    assert np.all(np.isfinite(out))


def test_band_powers_are_the_trapezoidal_integrals_of_scipys_welch_psd():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(2)
    for n in (1197, 1199, 1200, 1201, 1203, 600):  # odd and even segment lengths
        t = np.arange(n) / hrv.INTERPOLATION_HZ
        y = 40 * np.sin(2 * np.pi * 0.1 * t) + 25 * np.sin(2 * np.pi * 0.25 * t) + 10 * rng.standard_normal(n)
        y -= y.mean()
        lf, hf = hrv._welch_band_powers(y)
        min_freq = 4.0 * hrv.INTERPOLATION_HZ / n
        nperseg = min(int(2.0 / min_freq * hrv.INTERPOLATION_HZ), n // 2)
        nfft = hrv._welch_setup(nperseg, hrv.INTERPOLATION_HZ)[3]
        f, p = signal.welch(y, hrv.INTERPOLATION_HZ, window="hann", nperseg=nperseg, nfft=nfft, detrend=False)
        for got, (lo, hi) in ((lf, hrv.LF_BAND), (hf, hrv.HF_BAND)):
            keep = (f >= max(lo, min_freq)) & (f < hi)
            assert got == pytest.approx(np.trapezoid(p[keep], f[keep]), rel=1e-12)


@pytest.mark.slow
def test_the_pipelines_lf_hf_is_that_of_the_long_window_since_the_last_gap():
    """The pipeline keeps its own arrays of beats for LF/HF (and compacts them as they fill):
    they must hold exactly the long window's beats after the last gap."""
    from collector.events import Beat, Gap
    from processing.pipeline import Pipeline, Settings

    rng = np.random.default_rng(3)
    pipe = Pipeline("p", Settings(correction=False))
    t, checked, last_gap_end = 0.0, 0, -np.inf
    for k in range(5000):  # ~70 min: more beats than the arrays' first capacity
        if k in (1500, 1700):  # a gap shorter and one longer than the 300 s window
            gap = 200.0 if k == 1500 else 400.0
            pipe.feed(Gap("p", "d", t, t + gap, "test"))
            t += gap
            last_gap_end = t
        rr = (
            850
            + 50 * np.sin(2 * np.pi * 0.1 * t)
            + 20 * np.sin(2 * np.pi * 0.25 * t)
            + 5 * rng.standard_normal()
        )
        t += rr / 1000.0
        for reading in pipe.feed(Beat("p", "d", t, rr)):
            times, rrs, _ = pipe.window()
            keep = times > last_gap_end
            expected = hrv.lf_hf(times[keep], rrs[keep])
            if expected is None:
                assert reading.lf_hf is None
            else:
                assert reading.lf_hf == pytest.approx(expected, rel=1e-8)
                checked += 1
    assert checked > 300


@pytest.mark.slow
def test_a_chunk_of_windows_sampled_together_equals_one_at_a_time(reference):
    """spline_batch solves the union of a chunk's windows once and only their ends apart: the
    samples are those of sample_grid, windows too short to batch included."""
    t, rr = (a[30000:34000] for a in nsr001(reference))
    windows = window_spans(
        t, np.arange(t[0] + 20.0, t[-1] + 5.0, 10.0)
    )  # from 20 s of beats to the last beat
    assert min(j - i for i, j in windows) < spline_batch.MIN_BATCH_BEATS < max(j - i for i, j in windows)
    worst, seen = 0.0, []
    for rows, samples in spline_batch.sample_grids(t, rr, windows, 4.0):
        assert samples.flags.c_contiguous and samples.shape[0] == len(rows)
        for k, got in zip(rows, samples):
            i, j = windows[k]
            alone = spline.sample_grid(t[i:j], rr[i:j], 4.0)
            assert len(got) == len(alone)
            worst = max(worst, float(np.abs(got - alone).max()))
            seen.append(k)
    assert sorted(seen) == list(range(len(windows)))
    assert worst < 1e-6  # ms, on RR values of ~1000 ms (the solve's tolerance is 1e-9 of that)


@pytest.mark.slow
def test_lf_hf_of_many_windows_equals_lf_hf_of_each(reference):
    t, rr = nsr001(reference)
    spans = window_spans(t, np.arange(t[30000], t[30000] + 1800, 10.0))
    spans.append((spans[0][0], spans[0][0] + 10))  # too few beats: None
    together = hrv.lf_hf_many(t, rr, spans)
    assert together[-1] is None
    alone = [hrv.lf_hf(t[i:j], rr[i:j]) for i, j in spans]
    assert all(a == pytest.approx(b, rel=1e-8) for a, b in zip(together[:-1], alone[:-1]))


@pytest.mark.slow
def test_feeding_a_chunk_of_events_gives_the_readings_of_feeding_them_one_by_one():
    """feed_many computes the statistics and LF/HF of a chunk's readings together, across the
    arrays' compactions and gaps: the same readings as feed, to round-off (LF/HF to the spline's
    tolerance)."""
    from collector.events import Beat, Gap
    from processing.pipeline import Pipeline

    rng = np.random.default_rng(4)
    events, t = [], 0.0
    for k in range(6000):
        if k in (1500, 1700, 4000):
            events.append(Gap("p", "d", t, t + 200.0 + 100 * (k == 1700), "test"))
            t += 200.0 + 100 * (k == 1700)
        rr = (
            850
            + 50 * np.sin(2 * np.pi * 0.1 * t)
            + 20 * np.sin(2 * np.pi * 0.25 * t)
            + 5 * rng.standard_normal()
        )
        if k % 97 == 0:
            rr *= 0.7  # a premature beat for the corrector
        t += rr / 1000.0
        events.append(Beat("p", "d", t, float(rr)))
    one, many = Pipeline("p"), Pipeline("p")
    alone = [r for e in events for r in one.feed(e)] + one.finish()
    together = [
        r for k in range(0, len(events), 777) for r in many.feed_many(events[k : k + 777])
    ] + many.finish()
    assert len(alone) == len(together) > 450
    assert sum(r.lf_hf is not None for r in together) > 350
    for a, b in zip(alone, together):
        for field, x in a.to_dict(12).items():
            y = b.to_dict(12)[field]
            if isinstance(x, float) and y is not None:  # sums over other spans: round-off only
                assert x == pytest.approx(y, rel=1e-8, abs=1e-9), field
            else:
                assert x == y, field
