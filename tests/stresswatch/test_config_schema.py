"""The configuration schema: every key declared once, converted by one converter ([alerts] too),
and every problem of every kind in one report."""

from __future__ import annotations

from dataclasses import fields

import pytest

from alerts.settings import AlertSettings
from stresswatch import config


def problems_of(tmp_path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "stresswatch.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ=environ or {})
    return err.value.problems


def test_every_key_has_one_declaration_with_its_default_and_kind():
    for f in fields(config.Config):
        cls = f.metadata["section"]
        if cls is dict:
            continue
        for key in fields(cls):
            rule = key.metadata["rule"]
            assert key.default is None or isinstance(key.default, rule.kind), (f.name, key.name)
            assert key.default is None or not rule.choices or key.default in rule.choices, (f.name, key.name)
    alerts = config.alert_rules()
    assert set(alerts) == {f.name for f in fields(AlertSettings)} - {"timezone"}


@pytest.mark.parametrize("variable", config.env_variables())
def test_a_wrong_value_for_any_key_is_named_by_its_key_and_variable(variable):
    """Every settable key, [alerts] included, goes through the one converter: a value that is no
    number, no true/false, no time and no exercise is either taken as text or refused naming the
    variable and the key (never an unknown key, never a traceback)."""
    section, key = variable.removeprefix(config.ENV_PREFIX).lower().split("__")
    try:
        cfg = config.load(None, environ={variable: "x%y"})
    except config.ConfigError as exc:  # (a rule across keys names the other key: certfile needs keyfile)
        assert any(p.startswith(f"{variable}: {section}.{key}: ") for p in exc.problems), exc.problems
        assert not any("unknown key" in p for p in exc.problems), exc.problems
    else:
        value = cfg.alerts[key] if section == "alerts" else getattr(getattr(cfg, section), key)
        assert value == "x%y", variable


def test_an_alerts_value_is_checked_by_the_rule_of_every_other_key(tmp_path):
    assert problems_of(tmp_path, "[alerts]\ncooldown_min = -3\n") == [
        "alerts.cooldown_min: must be >= 0, got -3"
    ]
    assert problems_of(tmp_path, "[processing]\nstep_s = -3\n") == ["processing.step_s: must be >= 0, got -3"]
    assert problems_of(tmp_path, '[alerts]\nload_days = ["a", 5]\n') == [
        "alerts.load_days: must be a number, got 'a'"
    ]


def test_the_alerts_table_is_converted_once_at_load():
    cfg = config.load(
        None,
        environ={"STRESSWATCH_ALERTS__DAILY_CAP": "2", "STRESSWATCH_ALERTS__QUIET_HOURS": "21:00, 08:00"},
    )
    assert cfg.alerts == {"daily_cap": 2, "quiet_hours": ("21:00", "08:00")}
    settings = cfg.alert_settings()
    assert (settings.daily_cap, settings.quiet_hours) == (2, ("21:00", "08:00"))


def test_problems_of_every_kind_come_in_one_report(tmp_path):
    """A wrong value, an unknown key, a rule across keys of a section, a rule across sections and
    the alert engine's own rule: all at once, each naming its key."""
    problems = problems_of(
        tmp_path,
        '[processing]\nwindow_s = "long"\nrmssd_window_s = 400\n[mqtt]\nbase_topic = "a/#"\ncolour = 1\n'
        '[[devices]]\naddress = "A0:9E:1A:12:34:56"\n[[devices]]\naddress = "A0:9E:1A:12:34:57"\n'
        '[alerts]\nsession_time = "23:00"\ncooldown_min = "soon"\n',
        environ={"STRESSWATCH_KAFKA__PARTITIONS": "0"},
    )
    keys = sorted(p.split(": ")[0 if not p.startswith(config.ENV_PREFIX) else 1] for p in problems)
    assert keys == [
        "alerts.cooldown_min",
        "alerts.session_time",
        "devices[1].person",
        "kafka.partitions",
        "mqtt.base_topic",
        "mqtt.colour",
        "processing.rmssd_window_s",
        "processing.window_s",
    ], problems
