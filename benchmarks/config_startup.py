"""Benchmark of loading the configuration; prints figures, asserts nothing.

CPU time (user + system, from interpreter start; steadier than wall time on a shared machine)
and peak RSS (VmHWM) of child processes that
1. import stresswatch.config,
2. load a full configuration (every section, [alerts] included),
3. run `stresswatch config check`, `stresswatch doctor` and `stresswatch run` (the last two on a
   machine without Bluetooth: they stop at the missing bus, after the imports and the config),
each as it is, and again with a schema library imported and its model of our configuration built
and validated first (`--library pydantic`: pydantic v2's TypeAdapter over the same dataclasses),
so the difference is what the library would add to every start of the service.
Usage: .venv/bin/python benchmarks/config_startup.py [--repeats 9] [--library pydantic]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from benchmarks.options import parser

FULL = textwrap.dedent(
    """
    [service]
    timezone = "Europe/Berlin"
    [processing]
    step_s = 5
    [[people]]
    name = "ann"
    age = 35
    [[devices]]
    person = "ann"
    address = "A0:9E:1A:12:34:56"
    [mqtt]
    url = "mqtt://127.0.0.1:1"
    [influx]
    url = "http://127.0.0.1:1"
    [alerts]
    cooldown_min = 60
    quiet_hours = ["22:00", "07:00"]
    """
)

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    library, what, path, fd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if library == "pydantic":
        import pydantic
        from alerts.settings import AlertSettings
        from stresswatch import config
        pydantic.TypeAdapter(config.Config).validate_python({})
        pydantic.TypeAdapter(AlertSettings).validate_python({})
    code = 0
    if what == "import":
        import stresswatch.config
    elif what == "load":
        from stresswatch import config
        config.load(path, environ={})
    else:
        from stresswatch.cli import main
        try:
            code = main(["--config", path, *what.split()])
        except SystemExit as exc:
            code = exc.code
    cpu = time.process_time()
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    os.write(fd, json.dumps({"cpu": cpu, "rss_kb": hwm, "code": code}).encode())
    """
)


def measure(library: str, what: str, path: Path, repeats: int) -> tuple[float, float]:
    """Median CPU time (ms) and median peak RSS (MB) of `repeats` children."""
    cpus, rss = [], []
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={path.parent}/no-bus",
    }
    for _ in range(repeats):
        r, w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, library, what, str(path), str(w)],
            env=env,
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=path.parent,
        )
        os.close(w)
        with os.fdopen(r) as fh:
            out = fh.read()
        proc.wait()
        figures = json.loads(out.replace("\n", "")) if out else None
        if figures is None:
            raise SystemExit(f"{what}: the child wrote nothing (exit {proc.returncode})")
        cpus.append(figures["cpu"] * 1000)
        rss.append(figures["rss_kb"] / 1024)
    return statistics.median(cpus), statistics.median(rss)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--library", default="pydantic", choices=("pydantic", "none"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stresswatch.toml"
        path.write_text(FULL + f'[state]\ndirectory = "{tmp}/state"\n')
        libraries = ["none"] if args.library == "none" else ["none", args.library]
        print(f"{'what':<22}" + "".join(f"{lib + ' CPU ms':>16}{lib + ' MB':>14}" for lib in libraries))
        for what in ("import", "load", "config check", "doctor", "run"):
            row = [measure(lib, what, path, args.repeats) for lib in libraries]
            print(f"{what:<22}" + "".join(f"{cpu:16.1f}{rss:14.1f}" for cpu, rss in row))


if __name__ == "__main__":
    main()
