"""LF/HF is only reported for a spectrum with power to speak of (processing.hrv.lf_hf)."""

from __future__ import annotations

import numpy as np

from collector.events import Beat
from processing import hrv
from processing.pipeline import Pipeline, Settings


def beats_times(rr_ms: np.ndarray) -> np.ndarray:
    return np.cumsum(rr_ms) / 1000.0


def test_lf_hf_of_a_constant_series_is_not_reported():
    """A metronome heart has no LF or HF power; the ratio of two ~1e-17 ms^2 round-off powers
    is not a measurement."""
    for rr in (1000.0, 857.421875, 612.3):
        series = np.full(400, rr)
        assert hrv.lf_hf(beats_times(series), series) is None, rr


def test_lf_hf_of_rr_rounding_alone_is_not_reported():
    """A near-constant heart recorded at 1 ms or 1/1024 s resolution: the only variability is
    the rounding, far below MIN_LF_HF_POWER_MS2 (the margin the constant documents)."""
    rng = np.random.default_rng(1)
    for step_ms in (1.0, 1000.0 / 1024.0):
        series = np.round((800.3 + rng.normal(0.0, 0.3, 400)) / step_ms) * step_ms
        assert np.ptp(series) > 0
        assert hrv.lf_hf(beats_times(series), series) is None, step_ms


def test_lf_hf_of_a_breathing_modulated_series_is_reported():
    """0.1 Hz (LF) and 0.25 Hz (HF) oscillations of a few ms, still far below normal HRV, carry
    power well above the floor and give a ratio near the squared amplitude ratio (4)."""
    t = np.arange(400) * 0.8
    series = 800.0 + 4.0 * np.sin(2 * np.pi * 0.1 * t) + 2.0 * np.sin(2 * np.pi * 0.25 * t)
    ratio = hrv.lf_hf(beats_times(series), series)
    assert ratio is not None and 3.0 < ratio < 5.0


def test_the_pipeline_reports_no_lf_hf_for_a_constant_heart():
    pipe = Pipeline("p", Settings(correction=False))
    readings = [r for i in range(600) for r in pipe.feed(Beat("p", "d", 1.0 + i, 1000.0))]
    assert readings and readings[-1].sdnn_ms == 0
    assert all(r.lf_hf is None for r in readings)
