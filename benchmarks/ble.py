"""Benchmark of the Bluetooth data path; prints figures, asserts nothing.

Heart Rate Measurement payloads parsed and timed into beats (collector.heart_rate +
collector.beat_timing) per second, against the ~1 notification/s of a strap.
Usage: .venv/bin/python benchmarks/ble.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.options import parser
from collector.beat_timing import BeatTimer
from collector.heart_rate import parse


def main(n: int = 200_000) -> None:
    payloads = [
        bytes([0x16, 70]) + (800 + i % 50).to_bytes(2, "little") + (810 + i % 30).to_bytes(2, "little")
        for i in range(1000)
    ]
    t0 = time.perf_counter()
    for i in range(n):
        parse(payloads[i % 1000])
    parse_rate = n / (time.perf_counter() - t0)
    timer = BeatTimer("me", "h10")
    arrival = 1_800_000_000.0
    t0 = time.perf_counter()
    for i in range(n):
        m = parse(payloads[i % 1000])
        arrival += sum(m.rr_ms) / 1000.0
        timer.notification(arrival, m)
    full_rate = n / (time.perf_counter() - t0)
    print("stresswatch BLE data path benchmark")
    print(f"  parse 0x2A37 payloads:                  {parse_rate:12,.0f} payloads/s")
    print(f"  parse + beat timing (2 RR per payload):  {full_rate:12,.0f} payloads/s")
    print(f"  headroom over one strap (~1 payload/s):  {full_rate:12,.0f} x")


if __name__ == "__main__":
    parser(__doc__).parse_args()
    main()
