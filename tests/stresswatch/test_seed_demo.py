"""`stresswatch seed-demo`: a simulated month in a real InfluxDB 1.6.7, as the Grafana dashboard reads it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from servers import influx_query

from stresswatch.cli import main

DAY_MS = 86_400_000


def rows(server, q: str) -> list[dict]:
    """The rows of an InfluxQL query, as dicts by column name."""
    res = influx_query(server, q, db="stresswatch")["results"][0]
    out = []
    for series in res.get("series", []):
        out += [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
    return out


@pytest.fixture
def seeded(influxdb, tmp_path, capsys):
    # The command line itself (in this process: the month must take seconds, not a minute).
    t0 = time.time()
    code = main(["seed-demo", "--influx", influxdb.url, "--api", "v1", "--person", "alice", "--days", "30"])
    out = capsys.readouterr().out
    return influxdb, code, out, t0


def test_every_measurement_the_dashboard_reads_has_points_ending_now(seeded):
    server, code, out, t0 = seeded
    assert code == 0
    assert len(out.strip().splitlines()) == 1 and out.startswith("seeded 30 days for alice into ")
    assert out.rstrip().endswith(" written") and "NOT written" not in out
    hrv = rows(
        server, 'SELECT count("hr_bpm") AS n, first("hr_bpm") AS f FROM "hrv" WHERE "person" = \'alice\''
    )
    # About 30 days of worn minutes (less a daily shower and today's rest of the day).
    assert 20 * 1440 < hrv[0]["n"] <= 30 * 1440
    # The last worn minute ends the month: at most the simulated day's 15 min strap-off (a shower
    # at 07:30 local) before now. Not the last stress score: a workout (17:30-18:15 local on some
    # days) has none, by design, and made this test fail when run during one.
    last = rows(server, 'SELECT last("hr_bpm") AS s FROM "hrv"')[0]
    assert t0 * 1000 - 20 * 60_000 <= last["time"] <= t0 * 1000 + 1000
    first = rows(server, 'SELECT first("hr_bpm") AS f FROM "hrv"')[0]
    assert t0 * 1000 - 30 * DAY_MS <= first["time"] <= t0 * 1000 - 28 * DAY_MS
    states = {r["state"] for r in rows(server, 'SELECT "state" AS state FROM "hrv"')}
    assert {"calm", "stressed", "neutral", "unknown"} <= states  # unknown: the workouts
    devices = rows(
        server, 'SELECT "battery_pct" AS b, "connected" AS c FROM "devices" WHERE "person" = \'alice\''
    )
    assert len(devices) > 29 * 280 and {d["c"] for d in devices} == {True, False}
    assert all(0 < d["b"] <= 100 for d in devices) and max(d["b"] for d in devices) == 100


def test_prompts_have_answers_and_measured_effects(seeded):
    server, _, _, _ = seeded
    prompts = rows(
        server,
        'SELECT "kind" AS kind, "response" AS response, "d_ln_rmssd" AS effect, '
        '"stress_score" AS score FROM "prompts" WHERE "person" = \'alice\'',
    )
    assert len(prompts) >= 10
    kinds = {p["kind"] for p in prompts}
    assert {"acute", "chronic"} <= kinds
    assert {p["response"] for p in prompts} >= {"done", "not_stressed", "dismiss"}
    # The engine's measured effect, with the fields the service writes (alerts/effect.py).
    assert any(p["effect"] is not None for p in prompts if p["response"] == "done")
    assert all(p["effect"] is None for p in prompts if p["response"] != "done")


def test_a_chronic_episode_shows_as_days_with_the_7_day_mean_below_the_band(seeded):
    server, _, out, t0 = seeded
    days = rows(
        server,
        'SELECT "night_ln_rmssd" AS night, "ln_rmssd_7d" AS mean7, "normal_low" AS low, '
        '"normal_high" AS high, "stress_load" AS load, "valid" AS valid FROM "daily" '
        "WHERE \"person\" = 'alice'",
    )
    assert len(days) == 29  # every day but today, which has not ended
    assert sum(d["valid"] for d in days) >= 25
    banded = [d for d in days if d["low"] is not None]
    assert len(banded) >= 10 and all(d["low"] < d["high"] for d in banded)
    below = [d for d in days if d["low"] is not None and d["mean7"] < d["low"]]
    assert len(below) >= 2
    # Below only in the chronic period: the month's last CHRONIC_DAYS days.
    assert all(d["time"] >= t0 * 1000 - 10 * DAY_MS for d in below)
    assert f"{len(below)} days with the 7-day lnRMSSD below its normal range" in out


def test_seed_demo_refuses_a_month_too_short_for_a_band_in_one_line(influxdb):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stresswatch.cli",
            "seed-demo",
            "--influx",
            influxdb.url,
            "--api",
            "v1",
            "--days",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        (
            "stresswatch: error: --days must be at least 23 (14 days of warm-up for the normal range, then a "
            "9-day chronic-stress period), got 10"
        )
    ]
    assert rows(influxdb, 'SELECT count("hr_bpm") FROM "hrv"') == []


@pytest.mark.slow
def test_seed_demo_against_a_server_that_is_not_there_says_so_and_exits_1():
    from servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "seed-demo", "--influx", url, "--api", "v1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert (
        "; 0 written, " in proc.stdout
        and " NOT written (InfluxDB unreachable or refusing them" in proc.stdout
    )
    assert "not accepting writes (unreachable)" in proc.stderr and "Traceback" not in proc.stderr


def test_every_dashboard_panel_query_returns_data_from_the_seeded_month(seeded):
    """Every query of every Grafana panel, with Grafana's macros expanded, finds series in the month
    seed-demo wrote through the project's own writer (the dashboard test checks the columns on a
    hand-made stretch; this checks the panels are filled by what the product writes)."""
    import importlib.util
    from pathlib import Path

    # the dashboard test's own helpers: its dashboard(), Grafana's macro expansion and time ranges
    path = Path(__file__).resolve().parents[1] / "deploy" / "test_dashboards.py"
    spec = importlib.util.spec_from_file_location("dashboard_queries", path)
    dash = importlib.util.module_from_spec(spec)
    sys.modules["dashboard_queries"] = dash
    spec.loader.exec_module(dash)

    server, code, _, _ = seeded
    assert code == 0
    now = int(time.time())
    empty = []
    for p in dash.dashboard()["panels"]:
        for t in p.get("targets", []):
            start, end = dash.time_range(p, now)
            if not dash.run(server, dash.expand(t["query"], start, end, person="alice")):
                empty.append(f"{p['title']}/{t['refId']}")
    for a in dash.dashboard()["annotations"]["list"]:
        if "query" in a:
            start, end = dash.time_range(None, now)
            if not dash.run(server, dash.expand(a["query"], start, end, person="alice")):
                empty.append(f"annotation {a.get('name')}")
    assert empty == []


def test_morning_readings_are_seeded_with_gaps_failures_and_their_trend(seeded):
    import re

    server, _, out, _ = seeded
    mornings = rows(
        server,
        'SELECT "ln_rmssd" AS ln, "ln_rmssd_7d" AS mean7, "normal_low" AS low, "cv_7d" AS cv '
        'FROM "morning" WHERE "person" = \'alice\'',
    )
    taken, failed = map(int, re.search(r"(\d+) morning readings \((\d+) failed\)", out).groups())
    assert len(mornings) == taken - failed and 17 <= len(mornings) <= 26  # two missed a week
    assert all(m["ln"] is not None for m in mornings) and failed >= 1
    days = {round(m["time"] / DAY_MS) for m in mornings}
    assert len(days) == len(mornings)  # one a day at most
    assert sum(m["low"] is not None for m in mornings) >= 8 and any(m["cv"] for m in mornings)
    daily = rows(
        server,
        'SELECT "morning_ln_rmssd" AS ln, "hrv_source" AS source FROM "daily" WHERE "person" = \'alice\'',
    )
    assert {d["source"] for d in daily} == {"morning"}
    assert sum(d["ln"] is not None for d in daily) >= len(mornings) - 1  # today's has no daily point yet
