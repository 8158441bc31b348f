"""CPU time and peak RSS of one `stresswatch analyze --json` run in a child process, for the benchmarks."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def analyze_cpu_and_peak_rss(path: Path) -> tuple[float, float]:
    """CPU seconds of `stresswatch analyze PATH --json` (a child) and its peak RSS in MB. The
    child reports its own VmHWM: getrusage of children would count the memory the benchmark
    process had when it forked (neurokit2 included)."""
    child = (
        "import atexit, runpy, sys\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM'): sys.stderr.write(line)\n"
        "atexit.register(hwm)\n"
        f"sys.argv = ['stresswatch', 'analyze', {str(path)!r}, '--json']\n"
        "runpy.run_module('stresswatch.cli', run_name='__main__')\n"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-c", child],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, int(proc.stderr.split()[-2]) / 1024
