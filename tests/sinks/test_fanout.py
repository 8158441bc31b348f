"""The demo with real sinks: `stresswatch demo --mqtt URL --influx URL` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers

from stresswatch import config


def test_demo_with_mqtt_and_influx_delivers_everything(broker, vm, tmp_path):
    env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "demo", "--seconds", "0", "--plot", "",
         "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--influx", vm.url],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 waiting, 0 rejected; MQTT: 0 messages waiting" in proc.stdout
    written = int(proc.stdout.split("InfluxDB: ")[1].split(" points")[0])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rr = servers.vm_export(vm, '{__name__="beats_rr_ms"}')
        hrv = servers.vm_export(vm, '{__name__="hrv_hr_bpm"}')
        n_beats = sum(map(len, rr.values()))
        n_hrv = sum(map(len, hrv.values()))
        if n_beats + n_hrv >= written:
            break
        time.sleep(0.3)
    assert n_beats + n_hrv == written and n_hrv > 300
    got = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: got.append(m)
    c.connect("127.0.0.1", broker.port)
    c.subscribe("#")
    c.loop_start()
    time.sleep(1.0)
    c.loop_stop()
    topics = {m.topic: m for m in got}
    assert json.loads(topics["stresswatch/me/state"].payload)["state"] in ("calm", "neutral")
    assert topics["stresswatch/status"].payload == b"offline"  # clean shutdown says so
    assert "homeassistant/sensor/stresswatch_me/rmssd/config" in topics


def test_sink_sections_report_each_problem_with_its_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[mqtt]\nurl = "mqtt://u:pw@host"\npassword = "x"\npassword_file = "/nope"\ncertfile = "/etc/hostname"\n'
        '[influx]\nurl = "ftp://x"\napi = "v3"\n'
    )
    with pytest.raises(config.ConfigError) as err:
        config.load(cfg, environ={})
    problems = "\n".join(err.value.problems)
    for expected in (
        "mqtt.url: put the password in mqtt.password",
        "mqtt.password_file: set either",
        "mqtt.password_file: file '/nope' does not exist",
        "mqtt.keyfile: a client certificate needs both",
        "influx.url: must look like http://host:8086",
        "influx.api: must be one of v2, v1",
    ):
        assert expected in problems
    assert "pw" not in problems.replace("password", "")  # the secret itself is never echoed
