"""Benchmark of the outbox: the cost of one `enqueue` as the outbox fills; prints figures, asserts nothing.

The service enqueues once per beat on its event loop, so this cost must not grow with the
outbox (after a long outage it holds up to `outbox_max_points`, 2,000,000 by default). One
store is filled to 10k, 1M and 2M beat points; at each size it times single-point enqueues
(1) below the bound and (2) at the bound, where every enqueue also drops the oldest point.
For reference it also times `SELECT COUNT(*)` of the sink, the bound check enqueue used to run
on every call. Ratios are against the 10k figures of the same run.

Usage: .venv/bin/python benchmarks/store.py [--sizes 10000,1000000,2000000] [--calls 2000]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from benchmarks.options import parser
from collector.events import Beat
from sinks.line_protocol import beat_line
from sinks.store import StateStore

SINK = "influx"
T0 = 1_700_000_000.0


def beat_rows(start: int, n: int) -> list[tuple[str, str, None]]:
    rows = []
    for i in range(start, start + n):
        ln = beat_line(Beat("me", "h10", T0 + i * 0.8, 800.0 + i % 50, hr_bpm=75.0))
        rows.append((ln.key, ln.text, None))
    return rows


def per_enqueue_us(store: StateStore, start: int, calls: int) -> float:
    """Median wall time of one single-point enqueue, in microseconds."""
    rows = beat_rows(start, calls)
    times = []
    for row in rows:
        t = time.perf_counter()
        store.enqueue(SINK, [row])
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def count_us(store: StateStore, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        store._db.execute("SELECT COUNT(*) FROM outbox WHERE sink = ?", (SINK,)).fetchone()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--sizes", default="10000,1000000,2000000")
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp) / "state.db", limits={SINK: 10 * max(sizes)})
        next_i, rows = 0, 0
        results = []
        for size in sizes:
            while rows < size:
                n = min(50_000, size - rows)
                store.enqueue(SINK, beat_rows(next_i, n))
                next_i, rows = next_i + n, rows + n
            below = per_enqueue_us(store, next_i, args.calls)
            next_i += args.calls
            store.limits[SINK] = store.pending(SINK)  # full: every enqueue now drops the oldest point
            at_bound = per_enqueue_us(store, next_i, args.calls)
            next_i += args.calls
            store.limits[SINK] = 10 * max(sizes)
            rows = store.pending(SINK)
            results.append((size, below, at_bound, count_us(store)))
        size_mb = (Path(tmp) / "state.db").stat().st_size / 1e6
        store.close()
    ref_below, ref_bound = results[0][1], results[0][2]
    print(
        f"outbox enqueue, one beat point per call (median of {args.calls} calls); database {size_mb:.0f} MB at the end"
    )
    print(
        f"{'rows':>10} {'below bound us':>15} {'ratio':>6} {'at bound us':>12} {'ratio':>6} {'COUNT(*) us (old check)':>24}"
    )
    for size, below, at_bound, count in results:
        print(
            f"{size:>10,} {below:>15.1f} {below / ref_below:>6.2f} {at_bound:>12.1f} {at_bound / ref_bound:>6.2f} "
            f"{count:>24.0f}"
        )


if __name__ == "__main__":
    main()
