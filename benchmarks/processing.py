"""Benchmark of the streaming core; prints figures, asserts nothing.

1. Per-beat cost of the full streaming core (correction, windows, a complete Reading at every
   beat, LF/HF every 10 s) vs. calling neurokit2 `hrv_time` on the trailing 300 s window at
   every beat, both in this process on the same real beats (nsr001); the ratio is the figure.
2. Wall time of the 24 h nsr001 recording through the core (default settings: a reading and
   LF/HF every 10 s), file reading timed separately.
3. Peak RSS of `stresswatch analyze nsr001.csv --json` (a child process).

Usage: STRESSWATCH_REFERENCE_DATA=../shared/data python benchmarks/processing.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

# This file is named like the `processing` package; keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from collector.files import read_recording  # noqa: E402
from processing.pipeline import Pipeline, Settings  # noqa: E402


def main() -> None:
    data = Path(os.environ.get("STRESSWATCH_REFERENCE_DATA", "../shared/data"))
    nsr = data / "rr/nsr2db_24h/nsr001.csv"
    t0 = time.perf_counter()
    rec = read_recording(nsr)
    t_read = time.perf_counter() - t0
    beats = rec.beats

    # 1. per beat: ours (a reading per beat) vs neurokit2 hrv_time on the trailing window
    sample = beats[20000:26000]
    # (a) the core as it runs: every beat corrected and windowed, its time-domain metrics read
    # (what hrv_time computes), a full Reading with LF/HF every 10 s step.
    pipe = Pipeline("p", Settings())
    t0 = time.perf_counter()
    for b in sample:
        pipe.feed(b)
        w = pipe.long
        if len(w) > 2:
            (w.mean_rr(), w.sdnn(), pipe.short.rmssd(), pipe.short.pnn(50), pipe.short.pnn(20), w.sd1(), w.sd2())
    ours = (time.perf_counter() - t0) / len(sample)
    # (b) a complete Reading (all fields, Baevsky, PNS/SNS, stress state) at every beat.
    pipe = Pipeline("p", Settings(step_s=0.0, spectral_step_s=10.0))
    t0 = time.perf_counter()
    n_readings = 0
    for b in sample:
        n_readings += len(pipe.feed(b))
    ours_full = (time.perf_counter() - t0) / len(sample)

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

    # 2. 24 h through the core with default settings
    t0 = time.perf_counter()
    pipe = Pipeline("p", Settings())
    n24 = sum(len(pipe.feed(e)) for e in rec.events) + len(pipe.finish())
    t_core = time.perf_counter() - t0

    # 3. peak RSS of the CLI on the same file
    # (The child reports its own VmHWM: getrusage of children would count the memory this
    # process had when it forked, neurokit2 included.)
    child = (
        "import atexit, runpy, sys\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM'): sys.stderr.write(line)\n"
        "atexit.register(hwm)\n"
        f"sys.argv = ['stresswatch', 'analyze', {str(nsr)!r}, '--json']\n"
        "runpy.run_module('stresswatch.cli', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", child], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, check=True)
    rss_mb = int(proc.stderr.split()[-2]) / 1024

    print("stresswatch processing benchmark (nsr001, PhysioNet nsr2db, 24 h, %d beats)" % len(beats))
    print(f"  per beat, neurokit2 hrv_time on 300 s window:  {theirs * 1e6:8.1f} us")
    print(f"  per beat, streaming core (time domain every beat, Reading + LF/HF every 10 s):")
    print(f"                                                 {ours * 1e6:8.1f} us  -> {theirs / ours:5.0f} x faster (goal >= 200 x)")
    print(f"  per beat, streaming core, full Reading every beat:")
    print(f"                                                 {ours_full * 1e6:8.1f} us  -> {theirs / ours_full:5.0f} x faster  ({n_readings} readings)")
    print(f"  24 h through the core, LF/HF every 10 s:       {t_core:8.2f} s   ({n24} readings; goal <= 3 s)")
    print(f"  reading the 24 h file:                          {t_read:8.2f} s")
    print(f"  peak RSS of `stresswatch analyze` on nsr001:   {rss_mb:8.1f} MB  (goal <= 100 MB)")


if __name__ == "__main__":
    main()
