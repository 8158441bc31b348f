"""Benchmark of `stresswatch analyze` on large recordings; prints figures, asserts nothing.

`analyze` streams: the recording is read one line at a time and each reading is written when the
pipeline produces it, so peak memory must not grow with the file's length. This script writes
RR series of 5 MB and 50 MB (plain text, one RR interval in ms per line: a slow sinusoid plus
noise around 800 ms, seeded) into a temporary directory, runs `stresswatch analyze FILE --json`
on each as a child process, and prints its wall time and peak RSS (VmHWM, reported by the child
itself), next to the same command on a 5-minute file as the reference: the memory the
interpreter and its imports take before any data.

Usage: python benchmarks/analyze_large.py [SIZE_MB ...]     (default: 5 50)
"""

from __future__ import annotations

import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.options import parser

# The child reports its own VmHWM: getrusage(RUSAGE_CHILDREN) would also count what this
# process held when it forked.
CHILD = (
    "import atexit, runpy, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM'): sys.stderr.write(line)\n"
    "atexit.register(hwm)\n"
    "sys.argv = ['stresswatch', 'analyze', sys.argv[1], '--json']\n"
    "runpy.run_module('stresswatch.cli', run_name='__main__')\n"
)


def write_rr(path: Path, size_bytes: int, seed: int = 1) -> int:
    """An RR series of about `size_bytes` (ms, one a line); returns the number of beats."""
    rng = random.Random(seed)
    n, written, t = 0, 0, 0.0
    with open(path, "w") as fh:
        while written < size_bytes:
            lines = []
            for _ in range(10000):
                rr = 800.0 + 60.0 * math.sin(2 * math.pi * t / 300.0) + rng.gauss(0.0, 25.0)
                t += rr / 1000.0
                lines.append(f"{rr:.1f}\n")
            chunk = "".join(lines)
            fh.write(chunk)
            written += len(chunk)
            n += len(lines)
    return n


def run(path: Path) -> tuple[float, float, float, int]:
    """Wall time (s), the child's CPU time (s), its peak RSS (MB), and the readings it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    readings = 0
    for _ in proc.stdout:
        readings += 1
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise SystemExit(f"stresswatch analyze failed on {path}:\n{err}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU time: a figure a busy machine skews less
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    hwm = next(line for line in err.splitlines() if line.startswith("VmHWM"))
    return wall, cpu, int(hwm.split()[1]) / 1024, readings


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "sizes", nargs="*", type=float, metavar="SIZE_MB", help="file sizes in MB (default: 5 50)"
    )
    sizes = ap.parse_args().sizes or [5.0, 50.0]
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "ref.txt"
        write_rr(ref, 2_500)  # ~5 minutes of beats
        ref_wall, ref_cpu, ref_rss, _ = run(ref)
        print("stresswatch analyze on large RR files (text, ms per line; --json, default windows)")
        print(
            f"  reference, a 5-minute file: wall {ref_wall:5.1f} s, CPU {ref_cpu:5.1f} s, peak RSS {ref_rss:6.1f} MB"
        )
        print(
            f"  {'file':>8s} {'beats':>10s} {'readings':>9s} {'wall':>9s} {'CPU':>9s} {'CPU us/beat':>12s} "
            f"{'peak RSS':>10s} {'x reference':>12s}"
        )
        for mb in sizes:
            path = Path(tmp) / f"rr_{mb:g}MB.txt"
            beats = write_rr(path, int(mb * 1e6))
            wall, cpu, rss, readings = run(path)
            print(
                f"  {mb:6g} MB {beats:10d} {readings:9d} {wall:8.1f}s {cpu:8.1f}s {cpu / beats * 1e6:12.1f} "
                f"{rss:7.1f} MB {rss / ref_rss:11.2f}x"
            )
            path.unlink()


if __name__ == "__main__":
    main()
