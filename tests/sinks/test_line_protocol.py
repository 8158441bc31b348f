"""The line protocol module's docstring is the InfluxDB schema's contract: every measurement and
every field the line functions write is named in it (a field written but not documented, or a
name documented but never written, is a stale contract)."""

from __future__ import annotations

import re

import sinks.line_protocol as lp
from alerts.daily import DailySummary
from alerts.effect import judge
from collector.events import Beat

DOC = lp.__doc__


def written(line: lp.Line) -> tuple[str, set[str]]:
    """The measurement and field keys of a line (values without spaces, as below)."""
    head, _, _ = line.text.rpartition(" ")
    series, _, fields = head.partition(" ")
    return series.split(",")[0], {f.split("=")[0] for f in re.split(r",(?=[a-z_0-9]+=)", fields)}


def documented(measurement: str) -> str:
    """The docstring's item for a measurement: from "- `name`" to the next item."""
    found = re.search(rf"^- `{measurement}` (.*?)(?=^- `|^\S|\Z)", DOC, re.S | re.M)
    assert found, f"{measurement} is not documented"
    return found.group(1)


def effect() -> dict:
    """A measured effect as the alert engine hands it to the sinks (alerts/engine.py: `judge`'s
    result with the prompt's id, exercise, breathing peak and whether it was paced)."""
    before = {"ln_rmssd": 3.5, "hr_bpm": 72.0, "stress_score": 70.0}
    after = {"ln_rmssd": 3.8, "hr_bpm": 66.0, "stress_score": 40.0}
    return {**judge(before, after, 0.1, 0.05), "id": "p1", "exercise": "box", "peak_hz": 0.1, "paced": True}


def every_field_filled(summary: dict) -> dict:
    return {k: ([1.0, 2.0] if k.endswith("_band") else 1.0) if v is None else v for k, v in summary.items()}


LINES = [
    lp.beat_line(Beat("me", "h10", 1000.0, 800.0, hr_bpm=75.0)),
    lp.prompt_line(
        {
            "id": "p1",
            "person": "me",
            "time": 1000.0,
            "kind": "acute",
            "exercise": {"name": "box"},
            "stress_score": 80.0,
        },
        "done",
        effect(),
    ),
    lp.device_line("me", "h10", 1000.0, 80.0, True),
    lp.baseline_line("me", 1000.0, 3.7, 0.3, 62.0, 4.0, 12),
    lp.daily_line("me", every_field_filled(DailySummary(20000, "2024-10-03").to_dict()), 1000.0),
    lp.morning_line(
        "me",
        {
            k: 1.0
            for k in (
                "ln_rmssd",
                "rmssd_ms",
                "hr_bpm",
                "artifact_pct",
                "measure_s",
                "ln_rmssd_7d",
                "cv_7d",
                "normal_low",
                "normal_high",
                "n_beats",
            )
        }
        | {"posture": "sitting", "trigger": "cli"},
        1000.0,
    ),
]


def test_every_field_written_is_named_in_its_measurements_item():
    for line in LINES:
        measurement, fields = written(line)
        item = documented(measurement)
        missing = {f for f in fields if not re.search(rf"\b{f}\b", item)}
        assert missing == set(), f"{measurement}: written but not documented: {sorted(missing)}"


def test_every_name_documented_is_written():
    for line in LINES:
        measurement, fields = written(line)
        named = set(re.findall(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b", documented(measurement)))  # snake_case names
        stale = named - fields
        assert stale == set(), f"{measurement}: documented but never written: {sorted(stale)}"


def test_the_hrv_item_and_the_measurements_of_the_influx_sink():
    assert "every numeric `Reading` field" in documented("hrv")
    from sinks.influx import DROP_ORDER

    assert {m for m in DROP_ORDER} == set(re.findall(r"^- `(\w+)`", DOC, re.M))
