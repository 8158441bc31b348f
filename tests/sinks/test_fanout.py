"""The sinks behind one object: the demo with real sinks end to end; per-sink outbox bounds;
no secret in any log line; a failing state store never stops the service."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import sample
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers

from collector.events import Beat
from sinks.fanout import Sinks, SinkSettings
from sinks.influx import InfluxSettings
from sinks.mqtt import MqttSettings
from sinks.store import StateStore
from stresswatch import config


def test_demo_with_mqtt_and_influx_delivers_everything(broker, vm, tmp_path):
    env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stresswatch.cli",
            "demo",
            "--seconds",
            "0",
            "--plot",
            "",
            "--mqtt",
            f"mqtt://127.0.0.1:{broker.port}",
            "--influx",
            vm.url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 waiting, 0 rejected; MQTT: 0 messages waiting" in proc.stdout
    written = int(proc.stdout.split("InfluxDB: ")[1].split(" points")[0])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rr = servers.vm_export(vm, '{__name__="beats_rr_ms"}')
        hrv = servers.vm_export(vm, '{__name__="hrv_hr_bpm"}')
        prompts = servers.vm_export(vm, '{__name__="prompts_stress_score"}')
        daily = servers.vm_export(vm, '{__name__="daily_worn_min"}')
        baseline = servers.vm_export(vm, '{__name__="baseline_hr_bpm"}')
        n_beats = sum(map(len, rr.values()))
        n_hrv = sum(map(len, hrv.values()))
        n_other = sum(len(x) for m in (prompts, daily, baseline) for x in m.values())
        if n_beats + n_hrv + n_other >= written - 3:
            break
        time.sleep(0.3)
    # Besides beats and readings: the demo's 2 prompts, its day's summary and its baseline points. A prompt's answer
    # and measured effect are newer versions of the prompt's point (same series and time): sent
    # again if the prompt had left the outbox already (up to 3 lines), replacing it otherwise.
    assert n_hrv > 300 and sum(map(len, prompts.values())) == 2 and sum(map(len, daily.values())) == 1
    assert sum(map(len, baseline.values())) >= 10  # saved every 5 min of readings, and at each prompt
    assert 0 <= written - (n_beats + n_hrv + n_other) <= 3
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
    # The demo leaves the service's status topic and Home Assistant devices alone (it may run
    # next to `stresswatch run`); its prompts still reach the phone's topic (not retained).
    assert "stresswatch/status" not in topics
    assert not any(t.startswith("homeassistant/") for t in topics)
    assert proc.stdout.count(">> prompt") == 2


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


# -- the fanout's own duties -------------------------------------------------------------------------

SECRET = "s3cr3t-Pw"


def recent_beats(n: int, person: str = "me"):
    t0 = time.time() - n
    return [Beat(person, "h10", t0 + i * 0.8, 800.0 + i % 7, hr_bpm=75.0) for i in range(n)]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def assert_secret_never_logged(caplog):
    assert caplog.records  # something was logged, so the check below could have failed
    for r in caplog.records:
        assert SECRET not in r.getMessage(), r.getMessage()
    assert SECRET not in caplog.text  # with arguments, exceptions and tracebacks formatted


def run_sinks_with(url: str, api: str, tmp_path) -> Sinks:
    sinks = Sinks(
        SinkSettings(
            state_path=tmp_path / "state" / "state.db",
            influx=InfluxSettings(url=url, api=api, bucket="stresswatch"),
        )
    )
    for b in recent_beats(50):
        sinks.beat(b)
    sinks.flush()
    sinks.close(timeout_s=2)
    return sinks


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_password_in_the_influx_url_is_never_logged_server_down(api, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the client libraries' too
    url = f"http://writer:{SECRET}@127.0.0.1:{servers.free_port()}"  # nothing listens there
    sinks = run_sinks_with(url, api, tmp_path)
    assert sinks.store.pending("influx") == 50
    assert any("not accepting writes" in r.getMessage() for r in caplog.records)
    assert any("http://***@127.0.0.1" in r.getMessage() for r in caplog.records)
    assert_secret_never_logged(caplog)


def test_a_password_in_the_influx_url_is_used_and_never_logged_influxdb_v1(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    (tmp_path / "influxdb").mkdir()
    server = servers.influxdb(tmp_path / "influxdb", auth=True).start()
    try:
        servers.influx_query(server, f"CREATE USER writer WITH PASSWORD '{SECRET}' WITH ALL PRIVILEGES")
        servers.influx_query(server, "CREATE DATABASE stresswatch", auth=("writer", SECRET))
        caplog.clear()
        sinks = run_sinks_with(f"http://writer:{SECRET}@127.0.0.1:{server.port}", "v1", tmp_path)
        assert sinks.influx.sent == 50 and sinks.store.pending("influx") == 0  # the URL's credentials work
        assert_secret_never_logged(caplog)
    finally:
        server.stop()


def test_a_password_in_the_influx_url_is_never_logged_victoriametrics_v2(vm, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sinks = run_sinks_with(f"http://writer:{SECRET}@127.0.0.1:{vm.port}", "v2", tmp_path)
    assert sinks.influx.sent == 50 and sinks.store.pending("influx") == 0
    assert_secret_never_logged(caplog)


@pytest.mark.slow
def test_mqtt_has_its_own_outbox_bound(tmp_path):
    """[mqtt] outbox_max_messages bounds MQTT's outbox; [influx] outbox_max_points only InfluxDB's."""
    down = servers.free_port()  # neither server is there: everything waits in the outbox
    settings = SinkSettings(
        state_path=tmp_path / "state.db",
        mqtt=MqttSettings(port=down, discovery=False),
        influx=InfluxSettings(url=f"http://127.0.0.1:{down}", outbox_max_points=1000),
        mqtt_outbox_max_messages=5,
    )
    sinks = Sinks(settings)
    try:
        for i in range(20):  # 20 straps: 20 retained device topics, 20 `devices` points
            sinks.device("me", f"strap{i}", {"battery_pct": 80.0, "connected": True}, time.time())
        assert sinks.store.pending("mqtt") == 5 and sinks.store.counter("mqtt.dropped_overflow") == 15
        assert sinks.store.pending("influx") == 20
    finally:
        sinks.close(timeout_s=0)


@pytest.mark.slow
def test_a_full_mqtt_outbox_drops_retained_states_before_prompts(tmp_path):
    down = servers.free_port()  # no broker: everything waits in the outbox
    settings = SinkSettings(
        state_path=tmp_path / "state.db",
        mqtt=MqttSettings(port=down, discovery=False),
        mqtt_outbox_max_messages=5,
    )
    sinks = Sinks(settings)
    try:
        from alerts.prompt import Prompt

        for k in range(3):  # the oldest rows
            sinks.prompt(Prompt(f"me-{k}", "me", time.time(), "acute", "Stressed.", 80.0, time.time() + 900))
        for i in range(20):
            sinks.device("me", f"strap{i}", {"battery_pct": 80.0, "connected": True}, time.time())
        topics = [json.loads(r.payload)["topic"] for r in sinks.store.peek("mqtt", 10)]
        assert topics == ["stresswatch/me/prompt"] * 3 + [
            "stresswatch/me/device/strap18",
            "stresswatch/me/device/strap19",
        ]
        assert sinks.store.counter("mqtt.dropped_overflow") == 18
    finally:
        sinks.close(timeout_s=0)


def test_a_full_disk_costs_only_what_did_not_fit_is_logged_once_a_minute_and_heals(vm, tmp_path, caplog):
    clock = FakeClock()
    store = StateStore(tmp_path / "state.db")
    sinks = Sinks(
        SinkSettings(state_path=tmp_path / "state.db", influx=InfluxSettings(url=vm.url, bucket="b")),
        store=store,
        clock=clock,
        inline_flush=False,
    )
    beats = recent_beats(900)
    stored, lost = [], []

    def feed(chunk):
        for b in chunk:
            before = sinks.lost.influx
            sinks.beat(b)  # never raises
            (lost if sinks.lost.influx > before else stored).append(b)

    feed(beats[:300])
    store.limit_pages(1)  # the disk is full from here on
    feed(beats[300:450])
    assert len(lost) > 100 and sinks.lost.influx == len(lost)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "disk is full" in errors[0] and str(tmp_path / "state.db") in errors[0]
    clock.now += 61
    feed(beats[450:600])
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2  # a minute later, once more
    store.limit_pages(None)  # space freed: no restart needed
    feed(beats[600:])
    assert stored[-300:] == beats[600:]
    assert any("writable again" in r.getMessage() for r in caplog.records)
    assert store.counter("influx.lost_store_error") == len(lost)
    assert sinks.flush() == len(stored)
    got = servers.wait_for(
        lambda: (
            (s := servers.vm_export(vm, '{__name__="beats_rr_ms"}'))
            and sum(map(len, s.values())) >= len(stored)
            and s
        )
    )
    assert sorted(next(iter(got.values()))) == sorted(round(b.t * 1000) for b in stored)
    sinks.close(timeout_s=0)


def test_an_influxdb_outage_past_the_outbox_bound_drops_beats_says_so_and_keeps_prompts_and_days(
    broker, tmp_path, caplog
):
    """InfluxDB 1.6.7 away (nothing listens on its port) while more points come than the outbox
    holds: beats go, oldest first, never the prompts or the day's summaries queued before them;
    a warning says how many and from when to when (once a minute at most), the retained
    `<base>/outbox` counts them, and once the server is up everything kept is delivered."""
    from alerts.prompt import Prompt

    caplog.set_level(logging.WARNING)
    (tmp_path / "influxdb").mkdir()
    server = servers.influxdb(tmp_path / "influxdb")  # not started yet: its port has nothing listening
    settings = SinkSettings(
        state_path=tmp_path / "state" / "state.db",
        people=("me",),
        mqtt=MqttSettings(port=broker.port, client_id="sw-overflow", discovery=False),
        influx=InfluxSettings(url=server.url, api="v1", bucket="stresswatch", outbox_max_points=1000),
    )
    status = []
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.on_message = lambda c, u, m: status.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("stresswatch/outbox")
    watcher.loop_start()
    sinks = Sinks(settings, inline_flush=False)
    clock = FakeClock()
    sinks.influx.overflow.clock = clock
    try:
        assert sinks.mqtt.connected.wait(10)
        t0 = time.time() - 3600
        prompts = [
            Prompt(
                f"me-{k}",
                "me",
                t0 + 60 * k,
                "acute",
                "Stressed for 10 of 15 minutes.",
                80.0 + k,
                time.time() + 900,
            )
            for k in range(5)
        ]
        for p in prompts:  # queued first: the oldest points when the outbox overflows
            sinks.prompt(p)
        days = [t0 - 86400, t0]
        for t in days:
            sinks.daily("me", {"valid": True, "worn_min": 600.0, "stress_load": 0.2}, t)
        beats = [Beat("me", "h10", t0 + 600 + 0.8 * i, 800.0, hr_bpm=75.0) for i in range(1500)]
        fed_from = time.time()
        for i, b in enumerate(beats):
            sinks.beat(b)
            if i % 50 == 0:
                sinks.reading(sample.reading(person="me", time=b.t))
            if i % 500 == 0:
                assert sinks.flush() == 0  # InfluxDB is away
        fed_to = time.time()
        n_dropped = 5 + 2 + 1500 + 30 - 1000
        assert sinks.store.pending("influx") == 1000
        assert sinks.store.counter("influx.dropped_overflow") == n_dropped

        # the first drop is said at once; the rest of the minute's drops wait for the next line
        [line] = overflow_lines(caplog)
        first, last, span = queued(
            line,
            "InfluxDB outbox full (at most 1000 points): dropped 1 point (beats 1)",
            "1 dropped so far (influx.dropped_overflow)",
        )
        assert int(fed_from) <= first == last <= fed_to and span == "0 s"
        clock.now += 60  # a minute later the service's periodic call says the rest, and publishes the counts
        sinks.publish_outbox()
        line = overflow_lines(caplog)[1]
        first, last, _ = queued(
            line,
            f"InfluxDB outbox full (at most 1000 points): dropped {n_dropped - 1} points "
            f"(beats {n_dropped - 1})",
            f"{n_dropped} dropped so far (influx.dropped_overflow)",
        )
        assert int(fed_from) <= first <= last <= fed_to
        assert len(overflow_lines(caplog)) == 2
        got = servers.wait_for(lambda: status and status[-1])
        assert got["dropped_points"] == n_dropped and got["points_waiting"] == 1000

        server.start()  # InfluxDB is back
        servers.influx_query(server, "CREATE DATABASE stresswatch")
        assert servers.wait_for(
            lambda: sinks.influx.flush(force=True) >= 0 and sinks.store.pending("influx") == 0
        )

        def count(measurement: str, field: str) -> int:
            res = servers.influx_query(server, f"SELECT count({field}) FROM {measurement}", db="stresswatch")
            return res["results"][0]["series"][0]["values"][0][1]

        assert count("prompts", "stress_score") == 5 and count("daily", "worn_min") == 2
        assert count("hrv", "rmssd_ms") == 30 and count("beats", "rr_ms") == 1500 - n_dropped
        res = servers.influx_query(server, "SELECT first(rr_ms) FROM beats", db="stresswatch")
        assert res["results"][0]["series"][0]["values"][0][0] == round(
            beats[n_dropped].t * 1000
        )  # the newest kept
    finally:
        sinks.close(timeout_s=0)
        watcher.loop_stop()
        server.stop()


def overflow_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "outbox full" in r.getMessage()]


def queued(line: str, head: str, tail: str) -> tuple[int, int, str]:
    """The span an overflow line gives (unix seconds of its first and last queued row, its length
    as written), checking the words around it."""
    import calendar
    import re

    m = re.fullmatch(
        re.escape(head) + r" queued from (.+) UTC to (.+) UTC \((.+)\); " + re.escape(tail), line
    )
    assert m, line
    when = [calendar.timegm(time.strptime(m[k], "%Y-%m-%d %H:%M:%S")) for k in (1, 2)]
    return when[0], when[1], m[3]
