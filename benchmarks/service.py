"""Benchmark of the service loop; prints figures, asserts nothing.

1. CPU and peak RSS of the service (stresswatch/service.py) with 1, 10, 100 and 1000 simulated
   wearers replayed at the physical rate (each wearer's simulated day paced in real time), the
   readings published to a real Mosquitto. Each size runs in a child process of its own, so its
   peak RSS (VmHWM) is its own; CPU is counted from the moment the service starts (imports and
   simulation excluded) and given as % of one core and CPU-seconds per wearer-hour.
2. Latency from a Heart Rate Measurement notification sent by the fake BlueZ (tests/fake_bluez.py,
   unmodified bleak in `stresswatch run`) to the MQTT state message it causes, at a subscriber in
   this process (one monotonic clock): median and p99.

Needs the Debian packages mosquitto and dbus (scripts/test installs them).
Usage: .venv/bin/python benchmarks/service.py [--seconds 60] [--wearers 1,10,100,1000]
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import servers  # tests/servers.py: Mosquitto on a free loopback port

from benchmarks.options import parser

CHILD = textwrap.dedent(
    """
    import asyncio, json, os, resource, sys, time
    from stresswatch import config
    from stresswatch.service import Service
    from stresswatch.sources import ReplaySource, simulated_day

    n, seconds, cfg_path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    cfg = config.load(cfg_path, environ={})
    from dataclasses import replace
    days = [simulated_day(seed=k, artifacts=0.005, person="x")[0][: int(seconds * 3.5)] for k in range(min(n, 10))]
    sources = [ReplaySource([replace(b, person=f"p{k}") for b in days[k % len(days)]], pace=1.0) for k in range(n)]
    readings = [0]

    async def main():
        # built on the running loop, as `stresswatch run` builds it: its MQTT sink lives there
        service = Service(cfg, sources)
        service.on_reading = lambda r: readings.__setitem__(0, readings[0] + 1)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await service.run(stop)

    cpu0 = time.process_time()
    wall0 = time.monotonic()
    asyncio.run(main())
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print(json.dumps({"cpu": cpu, "wall": wall, "rss_kb": hwm, "readings": readings[0]}))
    """
)


def wearers(broker, n: int, seconds: float, tmp: Path) -> dict:
    cfg = tmp / f"w{n}.toml"
    people = "".join(f'[[people]]\nname = "p{k}"\n' for k in range(n))
    cfg.write_text(
        f'[state]\ndirectory = "{tmp / f"state{n}"}"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\nclient_id = "bench{n}"\n{people}'
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(seconds), str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds * 3 + 600,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ble_latency(broker, tmp: Path, seconds: float) -> list[float]:
    import paho.mqtt.client as mqtt
    from fake_bluez import FakeBlueZ, FakeStrap, PrivateSystemBus
    from paho.mqtt.enums import CallbackAPIVersion

    address = "A0:9E:1A:00:00:42"
    cfg = tmp / "ble.toml"
    cfg.write_text(
        f'[processing]\nstep_s = 1\n[state]\ndirectory = "{tmp / "ble-state"}"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\nclient_id = "bench-ble"\n'
        f'[[devices]]\nperson = "ann"\naddress = "{address}"\n'
    )
    arrivals: queue.Queue = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: arrivals.put(time.monotonic())
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("stresswatch/ann/state")
    sub.loop_start()
    bus = PrivateSystemBus()
    sent: list[float] = []

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        strap = bluez.add(FakeStrap(address, "Polar H10 42", [800 + (i * 29) % 70 for i in range(64)]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stresswatch.cli",
            "--config",
            str(cfg),
            "run",
            "--quiet",
            cwd=ROOT,
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            await asyncio.sleep(1.0)
            if strap.hr_char is not None and strap.hr_char.notifying:
                sent.append(time.monotonic())
            strap.tick(1.0)
            bluez.advertise()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)

    try:
        asyncio.run(scenario())
    finally:
        sub.loop_stop()
        bus.stop()
    got = []
    while not arrivals.empty():
        got.append(arrivals.get())
    latencies = []
    for a in got:
        before = [s for s in sent if s <= a]
        if before and a - before[-1] < 1.0:  # a state caused by the last notification
            latencies.append(a - before[-1])
    return latencies


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--wearers", default="1,10,100,1000")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "mosquitto").mkdir()
        broker = servers.mosquitto(tmp / "mosquitto").start()
        try:
            print(f"service loop, simulated wearers at the physical rate, {args.seconds:g} s each, MQTT on")
            print(
                f"{'wearers':>8} {'CPU % of a core':>16} {'CPU-s per wearer-hour':>22} {'peak RSS MB':>12} "
                f"{'readings':>9}"
            )
            rows = []
            for n in (int(x) for x in args.wearers.split(",")):
                r = wearers(broker, n, args.seconds, tmp)
                pct = 100.0 * r["cpu"] / r["wall"]
                per_hour = r["cpu"] / (n * r["wall"] / 3600.0)
                rss = r["rss_kb"] / 1024.0
                rows.append((n, rss))
                print(f"{n:>8} {pct:>16.2f} {per_hour:>22.3f} {rss:>12.1f} {r['readings']:>9}")
            # Each child also holds its wearers' replayed beats (at most 3.5 per second of the run each).
            for (n0, rss0), (n1, rss1) in itertools.pairwise(rows):
                print(
                    f"peak RSS per added wearer, {n0} -> {n1} wearers: {1024 * (rss1 - rss0) / (n1 - n0):.0f} kB"
                )
            lat = sorted(ble_latency(broker, tmp, min(args.seconds, 60.0)))
            if lat:
                p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
                print(
                    f"\nBLE notification (fake BlueZ) -> MQTT state at a subscriber: {len(lat)} samples, "
                    f"median {1000 * statistics.median(lat):.1f} ms, p99 {1000 * p99:.1f} ms"
                )
            else:
                print("\nBLE latency: no state message followed a notification within 1 s")
        finally:
            broker.stop()
    print(f"\nbenchmark process CPU: {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.1f} s")


if __name__ == "__main__":
    main()
