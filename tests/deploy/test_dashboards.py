"""The Grafana dashboard (deploy/grafana/dashboards/stresswatch.json): every query of every panel,
annotation and variable runs against a real InfluxDB 1.6.7 holding a simulated stretch, with
Grafana's macros expanded as Grafana expands them, and returns the columns its panel draws."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import re
import time
from pathlib import Path

import pytest
import servers

from processing.reading import Activity, Reading, StressState
from sinks.influx import SINK, InfluxSink
from sinks.line_protocol import baseline_line, device_line, line, morning_line, prompt_line, reading_line
from sinks.store import StateStore

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "stresswatch.json"
DAY_S, MIN_S = 86400, 60
PERSON, OTHER = "ann", "annabel"  # /^ann$/ must not match annabel
GAP = (10 * 3600, 7 * 3600)  # ann's strap is off from 10 h to 7 h before now


def load_generator():
    spec = importlib.util.spec_from_file_location("dashboards", GRAFANA / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def provisioned_uid() -> str:
    """The datasource uid of the provisioning file (tests/deploy/test_compose.py parses it fully)."""
    text = (GRAFANA / "provisioning" / "datasources" / "influxdb.yml").read_text()
    (uid,) = re.findall(r"^\s+uid:\s*(\S+)\s*$", text, re.MULTILINE)
    return uid


# -- the JSON --------------------------------------------------------------------------------------


def test_the_checked_in_dashboard_is_what_the_generator_writes():
    assert DASHBOARD.read_text() == load_generator().render()


def test_the_dashboard_is_valid_grafana_json_on_the_provisioned_datasource():
    d = dashboard()
    assert isinstance(d["schemaVersion"], int) and d["uid"] and d["title"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    uid = provisioned_uid()
    refs = [p["datasource"] for p in d["panels"] if p["type"] != "row"]
    refs += [t["datasource"] for p in d["panels"] for t in p.get("targets", [])]
    refs += [v["datasource"] for v in d["templating"]["list"]]
    refs += [a["datasource"] for a in d["annotations"]["list"] if not a.get("builtIn")]
    assert refs and all(r == {"type": "influxdb", "uid": uid} for r in refs)
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        refids = [t["refId"] for t in p.get("targets", [])]
        assert len(refids) == len(set(refids)), p["title"]
    titles = {p["title"] for p in d["panels"]}
    assert {
        "Stress score",
        "State and activity",
        "Heart rate and RMSSD",
        "Breathing prompts",
        "Daily stress load",
        "Nightly lnRMSSD and its normal range",
        "Morning readings: lnRMSSD and its normal range",
        "Battery",
        "Connected",
        "Data coverage",
    } <= titles


def test_overrides_name_columns_the_queries_return():
    for p in dashboard()["panels"]:
        cols = {c for t in p.get("targets", []) for c in aliases(t["query"])}
        for o in p.get("fieldConfig", {}).get("overrides", []):
            assert o["matcher"]["options"] in cols, (p["title"], o["matcher"]["options"])
            for prop in o["properties"]:
                if prop["id"] == "custom.fillBelowTo":
                    assert prop["value"] in cols


# -- the queries against a real InfluxDB -----------------------------------------------------------


def reading(person: str, t: float) -> Reading:
    """A plausible reading: HR and RMSSD follow the time of day, stress follows HR."""
    phase = math.sin(2 * math.pi * (t % DAY_S) / DAY_S)
    hr = 68 + 12 * phase
    rmssd = 42 - 15 * phase
    score = max(0.0, min(100.0, 50 + 45 * phase))
    state = StressState.STRESSED if score > 70 else StressState.CALM if score < 30 else StressState.NEUTRAL
    ln = math.log(rmssd)
    return Reading(
        person,
        t,
        300.0,
        70,
        60000 / hr,
        hr,
        rmssd,
        ln,
        rmssd * 1.3,
        20.0,
        45.0,
        rmssd / math.sqrt(2),
        rmssd * 1.6,
        90.0,
        math.sqrt(90.0),
        -0.3,
        0.4,
        1.8,
        0.5,
        Activity.REST,
        score,
        state,
        0.95,
    )


@pytest.fixture(scope="module")
def now() -> int:
    return int(time.time()) // 3600 * 3600  # whole hours: the gap fills whole $__interval buckets


@pytest.fixture(scope="module")
def stretch(tmp_path_factory, now):
    """A real InfluxDB 1.6.7 (one for this module: the queries only read) holding four days of
    minute readings for ann (with a 3-hour gap), six hours for annabel, the straps' battery and
    connection, the resting baseline every 5 min, three prompts and 30 daily summaries, written
    by InfluxSink."""
    workdir = tmp_path_factory.mktemp("influxdb")
    influxdb = servers.influxdb(workdir).start()
    servers.influx_query(influxdb, "CREATE DATABASE stresswatch")
    lines = []
    for t in range(now - 4 * DAY_S, now + 1, MIN_S):
        off = now - GAP[0] <= t < now - GAP[1]
        if not off:
            lines.append(reading_line(reading(PERSON, t)))
        if t % 300 == 0:
            lines.append(baseline_line(PERSON, t, math.log(40.0), 0.2, 66.0, 4.0, 600))
            battery = 100 - 40 * (t - (now - 4 * DAY_S)) / (4 * DAY_S)
            lines.append(device_line(PERSON, "A0:9E:1A:12:34:56", t, None if off else battery, not off))
    for t in range(now - 6 * 3600, now + 1, MIN_S):
        lines.append(reading_line(reading(OTHER, t)))
        if t % 300 == 0:
            lines.append(device_line(OTHER, "Polar H10 B", t, 55.0, True))
    for k, (ago_h, response, effect) in enumerate(
        [(20, "done", {"d_ln_rmssd": 0.18}), (5, "snooze", None), (2, None, None)]
    ):
        prompt = {
            "id": f"p{k}",
            "person": PERSON,
            "time": now - ago_h * 3600,
            "kind": "acute",
            "exercise": {"name": "resonance 6/min"},
            "stress_score": 81.0,
        }
        lines.append(prompt_line(prompt, response=response, effects=effect))
    midnight = now // DAY_S * DAY_S
    for d in range(30):
        t = midnight - d * DAY_S
        night = 3.6 + 0.15 * math.sin(d / 3)
        lines.append(
            line(
                "daily",
                {"person": PERSON},
                {
                    "stress_load": 0.2 + 0.1 * math.cos(d / 4),
                    "night_ln_rmssd": night,
                    "ln_rmssd_7d": 3.6 + 0.05 * math.sin(d / 7),
                    "normal_low": 3.45,
                    "normal_high": 3.75,
                    "valid": True,
                },
                t,
            )
        )
    for d in range(40):  # morning readings at 07:00, two missed a week (days 2 and 5 of each)
        if d % 7 in (2, 5):
            continue
        t = midnight - d * DAY_S + 7 * 3600
        if t > now:
            continue
        lines.append(
            morning_line(
                PERSON,
                {
                    "ln_rmssd": 4.0 + 0.1 * math.sin(d),
                    "rmssd_ms": 55.0,
                    "hr_bpm": 58.0,
                    "n_beats": 58,
                    "artifact_pct": 0.0,
                    "measure_s": 60.0,
                    "ln_rmssd_7d": 4.0 + 0.03 * math.sin(d / 5),
                    "cv_7d": 2.5 + 0.5 * math.cos(d / 6),
                    "normal_low": 3.95,
                    "normal_high": 4.05,
                    "posture": "seated",
                    "trigger": "auto",
                },
                t,
            )
        )
    store = StateStore(workdir / "state.db")
    sink = InfluxSink(store, influxdb.url, bucket="stresswatch", api="v1")
    sink.add(lines)
    while store.pending(SINK):
        assert sink.flush(force=True) > 0, "InfluxDB did not accept the stretch"
    store.close()
    yield {"server": influxdb}
    influxdb.stop()


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
INTERVALS = ["10s", "20s", "30s", "1m", "2m", "5m", "10m", "15m", "30m", "1h", "3h", "6h", "12h", "1d"]


def seconds(span: str) -> int:
    return int(span[:-1]) * UNITS[span[-1]]


def time_range(panel: dict | None, now: int) -> tuple[int, int]:
    """Grafana's range for a panel: its relative-time override, else the dashboard's `time.from`."""
    span = (panel or {}).get("timeFrom") or dashboard()["time"]["from"].removeprefix("now-")
    return now - seconds(span), now


def interval(start: int, end: int, max_points: int = 1000) -> str:
    """$__interval as Grafana picks it: about range / data points, never below the min interval."""
    return next(i for i in INTERVALS if seconds(i) >= (end - start) / max_points)


def expand(query: str, start: int, end: int, person: str = PERSON, relative: bool = False) -> str:
    """Grafana's InfluxQL macros: $timeFilter as absolute ms bounds (or, as older Grafana wrote
    it for a range ending now, `time > now() - 24h`), $__interval, $person (in a regex it is
    regex-escaped)."""
    bounds = (
        f"time > now() - {end - start}s"
        if relative
        else f"time >= {start * 1000}ms and time <= {end * 1000}ms"
    )
    q = query.replace("$timeFilter", bounds)
    q = q.replace("$__interval", interval(start, end))
    q = q.replace("/^$person$/", f"/^{re.escape(person)}$/").replace("$person", person)
    assert not re.search(r"\$\w", q), q
    return q


def aliases(query: str) -> list[str]:
    return re.findall(r'AS "([^"]+)"', query)


def run(server, query: str) -> list[dict]:
    body = servers.influx_query(server, query, db="stresswatch")
    (result,) = body["results"]
    assert "error" not in result, (query, result)
    return result.get("series", [])


def panel_queries():
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            yield pytest.param(p, t, id=f"{p['title']}/{t['refId']}")


@pytest.mark.slow
@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize(("panel", "target"), list(panel_queries()))
def test_every_panel_query_returns_the_columns_its_panel_draws(stretch, now, panel, target, relative):
    start, end = time_range(panel, now)
    series = run(stretch["server"], expand(target["query"], start, end, relative=relative))
    assert series, f"{panel['title']}: no data"
    want = aliases(target["query"])
    assert want, "every selected column is named with AS"
    for s in series:
        assert s["columns"] == ["time", *want]
        for k, col in enumerate(want, start=1):
            assert any(row[k] is not None for row in s["values"]), f"{panel['title']}: {col} is empty"
        if "$tag_device" in target.get("alias", ""):
            assert set(s["tags"]) == {"device"}
    if "$tag_device" in target.get("alias", ""):
        assert [s["tags"]["device"] for s in series] == ["A0:9E:1A:12:34:56"]  # ann's strap only
    times = [row[0] for s in series for row in s["values"]]
    assert start * 1000 <= min(times) and max(times) <= time.time() * 1000


def values(series: list[dict], col: str) -> list:
    (s,) = series
    k = s["columns"].index(col)
    return [row[k] for row in s["values"]]


def query_of(title: str, ref: str = "A") -> tuple[dict, str]:
    p = next(p for p in dashboard()["panels"] if p["title"] == title)
    return p, next(t["query"] for t in p["targets"] if t["refId"] == ref)


@pytest.mark.slow
def test_the_coverage_panel_counts_only_this_persons_readings_and_shows_the_gap(stretch, now):
    panel, q = query_of("Data coverage")
    start, end = time_range(panel, now)
    counts = values(run(stretch["server"], expand(q, start, end)), "readings")
    per_bucket = seconds(interval(start, end)) // MIN_S
    gap_buckets = (GAP[0] - GAP[1]) // seconds(interval(start, end))
    assert sum(counts) == 24 * 60 + 1 - (GAP[0] - GAP[1]) // MIN_S  # annabel's readings not counted
    assert counts.count(0) == gap_buckets
    assert max(counts) == per_bucket


@pytest.mark.slow
def test_the_state_timeline_shows_the_states_and_activities_of_the_reading_contract(stretch, now):
    panel, q = query_of("State and activity", "A")
    start, end = time_range(panel, now)
    states = {v for v in values(run(stretch["server"], expand(q, start, end)), "state") if v is not None}
    assert states == {"calm", "neutral", "stressed"}
    mapped = {k for m in panel["fieldConfig"]["defaults"]["mappings"] for k in m["options"]}
    assert {s.value for s in StressState} | {a.value for a in Activity} <= mapped
    _, qb = query_of("State and activity", "B")
    assert {v for v in values(run(stretch["server"], expand(qb, start, end)), "activity") if v} == {"rest"}


@pytest.mark.slow
def test_the_connection_panel_shows_the_strap_off_during_the_gap(stretch, now):
    panel, q = query_of("Connected")
    start, end = time_range(panel, now)
    connected = values(run(stretch["server"], expand(q, start, end)), "connected")
    assert False in connected and True in connected


@pytest.mark.slow
def test_the_weeks_panels_reach_back_eight_weeks_of_daily_summaries(stretch, now):
    panel, q = query_of("Nightly lnRMSSD and its normal range")
    start, end = time_range(panel, now)
    assert end - start == 56 * DAY_S
    series = run(stretch["server"], expand(q, start, end))
    assert len(values(series, "night_ln_rmssd")) == 30
    assert all(
        lo < hi for lo, hi in zip(values(series, "normal_low"), values(series, "normal_high"), strict=True)
    )


@pytest.mark.slow
def test_the_morning_panel_draws_a_dot_per_valid_morning_the_7_day_line_and_the_band(stretch, now):
    panel, q = query_of("Morning readings: lnRMSSD and its normal range")
    start, end = time_range(panel, now)
    assert end - start == 56 * DAY_S
    series = run(stretch["server"], expand(q, start, end))
    times = values(series, "time")
    dots = values(series, "ln_rmssd")
    written = [
        d for d in range(40) if d % 7 not in (2, 5) and now // DAY_S * DAY_S - d * DAY_S + 7 * 3600 <= now
    ]
    assert len(dots) == len(written) and all(
        v is not None for v in dots
    )  # missed mornings: no point, no zero
    assert all(b - a >= DAY_S for a, b in itertools.pairwise(times))
    assert all(
        lo < hi for lo, hi in zip(values(series, "normal_low"), values(series, "normal_high"), strict=True)
    )
    assert all(v is not None for v in values(series, "ln_rmssd_7d") + values(series, "cv_7d"))
    overrides = {
        o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
        for o in panel["fieldConfig"]["overrides"]
    }
    assert overrides["ln_rmssd"]["custom.drawStyle"] == "points"
    assert overrides["normal_high"]["custom.fillBelowTo"] == "normal_low"


@pytest.mark.slow
def test_the_person_variable_lists_the_wearers(stretch):
    (var,) = dashboard()["templating"]["list"]
    assert var["name"] == "person"
    (series,) = run(stretch["server"], var["query"])
    assert [v for _, v in series["values"]] == [PERSON, OTHER]


@pytest.mark.slow
def test_prompts_are_annotations_with_exercise_kind_response_and_effect(stretch, now):
    (ann,) = [a["target"] for a in dashboard()["annotations"]["list"] if not a.get("builtIn")]
    start, end = time_range(None, now)
    (series,) = run(stretch["server"], expand(ann["query"], start, end))
    cols = series["columns"]
    for key in ("titleColumn", "textColumn"):
        assert ann[key] in cols
    assert set(ann["tagsColumn"].split(",")) <= set(cols)
    rows = [dict(zip(cols, r, strict=True)) for r in series["values"]]
    assert [r["response"] for r in rows] == ["done", "snooze", None]
    assert rows[0]["d_ln_rmssd"] == 0.18 and rows[0]["exercise"] == "resonance 6/min"
