"""The configuration model: every problem names its key; env overrides; `config check`."""

from __future__ import annotations

import pytest

from stresswatch import config
from stresswatch.cli import main


def write(tmp_path, text):
    p = tmp_path / "stresswatch.toml"
    p.write_text(text)
    return p


def test_defaults_and_the_example_are_valid(tmp_path):
    assert config.load(None, environ={}).processing.window_s == 300
    cfg = config.load(write(tmp_path, config.EXAMPLE), environ={})
    assert cfg.people[0].name == "me" and cfg.processing.artifact_correction is True


def test_every_problem_is_reported_with_its_key(tmp_path):
    path = write(
        tmp_path,
        '[processing]\nwindow_s = -5\nstep_s = "often"\ncolour = "red"\n'
        '[[people]]\nname = "a"\nage = 400\n[[people]]\nname = "a"\n',
    )
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    problems = err.value.problems
    assert "processing.window_s: must be >= 30, got -5" in problems
    assert "processing.step_s: must be a number, got 'often'" in problems
    assert any(p.startswith("processing.colour: unknown key") for p in problems)
    assert "people[0].age: must be <= 120, got 400" in problems
    assert "people: name 'a' is used more than once" in problems


def test_broken_toml_is_one_clear_line(tmp_path):
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[processing\nwindow_s = 1"), environ={})


def test_environment_overrides_file_values(tmp_path):
    path = write(tmp_path, "[processing]\nstep_s = 10\n")
    cfg = config.load(path, environ={"STRESSWATCH_PROCESSING__STEP_S": "5", "STRESSWATCH_X": "ignored"})
    assert cfg.processing.step_s == 5.0
    with pytest.raises(config.ConfigError, match="processing.artifact_correction: must be true or false"):
        config.load(path, environ={"STRESSWATCH_PROCESSING__ARTIFACT_CORRECTION": "maybe"})


def test_config_check_command(tmp_path, capsys):
    good = write(tmp_path, "[processing]\nstep_s = 5\n")
    assert main(["config", "check", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[processing]\nwindow_s = 'x'\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "processing.window_s: must be a number" in err and "Traceback" not in err
    assert main(["config", "check", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[processing\n")
    assert main(["config", "check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid TOML" in err and str(broken) in err


def problems_of(tmp_path, text, environ=None):
    with pytest.raises(config.ConfigError) as err:
        config.load(write(tmp_path, text), environ=environ or {})
    return err.value.problems


@pytest.mark.parametrize(
    "text, key",
    [
        ('[[people]]\nname = "a/b"\n', "people[0].name"),
        ('[[people]]\nname = "ann+"\n', "people[0].name"),
        ('[[people]]\nname = "#"\n', "people[0].name"),
        ('[[people]]\nname = "nul\\u0000"\n', "people[0].name"),
        ('[[devices]]\nname = "Polar/H10*"\nperson = "me"\n', "devices[0].name"),
        ('[[devices]]\naddress = "A0:9E:1A:12:34:56"\nperson = "bo/b"\n', "devices[0].person"),
        ('[mqtt]\nbase_topic = "home/#"\n', "mqtt.base_topic"),
        ('[mqtt]\nbase_topic = "home//stress"\n', "mqtt.base_topic"),
        ('[mqtt]\nbase_topic = "/stress"\n', "mqtt.base_topic"),
        ('[mqtt]\ndiscovery_prefix = "ha/+"\n', "mqtt.discovery_prefix"),
        ('[mqtt]\ndiscovery_prefix = "ha/"\n', "mqtt.discovery_prefix"),
    ],
)
def test_names_used_in_mqtt_topics_are_refused_at_load(tmp_path, text, key):
    problems = problems_of(tmp_path, text)
    assert any(p.startswith(f"{key}: cannot be used in MQTT topics") for p in problems), problems


def test_topic_names_that_mqtt_accepts_pass(tmp_path):
    cfg = config.load(
        write(
            tmp_path,
            '[mqtt]\nbase_topic = "home/stress"\n[[people]]\nname = "Ann Lee"\n'
            '[[devices]]\nname = "Polar H10*"\nperson = "Ann Lee"\n',
        ),
        environ={},
    )
    assert cfg.mqtt.base_topic == "home/stress" and [p.name for p in cfg.people] == ["Ann Lee"]
    # the label in topics is the address, so a '/' in the name pattern of an addressed device is harmless
    config.load(write(tmp_path, '[[devices]]\naddress = "A0:9E:1A:12:34:56"\nname = "a/b"\n'), environ={})


@pytest.mark.parametrize(
    "section, url, shown",
    [
        ("mqtt", "mqtt://broker:99999", "mqtt://broker:99999"),
        ("mqtt", "mqtt://broker:abc", "mqtt://broker:abc"),
        ("mqtt", "mqtt://user@broker:0", "mqtt://***@broker:0"),
        ("influx", "http://db:99999", "http://db:99999"),
        ("influx", "http://admin:s3cret@db:abc", "http://***@db:abc"),
    ],
)
def test_url_with_a_bad_port_is_refused_naming_the_key(tmp_path, section, url, shown):
    problems = problems_of(tmp_path, f'[{section}]\nurl = "{url}"\n')
    assert problems == [f"{section}.url: the port must be a number from 1 to 65535, got {shown!r}"]


def test_cli_config_check_refuses_a_bad_port_in_one_line(tmp_path, capsys):
    path = write(tmp_path, '[mqtt]\nurl = "mqtt://host:abc"\n')
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mqtt.url: the port must be" in err and "Traceback" not in err


def test_no_problem_message_contains_a_url_password(tmp_path):
    secret = "Hunter2Secret"
    for text in (
        f'[influx]\nurl = "ftp://admin:{secret}@db:8086"\n',
        f'[influx]\nurl = "http://admin:{secret}@db:99999"\n',
        f'[influx]\nurl = "http://admin:{secret}@[::1"\n',
        f'[mqtt]\nurl = "tcp://u:{secret}@broker"\n',
        f'[mqtt]\nurl = "mqtt://u:{secret}@broker:abc"\n',
        f'[mqtt]\nurl = "mqtt://u:{secret}@broker"\n',
    ):
        with pytest.raises(config.ConfigError) as err:
            config.load(write(tmp_path, text), environ={})
        assert err.value.problems and secret not in str(err.value), str(err.value)
    from sinks.redact import redact_url

    assert redact_url(f"http://admin:{secret}@db:8086/x") == "http://***@db:8086/x"


def test_window_lengths_must_nest(tmp_path):
    problems = problems_of(tmp_path, "[processing]\nwindow_s = 60\nrmssd_window_s = 120\nstep_s = 90\n")
    assert any(
        p.startswith("processing.rmssd_window_s: must be <= processing.window_s (60 s), got 120")
        for p in problems
    )
    assert any(
        p.startswith("processing.step_s: must be <= processing.window_s (60 s), got 90") for p in problems
    )


def test_a_fraction_for_an_integer_key_is_refused(tmp_path):
    assert problems_of(tmp_path, "[influx]\nbatch_size = 2.5\n") == [
        "influx.batch_size: must be a whole number, got 2.5"
    ]
    assert config.load(write(tmp_path, "[influx]\nbatch_size = 2\n"), environ={}).influx.batch_size == 2
    cfg = config.load(None, environ={"STRESSWATCH_MQTT__KEEPALIVE_S": "60"})
    assert cfg.mqtt.keepalive_s == 60 and isinstance(cfg.mqtt.keepalive_s, int)


def test_an_environment_override_problem_names_the_variable(tmp_path, capsys):
    path = write(tmp_path, "[processing]\nstep_s = 10\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={"STRESSWATCH_INFLUX__BATCH_SIZE": "2.5"})
    assert err.value.source == "environment"
    assert err.value.problems == [
        "STRESSWATCH_INFLUX__BATCH_SIZE: influx.batch_size: must be a whole number, got '2.5'"
    ]
    with pytest.raises(config.ConfigError) as err:
        config.load(None, environ={"STRESSWATCH_PROCESSING__COLOUR": "red"})
    assert err.value.problems[0].startswith("STRESSWATCH_PROCESSING__COLOUR: processing.colour: unknown key")
    # mixed: the file's own problem stays the file's
    bad = write(tmp_path, "[processing]\nwindow_s = 1\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(bad, environ={"STRESSWATCH_PROCESSING__STEP_S": "x"})
    assert err.value.source == str(bad)
    assert "processing.window_s: must be >= 30, got 1" in err.value.problems
    assert (
        "STRESSWATCH_PROCESSING__STEP_S: processing.step_s: must be a number, got 'x'" in err.value.problems
    )


@pytest.mark.parametrize(
    "content, reason", [(b"\xff\xfe\x00bad", "is not UTF-8 text"), (None, "cannot read")]
)
@pytest.mark.parametrize("section, key", [("mqtt", "password_file"), ("influx", "token_file")])
def test_an_unreadable_secret_file_is_one_line_naming_key_and_file(
    tmp_path, capsys, section, key, content, reason
):
    secret = tmp_path / "secret"
    if content is None:
        secret.mkdir()  # exists, but cannot be read as a file (as root, file modes would not stop us)
    else:
        secret.write_bytes(content)
    path = write(
        tmp_path, f'[{section}]\nurl = "{"mqtt" if section == "mqtt" else "http"}://h"\n{key} = "{secret}"\n'
    )
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (
        f"{section}.{key}: {str(secret)!r}" in err or f"{section}.{key}: cannot read {str(secret)!r}" in err
    )
    assert reason in err


def test_read_secret_names_the_key_when_the_file_is_not_utf8(tmp_path):
    secret = tmp_path / "token"
    secret.write_bytes(b"\xc3\x28")
    with pytest.raises(config.ConfigError, match=r"influx.token_file: '.*token' is not UTF-8 text"):
        config.read_secret(None, str(secret), "influx.token_file")


def test_two_straps_for_one_person_are_refused(tmp_path):
    problems = problems_of(
        tmp_path, '[[devices]]\naddress = "A0:9E:1A:12:34:56"\n[[devices]]\naddress = "A0:9E:1A:12:34:57"\n'
    )
    assert len(problems) == 1
    assert problems[0].startswith("devices[1].person: 'me' already wears devices[0]; one strap per person")
    assert "[[people]]" in problems[0]


def test_the_wearers_are_the_devices_people_without_a_phantom_me(tmp_path):
    cfg = config.load(
        write(tmp_path, '[[devices]]\naddress = "A0:9E:1A:12:34:56"\nperson = "ann"\n'), environ={}
    )
    assert [p.name for p in cfg.people] == ["ann"]
    assert cfg.sink_settings().people == ("ann",)
    cfg = config.load(
        write(
            tmp_path,
            '[[people]]\nname = "bob"\nage = 30\n'
            '[[devices]]\naddress = "A0:9E:1A:12:34:56"\nperson = "ann"\n',
        ),
        environ={},
    )
    assert [p.name for p in cfg.people] == ["bob", "ann"]  # explicitly configured people stay
    assert [p.name for p in config.load(None, environ={}).people] == ["me"]  # demo / analyze default


def test_mqtt_outbox_limit(tmp_path):
    assert config.load(None, environ={}).mqtt.outbox_max_messages == 100000
    assert (
        config.load(
            write(tmp_path, "[mqtt]\noutbox_max_messages = 500\n"), environ={}
        ).mqtt.outbox_max_messages
        == 500
    )
    assert problems_of(tmp_path, "[mqtt]\noutbox_max_messages = 10\n") == [
        "mqtt.outbox_max_messages: must be >= 100, got 10"
    ]


def test_the_module_docs_name_every_section():
    doc = config.__doc__
    assert "will be added" not in doc and "Later issues" not in doc
    for section in ("processing", "people", "state", "bluetooth", "devices", "mqtt", "influx"):
        assert section in doc
        assert f"[{section}]" in config.EXAMPLE or f"[[{section}]]" in config.EXAMPLE


def test_the_alerts_table_sets_the_engine_and_every_problem_names_its_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[alerts]\ncooldown_min = 45\ndaily_cap = 2\nquiet_hours = ["21:30", "08:00"]\n'
        'acute_exercises = ["box breathing"]\n'
    )
    s = config.load(path, environ={"STRESSWATCH_ALERTS__SLEEP_WINDOW": "22:30,06:30"}).alert_settings()
    assert (s.cooldown_min, s.daily_cap, s.quiet_hours, s.sleep_window) == (
        45.0,
        2,
        ("21:30", "08:00"),
        ("22:30", "06:30"),
    )
    assert s.acute_exercises == ("box breathing",)
    path.write_text('[alerts]\ncooldown_min = "soon"\ndaily_cap = 2.5\nquiet = 1\ntimezone = "UTC"\n')
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    problems = "\n".join(err.value.problems)
    assert "alerts.cooldown_min: must be a number, got 'soon'" in problems
    assert "alerts.daily_cap: must be a whole number, got 2.5" in problems
    assert "alerts.quiet: unknown key" in problems and "alerts.timezone: unknown key" in problems
    path.write_text('[alerts]\nquiet_hours = ["22:00", "25:00"]\n')
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    assert err.value.problems == ["alerts.quiet_hours: '25:00' is not a time of day (00:00-23:59)"]
    with pytest.raises(config.ConfigError) as err:
        config.load(None, environ={"STRESSWATCH_ALERTS__SESSION_TIME": "23:00"})
    assert err.value.problems[0].startswith(
        "STRESSWATCH_ALERTS__SESSION_TIME: alerts.session_time: 23:00 is inside"
    )
    path.write_text("[alerts]\nsnooze_default_min = 1000\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    (problem,) = err.value.problems
    assert problem == "alerts.snooze_default_min: must be a snooze length from 1 to 240 minutes, got 1000.0"


def test_the_service_runs_the_engine_on_the_configured_alerts(tmp_path):
    from stresswatch.service import Service

    cfg = config.load(
        None,
        environ={
            "STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "s"),
            "STRESSWATCH_ALERTS__COOLDOWN_MIN": "20",
        },
    )
    assert Service(cfg, [], timezone="Europe/Berlin").people["me"].engine.settings.cooldown_min == 20.0
    assert Service(cfg, [], timezone="Europe/Berlin").people["me"].engine.settings.timezone == "Europe/Berlin"


def test_the_service_zone_comes_from_the_config_else_from_the_machine(tmp_path, monkeypatch):
    from stresswatch.service import Service

    env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "s")}
    cfg = config.load(None, environ={**env, "STRESSWATCH_SERVICE__TIMEZONE": "America/New_York"})
    assert cfg.alert_settings().timezone == "America/New_York"
    wearer = Service(cfg, []).people["me"]
    assert wearer.engine.settings.timezone == "America/New_York"
    assert str(wearer.pipeline.model.baseline.tz) == "America/New_York"
    monkeypatch.setenv("TZ", ":Europe/Berlin")
    assert config.load(None, environ=env).service.zone_name() == "Europe/Berlin"
    monkeypatch.setenv("TZ", "CET-1CEST")  # a POSIX rule names no zone: the machine's files decide
    assert config.machine_zone() != "CET-1CEST"


def test_an_unknown_zone_is_refused_naming_the_key():
    with pytest.raises(config.ConfigError) as err:
        config.load(None, environ={"STRESSWATCH_SERVICE__TIMEZONE": "Europe/Berln"})
    assert err.value.problems == [
        "STRESSWATCH_SERVICE__TIMEZONE: service.timezone: unknown time zone "
        "'Europe/Berln' (an IANA name such as 'Europe/Berlin')"
    ]


def test_a_foot_pod_is_a_motion_device_next_to_the_strap(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:00:00:07"\n'
        '[[devices]]\nperson = "ann"\naddress = "D4:22:CD:00:00:03"\nrole = "motion"\n'
    )
    cfg = config.load(path, environ={})
    assert [d.role for d in cfg.devices] == ["strap", "motion"] and [p.name for p in cfg.people] == ["ann"]
    path.write_text(
        '[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:00:00:07"\nrole = "pod"\n'
        '[[devices]]\nperson = "ann"\naddress = "D4:22:CD:00:00:03"\n'
    )
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    assert "devices[0].role: must be one of strap, motion, got 'pod'" in err.value.problems


# -- who wears what: names and addresses as a person means them ------------------------------------


def test_a_people_table_without_a_name_is_refused(tmp_path):
    problems = problems_of(tmp_path, '[[people]]\nname = "ann"\n[[people]]\nage = 30\n')
    assert problems == ["people[1].name: required (the wearer's name, used in MQTT topics and InfluxDB tags)"]
    # without any [[people]] table the one wearer is still the default `me`
    assert [p.name for p in config.load(None, environ={}).people] == ["me"]


def test_a_device_for_a_people_name_in_another_letter_case_is_refused(tmp_path):
    problems = problems_of(
        tmp_path, '[[people]]\nname = "ann"\n[[devices]]\nperson = "Ann"\naddress = "A0:9E:1A:12:34:56"\n'
    )
    assert problems == ["devices[0].person: 'Ann' is not a [[people]] name (did you mean 'ann'?)"]


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            '[[people]]\nname = "Ann"\n[[people]]\nname = "ann"\n',
            "people[1].name: 'ann' differs from people[0].name 'Ann' only in letter case; use one spelling",
        ),
        (
            '[[devices]]\nperson = "Ann"\naddress = "A0:9E:1A:12:34:56"\n[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:12:34:57"\n',
            "devices[1].person: 'ann' differs from devices[0].person 'Ann' only in letter case; use one spelling",
        ),
    ],
)
def test_two_wearers_whose_names_differ_only_in_letter_case_are_refused(tmp_path, text, problem):
    assert problems_of(tmp_path, text) == [problem]


def test_a_device_for_someone_without_a_people_table_is_a_wearer_with_defaults(tmp_path):
    """As it always was without [[people]] tables (silently); next to them, with a warning, which
    names a close [[people]] name in case it is a typo."""
    warnings: list[str] = []
    cfg = config.load(
        write(tmp_path, '[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:12:34:56"\n'),
        environ={},
        warnings=warnings,
    )
    assert [p.name for p in cfg.people] == ["ann"] and warnings == []
    cfg = config.load(
        write(
            tmp_path,
            '[[people]]\nname = "ann"\nage = 30\n'
            '[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:12:34:56"\n'
            '[[devices]]\nperson = "anne"\naddress = "A0:9E:1A:12:34:57"\n'
            '[[devices]]\nperson = "bob"\naddress = "A0:9E:1A:12:34:58"\n',
        ),
        environ={},
        warnings=warnings,
    )
    assert [(p.name, p.age) for p in cfg.people] == [("ann", 30), ("anne", 40), ("bob", 40)]
    assert warnings == [
        (
            "devices[1].person: 'anne' has no [[people]] table (did you mean 'ann'?); 'anne' is a wearer with the "
            "default settings (age 40)"
        ),
        "devices[2].person: 'bob' has no [[people]] table; 'bob' is a wearer with the default settings (age 40)",
    ]


@pytest.mark.parametrize("second", ["A0:9E:1A:12:34:56", "a0:9e:1a:12:34:56"])
def test_one_strap_address_for_two_people_is_refused_in_any_letter_case(tmp_path, second):
    problems = problems_of(
        tmp_path,
        '[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:12:34:56"\n'
        f'[[devices]]\nperson = "bob"\naddress = "{second}"\n',
    )
    assert problems == [
        (
            f"devices[1].address: {second!r} is devices[0]'s strap (worn by 'ann'; addresses are "
            "compared regardless of letter case): one strap, one wearer"
        )
    ]


def test_a_stresswatch_variable_that_names_no_setting_is_a_warning_naming_the_closest(tmp_path):
    warnings: list[str] = []
    cfg = config.load(
        None,
        environ={
            "STRESSWATCH_PROCESING_STEP_S": "5",
            "STRESSWATCH_MQTT_URL": "mqtt://x",
            "STRESSWATCH_COLOUR": "red",
            "STRESSWATCH_REFERENCE_DATA": "/data",
            "OTHER_PROCESSING_STEP_S": "5",
        },
        warnings=warnings,
    )
    assert cfg.processing.step_s == 10.0 and cfg.mqtt.url is None  # ignored, as before, but said
    assert warnings == [
        "STRESSWATCH_PROCESING_STEP_S: matches no setting, ignored (did you mean STRESSWATCH_PROCESSING__STEP_S?)",
        "STRESSWATCH_MQTT_URL: matches no setting, ignored (did you mean STRESSWATCH_MQTT__URL?)",
        (
            "STRESSWATCH_COLOUR: matches no setting, ignored (settings are STRESSWATCH_<SECTION>__<KEY>, with two "
            "underscores, e.g. STRESSWATCH_PROCESSING__STEP_S)"
        ),
    ]


def test_every_suggested_variable_is_a_setting():
    names = config.env_variables()
    assert "STRESSWATCH_PROCESSING__STEP_S" in names and "STRESSWATCH_ALERTS__QUIET_HOURS" in names
    for name in names:
        warnings: list[str] = []
        try:
            config.load(None, environ={name: ""}, warnings=warnings)
        except config.ConfigError as exc:  # an empty value may be refused: by the key's check, not as unknown
            assert not any("unknown key" in p for p in exc.problems), (name, exc.problems)
        assert warnings == [], name


def test_config_check_prints_the_warnings_and_run_logs_them(tmp_path, capsys, monkeypatch):
    import os
    import subprocess
    import sys

    monkeypatch.setenv("STRESSWATCH_PROCESING_STEP_S", "5")
    warning = (
        "STRESSWATCH_PROCESING_STEP_S: matches no setting, ignored "
        "(did you mean STRESSWATCH_PROCESSING__STEP_S?)"
    )
    path = write(tmp_path, "[processing]\nstep_s = 5\n")
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (1 warning)\n" and err == f"stresswatch: config warning: {warning}\n"
    path = write(tmp_path, f'[[devices]]\naddress = "A0:9E:1A:12:34:56"\n[state]\ndirectory = "{tmp_path}"\n')
    # `run` logs it at start; here it then stops at the missing Bluetooth (a bus that is not there)
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "--config", str(path), "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert f"WARNING stresswatch.config: {warning}" in proc.stderr


def test_the_kafka_section_is_off_by_default_and_its_problems_name_their_keys(tmp_path):
    assert config.load(None, environ={}).kafka.client_config() is None  # the home default: no Kafka
    path = write(
        tmp_path,
        '[kafka]\nbootstrap_servers = "k1:9092,k2"\nsecurity_protocol = "sasl_ssl"\n'
        'readings_topic = "read ings"\nprompts_topic = "daily"\npartitions = 0\n'
        f'ca_file = "{tmp_path}/none.pem"\n',
    )
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    problems = err.value.problems
    assert "kafka.bootstrap_servers: each server must look like host:9092, got 'k2'" in problems
    assert any(
        p.startswith("kafka.username: security_protocol 'sasl_ssl' needs kafka.username") for p in problems
    )
    assert any(p.startswith("kafka.readings_topic: a topic name is") for p in problems)
    assert "kafka: topic 'daily' is used for more than one stream; give each its own" in problems
    assert "kafka.partitions: must be >= 1, got 0" in problems
    assert f"kafka.ca_file: file '{tmp_path}/none.pem' does not exist" in problems


def test_kafka_credentials_become_the_clients_settings(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    path = write(
        tmp_path,
        f'[kafka]\nbootstrap_servers = "k1:9093"\nsecurity_protocol = "sasl_ssl"\n'
        f'username = "site7"\npassword_file = "{tmp_path}/pw"\nca_file = "{tmp_path}/pw"\n',
    )
    conf = config.load(path, environ={}).kafka.client_config()
    assert conf == {
        "bootstrap.servers": "k1:9093",
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": f"{tmp_path}/pw",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "site7",
        "sasl.password": "s3cret",
    }


def test_the_rr_only_gate_is_on_unless_a_study_turns_it_off(tmp_path):
    from processing.stress import RR_GATE
    from stresswatch.service import Service

    env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "s")}
    on = Service(config.load(None, environ=env), [], timezone="UTC").people["me"].pipeline.model
    off = (
        Service(
            config.load(None, environ={**env, "STRESSWATCH_PROCESSING__RR_GATE": "false"}), [], timezone="UTC"
        )
        .people["me"]
        .pipeline.model
    )
    assert on.rr_gate == RR_GATE and off.rr_gate is None
