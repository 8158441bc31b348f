"""InfluxDB line protocol for the stresswatch schema: pure functions from events to `Line`s.

Contract (README "InfluxDB", which the Grafana dashboard reads): one line per point,
`measurement,tag=value... field=value,... timestamp`, the timestamp in integer milliseconds
(round(t * 1000) of unix seconds). Tags and field keys escape backslash, comma, equals sign and
space with a backslash; string fields are double-quoted, with backslash and quote escaped.
Numbers are written as floats (never with the `i` suffix, so a whole value cannot start a
field-type conflict) except the integer fields named below; a null or non-finite field is left
out, and a point without any field is not written (None). Empty tags are left out.

- `beats` (tags person, device): rr_ms, hr_bpm (floats); artifact (string: the `ArtifactKind`
  value of the correction applied, e.g. "ectopic", or "none");
- `hrv` (tag person): every numeric `Reading` field (floats; n_beats integer); activity, state,
  motion and hrv_unavailable (strings);
- `prompts` (tag person): id, kind, exercise, response (strings), stress_score (float), and the
  numbers of the measured effect once known (alerts/effect.py: d_ln_rmssd, d_hr_bpm,
  d_stress_score, threshold: the lnRMSSD change that counts as an effect, peak_hz);
  written again with the same series and time when the answer or the effect comes;
- `devices` (tags person, device): battery_pct (float), connected (boolean);
- `baseline` (tag person): hr_bpm, hr_low, hr_high, rmssd_ms, rmssd_low, rmssd_high (the resting
  reference +- 1 robust SD; RMSSD from the lnRMSSD band, so asymmetric in ms), samples (floats);
- `daily` (tag person, at local midnight): valid (boolean); worn_min, rest_min,
  stressed_rest_min, sleep_min, stress_load, load_integral, night_ln_rmssd, ln_rmssd_7d,
  hrv_cv_7d, normal_low, normal_high, load_normal_low, load_normal_high, morning_ln_rmssd,
  morning_hr_bpm, morning_failed, prompts, answered, done (floats); night_source, hrv_source
  (strings);
- `morning` (tag person, at the end of the measured window of a valid morning reading): ln_rmssd,
  rmssd_ms, hr_bpm, artifact_pct, measure_s, ln_rmssd_7d, cv_7d, normal_low, normal_high
  (floats); n_beats (integer); posture, trigger (strings).

Each `Line` carries its idempotency key (series key + timestamp: a re-sent point overwrites
itself in InfluxDB) and its measurement (what a full outbox drops first, sinks/influx.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collector.events import ArtifactKind, Beat
from processing.reading import Reading

_STRING_FIELDS = ("activity", "state", "motion", "hrv_unavailable")
_INT_FIELDS = ("n_beats",)
_SKIP_FIELDS = ("person", "time")


@dataclass(frozen=True)
class Line:
    """One line of line protocol, its idempotency key (series key + timestamp) and its measurement."""

    key: str
    text: str
    measurement: str = ""


def _escape_tag(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return _escape_str(str(value))


def line(measurement: str, tags: dict[str, str], fields: dict, t: float) -> Line | None:
    """A line-protocol line with millisecond timestamp; None when no field has a value.

    Floats are always written as floats (never `i`), so a value that happens to be whole
    cannot start a type conflict in InfluxDB."""
    tag_part = "".join(f",{_escape_tag(k)}={_escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    parts = []
    for k, v in fields.items():
        enc = _field(v)
        if enc is not None:
            parts.append(f"{_escape_tag(k)}={enc}")
    if not parts:
        return None
    ts = round(t * 1000)
    series = _escape_tag(measurement) + tag_part
    return Line(f"{series} {ts}", f"{series} {','.join(parts)} {ts}", measurement)


def beat_line(beat: Beat) -> Line | None:
    """A `beats` point; `artifact` is the correction's kind as a plain string ("ectopic", ...)
    or "none", so InfluxQL can filter on it (`WHERE artifact != 'none'`)."""
    artifact = "none" if beat.artifact is None else ArtifactKind(beat.artifact).value
    return line(
        "beats",
        {"person": beat.person, "device": beat.device},
        {
            "rr_ms": float(beat.rr_ms),
            "hr_bpm": None if beat.hr_bpm is None else float(beat.hr_bpm),
            "artifact": artifact,
        },
        beat.t,
    )


def reading_line(r: Reading) -> Line | None:
    """An `hrv` point with every field of the reading (types as in the module docstring)."""
    fields = {}
    for k, v in r.to_dict(digits=9).items():
        if k in _SKIP_FIELDS:
            continue
        if k in _STRING_FIELDS:
            fields[k] = v
        elif k in _INT_FIELDS:
            fields[k] = int(v)
        elif v is not None:
            fields[k] = float(v)
    return line("hrv", {"person": r.person}, fields, r.time)


def prompt_line(prompt: dict, response: str | None = None, effects: dict | None = None) -> Line | None:
    """A `prompts` point from a `Prompt.to_dict()`, with the person's response and measured effects."""
    fields = {
        "id": prompt["id"],
        "kind": prompt["kind"],
        "exercise": prompt["exercise"]["name"],
        "stress_score": None if prompt.get("stress_score") is None else float(prompt["stress_score"]),
        "response": response,
    }
    # the effect's numbers (d_ln_rmssd, d_hr_bpm, ...); its id, verdict and flags are not fields
    fields.update(
        {
            k: float(v)
            for k, v in (effects or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    )
    return line("prompts", {"person": prompt["person"]}, fields, prompt["time"])


def daily_line(person: str, summary: dict, t: float) -> Line | None:
    """A `daily` point (at local midnight `t` of the day) from `DailySummary.to_dict()`: the day's
    figures and the chronic bands as of that day, named as the Grafana dashboard reads them."""
    band = summary.get("hrv_band") or (None, None)
    load_band = summary.get("load_band") or (None, None)
    number = lambda v: None if v is None else float(v)  # noqa: E731
    fields = {
        "valid": bool(summary.get("valid")),
        "worn_min": number(summary.get("worn_min")),
        "rest_min": number(summary.get("rest_min")),
        "stressed_rest_min": number(summary.get("stressed_rest_min")),
        "sleep_min": number(summary.get("sleep_min")),
        "stress_load": number(summary.get("stress_load")),
        "load_integral": number(summary.get("load_integral")),
        "night_ln_rmssd": number(summary.get("night_ln_rmssd")),
        "night_source": summary.get("night_source"),
        "ln_rmssd_7d": number(summary.get("hrv_week_mean")),
        "normal_low": number(band[0]),
        "normal_high": number(band[1]),
        "load_normal_low": number(load_band[0]),
        "load_normal_high": number(load_band[1]),
        "morning_ln_rmssd": number(summary.get("morning_ln_rmssd")),
        "morning_hr_bpm": number(summary.get("morning_hr_bpm")),
        "morning_failed": number(summary.get("morning_failed")),
        "hrv_source": summary.get("hrv_source"),
        "hrv_cv_7d": number(summary.get("hrv_cv_7d")),
        "prompts": number(summary.get("prompts")),
        "answered": number(summary.get("answered")),
        "done": number(summary.get("done")),
    }
    return line("daily", {"person": person}, fields, t)


def morning_line(person: str, data: dict, t: float) -> Line | None:
    """A `morning` point from the data of a valid morning reading (alerts/engine.py `morning`):
    the reading and its trend as judged with it, at the end of its measured window `t`."""
    fields = {
        k: None if data.get(k) is None else float(data[k])
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
        )
    }
    fields["n_beats"] = None if data.get("n_beats") is None else int(data["n_beats"])
    fields["posture"] = data.get("posture")
    fields["trigger"] = data.get("trigger")
    return line("morning", {"person": person}, fields, t)


def baseline_line(
    person: str,
    t: float,
    ln_rmssd_mean: float,
    ln_rmssd_sd: float,
    hr_mean: float,
    hr_sd: float,
    samples: int,
) -> Line | None:
    """A `baseline` point: the person's resting reference at `t` (processing/baseline.py) as the
    dashboard draws it: HR and RMSSD in their units with a band of +- 1 robust SD (RMSSD from
    the lnRMSSD band, so the band is asymmetric in ms)."""
    fields = {
        "hr_bpm": float(hr_mean),
        "hr_low": float(hr_mean - hr_sd),
        "hr_high": float(hr_mean + hr_sd),
        "rmssd_ms": math.exp(ln_rmssd_mean),
        "rmssd_low": math.exp(ln_rmssd_mean - ln_rmssd_sd),
        "rmssd_high": math.exp(ln_rmssd_mean + ln_rmssd_sd),
        "samples": float(samples),
    }
    return line("baseline", {"person": person}, fields, t)


def device_line(
    person: str, device: str, t: float, battery_pct: float | None, connected: bool
) -> Line | None:
    """A `devices` point: battery level and connection state of one strap."""
    return line(
        "devices",
        {"person": person, "device": device},
        {"battery_pct": None if battery_pct is None else float(battery_pct), "connected": bool(connected)},
        t,
    )
