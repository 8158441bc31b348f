"""Benchmark of the morning reading's chronic rule on simulated months; prints a table, asserts nothing.

Each simulated morning (collector/simulator.py `plan_mornings`: 2 missed mornings a week, 10 % of
readings spoiled by movement or artifacts and retaken 7 times in 10) is generated beat by beat
(`morning_script`; artifacts injected with collector/artifacts.py), taken through the real
protocol (processing/morning.py `MorningReading`) and handed to the real alert engine
(alerts/engine.py `AlertEngine.morning`), which `tick`s at every midnight, in Europe/Berlin.

Two scenarios, 10 seeds each:
- onset: 6 stable weeks, then a chronic-stress period (morning lnRMSSD 0.3 lower, day-to-day SD
  x 1.5) for 3 weeks. The onset is the first valid morning of the period whose 7-day mean lies
  under the normal range's lower edge (mean - 0.5 SD of the last 60 days, as the dashboard draws
  it); the delay is the number of valid mornings from it to the chronic finding, counting the
  onset morning as the 1st. Findings before the period are false alarms.
- stable: 8 stable weeks; every chronic finding is a false alarm.

Usage: STRESSWATCH_REFERENCE_DATA is not needed.
  .venv/bin/python benchmarks/morning.py [--seeds 10] [--drop 0.3] [--sd-factor 1.5]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from alerts.engine import AlertEngine, Decision
from alerts.settings import AlertSettings
from alerts.timeofday import at, day_of, day_start
from collector.artifacts import inject
from collector.events import Beat
from collector.simulator import Chronic, MorningPerson, morning_script, plan_mornings, simulate
from processing.morning import MorningReading, Protocol

ZONE = "Europe/Berlin"
DAY0 = 20454  # 2026-01-01, a local day index


def reading(plan, outcome: str, start: float, protocol: Protocol, seed: int):
    """One attempt through the real protocol: its MorningResult."""
    sim = simulate(
        morning_script(plan, outcome, protocol.stabilise_s, protocol.measure_s), seed=seed, start=start
    )
    times = np.array([start] + [b.t for b in sim])
    if outcome == "artifacts":
        times, _ = inject(times, 0.03, seed=seed)
    m = MorningReading("me", protocol, start, trigger="sim")
    for a, b in itertools.pairwise(times):
        out = m.feed(Beat("me", "strap", float(b), float((b - a) * 1000.0)))
        if out is not None:
            return out
    return m.tick(float(times[-1]) + 60.0)


def run(n_days: int, seed: int, chronic: Chronic | None, protocol: Protocol | None = None) -> dict:
    """A simulated stretch of mornings through protocol and engine: per valid morning its day,
    7-day mean, band and whether a chronic finding came; and the failures seen."""
    protocol = protocol or Protocol()
    settings = AlertSettings(timezone=ZONE)
    tz = settings.tz
    engine = AlertEngine("me", settings, seed=seed)
    rows, failures, findings = [], {}, []
    for plan in plan_mornings(n_days, seed, MorningPerson(), chronic):
        day = DAY0 + plan.day
        t = at(day, plan.minute, tz)
        for k, outcome in enumerate(plan.attempts):
            result = reading(plan, outcome, t, protocol, seed * 100_000 + plan.day * 10 + k)
            t = result.time + 120.0  # the next attempt two minutes later
            for o in engine.morning(result):
                if isinstance(o, Decision) and o.what == "morning" and o.rule == "valid":
                    d = o.data
                    rows.append(
                        {
                            "day": plan.day,
                            "mean": d["ln_rmssd_7d"],
                            "low": d["normal_low"],
                            "cv": d["cv_7d"],
                            "finding": False,
                        }
                    )
                elif isinstance(o, Decision) and o.what == "morning" and o.rule == "failed":
                    failures[o.data["failure"]] = failures.get(o.data["failure"], 0) + 1
                elif isinstance(o, Decision) and o.what == "chronic":
                    findings.append((plan.day, o.rule))
                    if rows and rows[-1]["day"] == plan.day:
                        rows[-1]["finding"] = True
        for o in engine.tick(day_start(day + 1, tz) + 180.0):
            if isinstance(o, Decision) and o.what == "chronic":
                findings.append((day_of(o.time, tz) - DAY0, o.rule))
    return {"rows": rows, "failures": failures, "findings": findings}


def onset_delay(rows: list[dict], start: int) -> tuple[int | None, int | None]:
    """(day of the onset morning, valid mornings from it to the first finding, the onset 1st)."""
    after = [r for r in rows if r["day"] >= start]
    onset = next(
        (
            k
            for k, r in enumerate(after)
            if r["mean"] is not None and r["low"] is not None and r["mean"] < r["low"]
        ),
        None,
    )
    if onset is None:
        return None, None
    found = next((k for k, r in enumerate(after) if r["finding"]), None)
    return after[onset]["day"], None if found is None else found - onset + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--drop", type=float, default=0.3, help="lnRMSSD drop of the chronic period")
    ap.add_argument("--sd-factor", type=float, default=1.5, help="day-to-day SD factor of the chronic period")
    args = ap.parse_args()
    stable_weeks, onset_day = 8, 42
    print(
        f"onset: {onset_day} stable days, then 21 chronic days (lnRMSSD -{args.drop}, SD x{args.sd_factor}); "
        f"stable: {stable_weeks} weeks; 2 missed mornings a week; 10 % of readings spoiled, 7 in 10 retaken"
    )
    print(
        "| seed | valid mornings (onset run) | failed readings | onset: 7-day mean under the band on day | "
        "found after (valid mornings, onset = 1) | false alarms before onset | stable 8 weeks: chronic findings |"
    )
    print("|---|---|---|---|---|---|---|")
    delays, false_onset, false_stable = [], 0, 0
    for seed in range(args.seeds):
        a = run(onset_day + 21, seed, Chronic(start=onset_day, ln_drop=args.drop, sd_factor=args.sd_factor))
        b = run(7 * stable_weeks, seed + 1000, None)
        day, delay = onset_delay(a["rows"], onset_day)
        early = [f for f in a["findings"] if f[0] < onset_day]
        false_onset += len(early)
        false_stable += len(b["findings"])
        delays.append(delay)
        fails = ", ".join(f"{k} {v}" for k, v in sorted(a["failures"].items())) or "none"
        print(
            f"| {seed} | {len(a['rows'])} | {fails} | {day} | {delay} | {len(early)} | {len(b['findings'])} |"
        )
    found = [d for d in delays if d is not None]
    print(
        f"\nonset found in {len(found)} of {len(delays)} runs; delay (valid mornings, onset = 1): "
        f"median {np.median(found) if found else None}, max {max(found) if found else None}; "
        f"within 3: {sum(d <= 3 for d in found)} of {len(delays)}; false alarms: {false_onset} before onsets, "
        f"{false_stable} in the stable runs"
    )


if __name__ == "__main__":
    main()
