"""Benchmark of the streaming core; prints figures, asserts nothing.

1. Per-beat cost of the streaming core vs. calling neurokit2 `hrv_time` on the trailing 300 s
   window at every beat, both in this process on the same 6000 real beats of nsr001: the
   per-beat work alone (correction, windows, time-domain metrics), then with a complete Reading
   and LF/HF every 10 s step amortised over the beats, then with a complete Reading per beat.
2. Wall time of the 24 h nsr001 recording through the core (default settings: a reading and
   LF/HF every 10 s), event by event as a live stream and in chunks as a file
   (`Pipeline.feed_many`); file reading timed separately.
3. Peak RSS of `stresswatch analyze nsr001.csv --json` (a child process).
4. LF/HF of the 24 h windows (300 s, every 10 s), CPU per window, fastest of 3 runs: one window at
   a time (`hrv.lf_hf` with a `SplineCache`, as `Pipeline.feed`) vs the windows of chunks of
   ~4096 beats together (`hrv.lf_hf_many`, as `Pipeline.feed_many`); and their spline samples
   alone (`spline.sample_grid` with its cache vs `spline_batch.sample_grids`): the factors the
   second paths are kept for (their docstrings).

Usage: STRESSWATCH_REFERENCE_DATA=../shared/data python benchmarks/processing.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

# This file is named like the `processing` package; keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.cli_usage import analyze_cpu_and_peak_rss
from benchmarks.options import parser, reference_data
from collector.files import read_recording
from processing import hrv, spline, spline_batch
from processing.pipeline import CHUNK_EVENTS, Pipeline, Settings, run


def main() -> None:
    parser(__doc__).parse_args()
    nsr = reference_data("rr/nsr2db_24h/nsr001.csv") / "rr/nsr2db_24h/nsr001.csv"
    t0 = time.perf_counter()
    rec = read_recording(nsr)
    t_read = time.perf_counter() - t0
    beats = rec.beats

    # 1. per beat: ours (a reading per beat) vs neurokit2 hrv_time on the trailing window
    sample = beats[20000:26000]

    def per_beat(settings: Settings, read_time_domain: bool = False) -> tuple[float, int]:
        pipe = Pipeline("p", settings)
        n = 0
        t0 = time.perf_counter()
        for b in sample:
            n += len(pipe.feed(b))
            if read_time_domain:
                pipe.window_stats()
        return (time.perf_counter() - t0) / len(sample), n

    never = 1e12  # a step longer than the sample: no Reading, no LF/HF
    # (a) the per-beat work: correction, the beat arrays, and the time-domain metrics that
    #     neurokit2's hrv_time computes, read at every beat (Pipeline.window_stats).
    beat_only, _ = per_beat(Settings(step_s=never, spectral_step_s=never), True)
    # (b) as the service runs: a complete Reading with LF/HF every 10 s step.
    amortised, n_default = per_beat(Settings())
    # (c) a complete Reading (all fields, LF/HF every 10 s) at every beat.
    full, n_full = per_beat(Settings(step_s=0.0, spectral_step_s=10.0))
    warnings.filterwarnings("ignore")
    import neurokit2 as nk

    times = np.array([b.t for b in sample])
    rrs = np.array([b.rr_ms for b in sample])
    calls = 300
    start = int(np.searchsorted(times, times[0] + 300))
    t0 = time.perf_counter()
    for i in range(start, start + calls):
        lo = int(np.searchsorted(times, times[i] - 300, side="right"))
        nk.hrv_time({"RRI": rrs[lo : i + 1], "RRI_Time": times[lo : i + 1]})
    theirs = (time.perf_counter() - t0) / calls

    # 2. 24 h through the core with default settings, a beat at a time (live) and as a file
    t0 = time.perf_counter()
    pipe = Pipeline("p", Settings())
    n24 = sum(len(pipe.feed(e)) for e in rec.events) + len(pipe.finish())
    t_core = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(rec.events, "p")
    t_file = time.perf_counter() - t0

    # 3. peak RSS of the CLI on the same file
    _, rss_mb = analyze_cpu_and_peak_rss(nsr)

    print(f"stresswatch processing benchmark (nsr001, PhysioNet nsr2db, 24 h, {len(beats)} beats)")
    print(f"  neurokit2 hrv_time on the trailing 300 s window, per beat:   {theirs * 1e6:8.1f} us")
    print("  streaming core, per-beat work (correction, windows, time-domain metrics):")
    print(
        f"                                                              {beat_only * 1e6:8.1f} us"
        f"  -> {theirs / beat_only:5.0f} x faster (goal >= 200 x)"
    )
    print(
        f"  ... plus a complete Reading with LF/HF every 10 s, amortised:{amortised * 1e6:8.1f} us"
        f"  -> {theirs / amortised:5.0f} x faster ({n_default} readings)"
    )
    print(
        f"  ... a complete Reading at every beat (LF/HF every 10 s):    {full * 1e6:8.1f} us"
        f"  -> {theirs / full:5.0f} x faster ({n_full} readings)"
    )
    print(f"  24 h through the core, LF/HF every 10 s:       {t_core:8.2f} s   ({n24} readings; goal <= 3 s)")
    print(f"  ... as a file (Pipeline.feed_many in chunks):   {t_file:8.2f} s")
    print(f"  reading the 24 h file:                          {t_read:8.2f} s")
    print(f"  peak RSS of `stresswatch analyze` on nsr001:   {rss_mb:8.1f} MB  (goal <= 100 MB)")
    lf_hf_paths(np.array([b.t for b in beats]), np.array([b.rr_ms for b in beats]))


def lf_hf_paths(t: np.ndarray, rr: np.ndarray, repeats: int = 3) -> None:
    """4. CPU per window of LF/HF and of its spline samples, one window at a time vs chunks."""
    ends = np.arange(t[0] + 300.0, t[-1], 10.0)
    spans = [
        (int(np.searchsorted(t, e - 300.0, side="right")), int(np.searchsorted(t, e, side="right")))
        for e in ends
    ]
    chunks: list[list[tuple[int, int]]] = [[]]
    for span in spans:  # the windows of ~CHUNK_EVENTS beats, as feed_many meets them
        if chunks[-1] and span[1] - chunks[-1][0][0] > CHUNK_EVENTS:
            chunks.append([])
        chunks[-1].append(span)

    def one_lf_hf():
        cache = spline.SplineCache()
        for i, j in spans:
            hrv.lf_hf(t[i:j], rr[i:j], cache)

    def many_lf_hf():
        for chunk in chunks:
            hrv.lf_hf_many(t, rr, chunk)

    def one_grid():
        cache = spline.SplineCache()
        for i, j in spans:
            spline.sample_grid(t[i:j], rr[i:j], hrv.INTERPOLATION_HZ, cache)

    def many_grids():
        for chunk in chunks:
            spline_batch.sample_grids(t, rr, chunk, hrv.INTERPOLATION_HZ)

    def cpu(fn) -> float:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        return best / len(spans)

    print(f"  LF/HF of the 24 h windows ({len(spans)} windows, every 10 s), CPU per window:")
    for name, one, many in (("LF/HF", one_lf_hf, many_lf_hf), ("its spline samples", one_grid, many_grids)):
        a, b = cpu(one), cpu(many)
        print(
            f"    {name:19s} one at a time {a * 1e6:6.0f} us, per chunk {b * 1e6:6.0f} us  -> {a / b:4.1f} x"
        )


if __name__ == "__main__":
    main()
