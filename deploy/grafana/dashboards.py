"""Writes the Grafana dashboard of the compose stack: `python deploy/grafana/dashboards.py`.

One dashboard per wearer (a `person` variable from the `hrv` tag values): today's stress score,
state and activity, HR and RMSSD, breathing prompts (as annotations and a table with the answer
and the measured effect), daily stress load, nightly lnRMSSD and the morning readings against
their normal range over eight weeks (the morning ones as HRV4Training's trend view: a dot per
reading, the 7-day mean, the band shaded), strap battery, connection and data coverage. Queries are InfluxQL only, so the
dashboard works on InfluxDB 1.8, on 2.x through its v1 API (a DBRP mapping) and on 3.x.
Every selected column carries an `AS` alias: tests/deploy/test_dashboards.py runs each query
against a real InfluxDB and checks the columns by those aliases.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "dashboards" / "stresswatch.json"
DATASOURCE = {"type": "influxdb", "uid": "stresswatch-influxdb"}  # provisioning/datasources/influxdb.yml
WHO = """("person" =~ /^$person$/) AND $timeFilter"""
WEEKS = "56d"  # the daily panels show eight weeks, whatever the dashboard's range

# Field names of the `daily` measurement (README "InfluxDB").
DAILY_LOAD = "stress_load"  # share of resting minutes spent stressed, 0-1
DAILY_NIGHT = ("night_ln_rmssd", "ln_rmssd_7d", "normal_low", "normal_high")
# Fields of the `morning` measurement: one point per valid morning reading, with its trend as judged.
MORNING = ("ln_rmssd", "ln_rmssd_7d", "normal_low", "normal_high", "cv_7d")
PROMPT_EFFECT = "d_ln_rmssd"  # the measured effect the alert engine writes (alerts/effect.py)

STATE_COLOURS = {"calm": "green", "neutral": "blue", "stressed": "red", "unknown": "text"}
ACTIVITY_COLOURS = {"rest": "green", "active": "orange", "recovery": "yellow", "unknown": "text"}


def target(ref: str, query: str, *, fmt: str = "time_series", alias: str = "") -> dict:
    t = {"refId": ref, "datasource": DATASOURCE, "rawQuery": True, "query": query, "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


def mean_of(measurement: str, *fields: str, fill: str = "null", by: str = "") -> str:
    cols = ", ".join(f'mean("{f}") AS "{f}"' for f in fields)
    group = f"time($__interval){', ' + by if by else ''}"
    return f'SELECT {cols} FROM "{measurement}" WHERE {WHO} GROUP BY {group} fill({fill})'


def raw(measurement: str, *fields: str) -> str:
    cols = ", ".join(f'"{f}" AS "{f}"' for f in fields)
    return f'SELECT {cols} FROM "{measurement}" WHERE {WHO}'


def mappings(colours: dict[str, str]) -> list[dict]:
    return [
        {
            "type": "value",
            "options": {k: {"color": c, "index": i, "text": k} for i, (k, c) in enumerate(colours.items())},
        }
    ]


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict],
    grid: tuple[int, int, int, int],
    defaults: dict | None = None,
    options: dict | None = None,
    overrides: list | None = None,
    **extra,
) -> dict:
    x, y, w, h = grid
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults or {}, "overrides": overrides or []},
        "options": options or {},
    }
    p.update(extra)
    return p


def row(title: str, y: int) -> dict:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def by_name(name: str, *props: tuple[str, object]) -> dict:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": k, "value": v} for k, v in props],
    }


def normal_band() -> list[dict]:
    """The 7-day mean line and the shaded personal normal range (normal_low to normal_high) that
    the night and the morning lnRMSSD panels share."""
    return [
        by_name(
            "ln_rmssd_7d", ("displayName", "7-day mean"), ("color", {"mode": "fixed", "fixedColor": "blue"})
        ),
        by_name(
            "normal_high",
            ("displayName", "normal range"),
            ("custom.lineWidth", 0),
            ("custom.fillBelowTo", "normal_low"),
            ("custom.fillOpacity", 20),
            ("color", {"mode": "fixed", "fixedColor": "green"}),
        ),
        by_name(
            "normal_low",
            ("displayName", "normal range low"),
            ("custom.lineWidth", 0),
            ("custom.hideFrom", {"legend": True, "tooltip": False, "viz": False}),
            ("color", {"mode": "fixed", "fixedColor": "green"}),
        ),
    ]


def dashboard() -> dict:
    lines = {"custom": {"drawStyle": "line", "lineWidth": 1, "spanNulls": False, "showPoints": "never"}}
    bars = {"custom": {"drawStyle": "bars", "fillOpacity": 80, "lineWidth": 1}}
    panels = [
        row("Today", 0),
        panel(
            "timeseries",
            "Stress score",
            "0-100, relative to this person's resting baseline; empty while physically active "
            "or when the signal is poor.",
            [target("A", mean_of("hrv", "stress_score"), alias="stress score")],
            (0, 1, 24, 8),
            {
                **lines,
                "min": 0,
                "max": 100,
                "unit": "none",
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        {"color": "green", "value": None},
                        {"color": "orange", "value": 60},
                        {"color": "red", "value": 80},
                    ],
                },
                "color": {"mode": "thresholds"},
            },
            {"legend": {"showLegend": False}, "tooltip": {"mode": "single"}},
        ),
        panel(
            "state-timeline",
            "State and activity",
            "Stress state (calm / neutral / stressed / unknown) and what the body was doing "
            "(rest / active / recovery).",
            [
                target(
                    "A",
                    f'SELECT last("state") AS "state" FROM "hrv" WHERE {WHO} '
                    "GROUP BY time($__interval) fill(null)",
                    alias="state",
                ),
                target(
                    "B",
                    f'SELECT last("activity") AS "activity" FROM "hrv" WHERE {WHO} '
                    "GROUP BY time($__interval) fill(null)",
                    alias="activity",
                ),
            ],
            (0, 9, 24, 5),
            {
                "mappings": mappings(STATE_COLOURS) + mappings(ACTIVITY_COLOURS),
                "color": {"mode": "thresholds"},
            },
            {"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
        ),
        panel(
            "timeseries",
            "Heart rate and RMSSD",
            "Heart rate (bpm, left) and RMSSD (ms, right; 60 s window), mean per interval, each with the "
            "personal resting baseline +- 1 SD shaded (InfluxDB `baseline`).",
            [
                target("A", mean_of("hrv", "hr_bpm", "rmssd_ms"), alias="$col"),
                target(
                    "B",
                    mean_of("baseline", "hr_low", "hr_high", "rmssd_low", "rmssd_high", fill="previous"),
                    alias="$col",
                ),
            ],
            (0, 14, 24, 8),
            lines,
            {"legend": {"showLegend": True, "displayMode": "list"}, "tooltip": {"mode": "multi"}},
            [
                by_name(
                    "hr_bpm",
                    ("displayName", "heart rate"),
                    ("unit", "bpm"),
                    ("color", {"mode": "fixed", "fixedColor": "red"}),
                ),
                by_name(
                    "rmssd_ms",
                    ("displayName", "RMSSD"),
                    ("unit", "ms"),
                    ("custom.axisPlacement", "right"),
                    ("color", {"mode": "fixed", "fixedColor": "blue"}),
                ),
                # the personal resting baseline +- 1 SD (InfluxDB `baseline`) as a shaded band
                by_name(
                    "hr_high",
                    ("displayName", "HR baseline band"),
                    ("unit", "bpm"),
                    ("custom.fillBelowTo", "hr_low"),
                    ("custom.lineWidth", 0),
                    ("custom.fillOpacity", 15),
                    ("color", {"mode": "fixed", "fixedColor": "red"}),
                ),
                by_name(
                    "hr_low",
                    ("displayName", "HR baseline low"),
                    ("unit", "bpm"),
                    ("custom.lineWidth", 0),
                    ("custom.hideFrom", {"legend": True, "tooltip": False, "viz": False}),
                    ("color", {"mode": "fixed", "fixedColor": "red"}),
                ),
                by_name(
                    "rmssd_high",
                    ("displayName", "RMSSD baseline band"),
                    ("unit", "ms"),
                    ("custom.axisPlacement", "right"),
                    ("custom.fillBelowTo", "rmssd_low"),
                    ("custom.lineWidth", 0),
                    ("custom.fillOpacity", 15),
                    ("color", {"mode": "fixed", "fixedColor": "blue"}),
                ),
                by_name(
                    "rmssd_low",
                    ("displayName", "RMSSD baseline low"),
                    ("unit", "ms"),
                    ("custom.axisPlacement", "right"),
                    ("custom.lineWidth", 0),
                    ("custom.hideFrom", {"legend": True, "tooltip": False, "viz": False}),
                    ("color", {"mode": "fixed", "fixedColor": "blue"}),
                ),
            ],
        ),
        panel(
            "table",
            "Breathing prompts",
            "Each prompt: why (acute / chronic / scheduled), the exercise, the answer from the "
            "phone, the stress score that led to it and the change in resting lnRMSSD measured after it.",
            [
                target(
                    "A",
                    raw("prompts", "kind", "exercise", "response", "stress_score", PROMPT_EFFECT),
                    fmt="table",
                )
            ],
            (0, 22, 24, 7),
            {"custom": {"align": "auto"}},
            {"showHeader": True, "sortBy": [{"displayName": "Time", "desc": True}]},
            [
                by_name(PROMPT_EFFECT, ("displayName", "lnRMSSD change"), ("unit", "none"), ("decimals", 2)),
                by_name("stress_score", ("displayName", "stress score"), ("decimals", 0)),
            ],
        ),
        row("Weeks", 29),
        panel(
            "timeseries",
            "Daily stress load",
            "Share of the day's resting minutes spent in the stressed state, one bar per day "
            "(last eight weeks).",
            [target("A", raw("daily", DAILY_LOAD), alias="stress load")],
            (0, 30, 12, 8),
            {**bars, "unit": "percentunit", "min": 0, "max": 1},
            {"legend": {"showLegend": False}},
            timeFrom=WEEKS,
            hideTimeOverride=False,
        ),
        panel(
            "timeseries",
            "Nightly lnRMSSD and its normal range",
            "Night-time ln(RMSSD) per day, its 7-day mean, and the personal normal range "
            "(the band); a 7-day mean below the band is the chronic-stress signal.",
            [target("A", raw("daily", *DAILY_NIGHT), alias="$col")],
            (12, 30, 12, 8),
            {"custom": {"drawStyle": "line", "lineWidth": 2, "showPoints": "always", "spanNulls": True}},
            {"legend": {"showLegend": True, "displayMode": "list"}, "tooltip": {"mode": "multi"}},
            [
                by_name(
                    "night_ln_rmssd",
                    ("displayName", "night lnRMSSD"),
                    ("custom.drawStyle", "points"),
                    ("custom.pointSize", 6),
                ),
                *normal_band(),
            ],
            timeFrom=WEEKS,
            hideTimeOverride=False,
        ),
        panel(
            "timeseries",
            "Morning readings: lnRMSSD and its normal range",
            "One dot per valid morning reading (ln RMSSD of the measured minute), the 7-day mean of the "
            "valid mornings, the personal normal range of the last 60 days (mean +- 0.5 SD, shaded) and the "
            "7-day coefficient of variation (%, right). Missed mornings are gaps; a 7-day mean below the "
            "band, confirmed by the last 3 mornings, is the chronic-stress signal.",
            [target("A", raw("morning", *MORNING), alias="$col")],
            (0, 38, 24, 8),
            {"custom": {"drawStyle": "line", "lineWidth": 2, "showPoints": "never", "spanNulls": True}},
            {"legend": {"showLegend": True, "displayMode": "list"}, "tooltip": {"mode": "multi"}},
            [
                by_name(
                    "ln_rmssd",
                    ("displayName", "morning lnRMSSD"),
                    ("custom.drawStyle", "points"),
                    ("custom.pointSize", 7),
                    ("color", {"mode": "fixed", "fixedColor": "purple"}),
                ),
                *normal_band(),
                by_name(
                    "cv_7d",
                    ("displayName", "7-day CV"),
                    ("unit", "percent"),
                    ("custom.axisPlacement", "right"),
                    ("custom.lineWidth", 1),
                    ("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                    ("color", {"mode": "fixed", "fixedColor": "orange"}),
                ),
            ],
            timeFrom=WEEKS,
            hideTimeOverride=False,
        ),
        row("Strap", 46),
        panel(
            "timeseries",
            "Battery",
            "Battery level of each strap (%).",
            [
                target(
                    "A",
                    f'SELECT last("battery_pct") AS "battery_pct" FROM "devices" WHERE {WHO} '
                    'GROUP BY time($__interval), "device" fill(none)',
                    alias="$tag_device",
                )
            ],
            (0, 47, 8, 7),
            {**lines, "unit": "percent", "min": 0, "max": 100},
            {"legend": {"showLegend": True}},
        ),
        panel(
            "state-timeline",
            "Connected",
            "Whether each strap was connected.",
            [
                target(
                    "A",
                    f'SELECT last("connected") AS "connected" FROM "devices" WHERE {WHO} '
                    'GROUP BY time($__interval), "device" fill(null)',
                    alias="$tag_device",
                )
            ],
            (8, 47, 8, 7),
            {"mappings": mappings({"true": "green", "false": "red"}), "color": {"mode": "thresholds"}},
            {"showValue": "never", "mergeValues": True},
        ),
        panel(
            "timeseries",
            "Data coverage",
            "Readings stored per interval; 0 is a gap (strap off or out of range, no skin contact).",
            [
                target(
                    "A",
                    f'SELECT count("hr_bpm") AS "readings" FROM "hrv" WHERE {WHO} '
                    "GROUP BY time($__interval) fill(0)",
                    alias="readings",
                )
            ],
            (16, 47, 8, 7),
            {**bars, "min": 0, "unit": "none"},
            {"legend": {"showLegend": False}},
        ),
    ]
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": "stresswatch",
        "title": "stresswatch",
        "description": "HRV and stress of one wearer (choose the person above).",
        "tags": ["stresswatch", "hrv"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "person",
                    "label": "Person",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": 'SHOW TAG VALUES FROM "hrv" WITH KEY = "person"',
                    "definition": 'SHOW TAG VALUES FROM "hrv" WITH KEY = "person"',
                    "refresh": 1,
                    "sort": 1,
                    "multi": False,
                    "includeAll": False,
                    "current": {},
                    "options": [],
                }
            ]
        },
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                # The InfluxQL annotation as Grafana's editor saves it (the query inside `target`).
                {
                    "name": "Prompts",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "iconColor": "purple",
                    "target": {
                        "refId": "Anno",
                        "rawQuery": True,
                        "fromAnnotations": True,
                        "textEditor": True,
                        "query": raw("prompts", "exercise", "kind", "response", PROMPT_EFFECT),
                        "titleColumn": "exercise",
                        "textColumn": PROMPT_EFFECT,
                        "tagsColumn": "kind,response",
                    },
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
