"""`stresswatch doctor` against real servers: each problem is found and comes with its fix."""

from __future__ import annotations

import subprocess
import sys

import pytest
import servers

from stresswatch import config
from stresswatch.doctor import Level, check_all


def load(tmp_path, **env) -> config.Config:
    environ = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state")}
    environ.update({f"STRESSWATCH_{k.upper()}": v for k, v in env.items()})
    return config.load(None, environ=environ)


def by_what(findings, prefix):
    return [f for f in findings if f.what.startswith(prefix)]


def test_a_working_broker_database_and_state_directory_are_ok(broker, influxdb, tmp_path):
    cfg = load(
        tmp_path,
        mqtt__url=f"mqtt://127.0.0.1:{broker.port}",
        influx__url=influxdb.url,
        influx__api="v1",
        influx__bucket="stresswatch",
    )
    found = check_all(cfg)
    assert [f.level for f in by_what(found, "MQTT")] == [Level.OK]
    assert [f.level for f in by_what(found, "InfluxDB")] == [Level.OK]
    assert [f.level for f in by_what(found, "state directory")] == [Level.OK]
    assert by_what(found, "python")[0].level == Level.OK


def test_a_wrong_broker_password_is_named_and_never_shown(tmp_path):
    (tmp_path / "m").mkdir()
    broker = servers.mosquitto(tmp_path / "m", users={"stresswatch": "right-secret"}).start()
    try:
        cfg = load(
            tmp_path,
            mqtt__url=f"mqtt://127.0.0.1:{broker.port}",
            mqtt__username="stresswatch",
            mqtt__password="wrong-secret-123",
        )
        [f] = by_what(check_all(cfg), "MQTT")
    finally:
        broker.stop()
    assert f.level == Level.PROBLEM and "refused" in f.detail and "password" in f.fix
    assert "wrong-secret-123" not in f.line()


def test_an_unreachable_broker_is_a_problem(tmp_path):
    cfg = load(tmp_path, mqtt__url=f"mqtt://127.0.0.1:{servers.free_port()}")
    [f] = by_what(check_all(cfg), "MQTT")
    assert f.level == Level.PROBLEM and "cannot connect" in f.detail


def test_a_missing_database_says_how_to_create_it(influxdb, tmp_path):
    cfg = load(tmp_path, influx__url=influxdb.url, influx__api="v1", influx__bucket="nope")
    [f] = by_what(check_all(cfg), "InfluxDB")
    assert f.level == Level.PROBLEM and "'nope' does not exist" in f.detail and "CREATE DATABASE" in f.fix


def test_the_v2_api_against_influxdb_1_6_says_to_use_v1(influxdb, tmp_path):
    cfg = load(tmp_path, influx__url=influxdb.url, influx__bucket="stresswatch")
    [f] = by_what(check_all(cfg), "InfluxDB")
    assert f.level == Level.PROBLEM and 'api = "v1"' in f.fix


def test_a_state_directory_that_is_a_file_blocks_the_service(tmp_path):
    (tmp_path / "state").write_text("not a directory")
    [f] = by_what(check_all(load(tmp_path)), "state directory")
    assert f.level == Level.PROBLEM and "is a file" in f.detail


def test_a_running_service_is_reported_with_its_pid_without_taking_its_lock(tmp_path):
    import os

    from sinks.store import StateLock
    from stresswatch.doctor import check_state

    cfg = load(tmp_path)
    assert by_what(check_state(cfg), "service")[0].detail == "not running on this state directory"
    with StateLock(tmp_path / "state") as held:
        [f] = by_what(check_state(cfg), "service")
        assert f.level == Level.OK and f.detail == f"running as PID {os.getpid()} on this state directory"
        assert held.path.read_text() == f"{os.getpid()}\n"  # still ours: the doctor only looked
    assert by_what(check_state(cfg), "service")[0].detail == "not running on this state directory"


def test_without_a_system_bus_configured_straps_cannot_work_and_the_exit_code_says_so(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(
        f'[state]\ndirectory = "{tmp_path / "state"}"\n'
        '[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:00:00:07"\n'
    )
    env = {"PATH": "/usr/bin:/bin", "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-bus'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "--config", str(cfg_file), "doctor"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "PROBLEM bluetooth" in proc.stdout and "D-Bus" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("level", [Level.OK, Level.WARN, Level.PROBLEM])
def test_every_level_prints_as_one_line_plus_its_fix(level):
    from stresswatch.doctor import Finding

    text = Finding("x", level, "detail", "do this" if level != Level.OK else "").line()
    assert text.startswith(level.value) and ("fix: do this" in text) == (level != Level.OK)


def test_the_bluez_version_is_read_and_compared_with_what_bleak_needs():
    from stresswatch.doctor import bluez_version_finding

    assert bluez_version_finding("bluetoothctl: 5.66", Level.PROBLEM).level == Level.OK
    old = bluez_version_finding("bluetoothctl: 5.50", Level.PROBLEM)
    assert old.level == Level.PROBLEM and "older than 5.55" in old.detail
    missing = bluez_version_finding(None, Level.WARN)
    assert missing.level == Level.WARN and missing.fix == "sudo apt install bluez"


def test_the_doctor_says_whether_the_system_clock_is_synchronised(tmp_path):
    from stresswatch.doctor import check_clock
    from stresswatch.timesync import ClockState, kernel_clock_state

    unsynced = check_clock(ClockState(False, "not synchronised to a time source (NTP)"))
    assert unsynced.level == Level.WARN and "timedatectl set-ntp true" in unsynced.fix
    assert "no real-time clock" in unsynced.fix
    assert check_clock(ClockState(True, "synchronised, estimated error 1.5 ms")).level == Level.OK
    unknown = check_clock(ClockState(None, "adjtimex failed: Operation not permitted"))
    assert unknown.level == Level.WARN and "cannot tell" in unknown.detail
    # check_all asks the kernel of this machine
    (clock,) = by_what(check_all(load(tmp_path)), "system clock")
    assert clock == check_clock(kernel_clock_state())


@pytest.mark.slow
def test_doctor_names_each_configured_devices_motion_sources(tmp_path):
    """Against the fake BlueZ: a Polar strap with an accelerometer, a foot pod, a strap without
    motion, and one that is not there."""
    import asyncio
    import os
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fake_bluez import FakeBlueZ, FakeStrap, PrivateSystemBus

    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[state]\ndirectory = "{tmp_path / "state"}"\n'
        '[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:00:00:07"\n'
        '[[devices]]\nperson = "ann"\naddress = "D4:22:CD:00:00:03"\nrole = "motion"\n'
        '[[devices]]\nperson = "bob"\naddress = "C8:2B:96:00:00:02"\n'
        '[[devices]]\nperson = "cy"\naddress = "A0:9E:1A:00:00:09"\n'
    )
    bus = PrivateSystemBus()

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        bluez.add(FakeStrap("A0:9E:1A:00:00:07", "Polar H10 7", [820] * 10, pmd=True))
        bluez.add(FakeStrap("D4:22:CD:00:00:03", "Polar Stride", is_hr=False, rsc=True, model="Stride"))
        bluez.add(FakeStrap("C8:2B:96:00:00:02", "TICKR B", [700] * 10))
        beats = asyncio.create_task(bluez.run_heartbeats(0.5))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stresswatch.cli",
            "--config",
            str(cfg),
            "doctor",
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        beats.cancel()
        return out.decode()

    try:
        out = asyncio.run(scenario())
    finally:
        bus.stop()
    lines = {ln.split(": ", 1)[0].split(None, 1)[1]: ln for ln in out.splitlines() if "device " in ln}
    assert "motion: accelerometer (25, 50, 100, 200 Hz)" in lines["device A0:9E:1A:00:00:07 (ann)"]
    assert lines["device A0:9E:1A:00:00:07 (ann)"].startswith("ok")
    assert (
        lines["device D4:22:CD:00:00:03 (ann)"]
        == "ok      device D4:22:CD:00:00:03 (ann): Stride, battery 87 %, "
        "RR intervals no, motion: foot pod (RSC)"
    )
    assert "motion: none" in lines["device C8:2B:96:00:00:02 (bob)"]
    assert (
        lines["device A0:9E:1A:00:00:09 (cy)"].startswith("warn")
        and "not seen" in lines["device A0:9E:1A:00:00:09 (cy)"]
    )


def test_straps_say_what_the_service_saw_whether_each_sends_rr_and_doctor_writes_nothing(tmp_path):
    from sinks.store import StateStore
    from stresswatch.device_health import saved_key
    from stresswatch.doctor import check_straps

    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(
        f'[state]\ndirectory = "{tmp_path / "state"}"\n'
        '[[devices]]\nperson = "ann"\naddress = "F0:13:C3:00:00:08"\n'
        '[[devices]]\nperson = "bob"\naddress = "A0:9E:1A:00:00:07"\n'
        '[[devices]]\nperson = "cy"\nname = "TICKR*"\n'
    )
    cfg = config.load(cfg_file, environ={})
    assert check_straps(cfg) == [] and not (tmp_path / "state").exists()  # nothing seen, nothing created

    store = StateStore(tmp_path / "state" / "state.db")
    store.save_states(
        {
            saved_key("ann", "F0:13:C3:00:00:08"): {"sends_rr": False, "time": 1.78e9, "model": "HRM"},
            saved_key("bob", "A0:9E:1A:00:00:07"): {"sends_rr": True, "time": 1.78e9, "model": "H10"},
        }
    )
    store.close()
    found = {f.what: f for f in check_straps(cfg)}
    assert sorted(found) == ["strap A0:9E:1A:00:00:07 (bob)", "strap F0:13:C3:00:00:08 (ann)"]  # cy: not seen
    ann, bob = found["strap F0:13:C3:00:00:08 (ann)"], found["strap A0:9E:1A:00:00:07 (bob)"]
    assert ann.level == Level.WARN and ann.detail.startswith("sends heart rate without RR intervals (seen by")
    assert "HRV and the stress state are unavailable" in ann.detail and "RR intervals" in ann.fix
    assert bob.level == Level.OK and bob.detail.startswith("sends RR intervals")


def test_the_kafka_cluster_is_checked_for_brokers_replication_and_partitions(kafka, tmp_path):
    from sinks.kafka import ensure_topics
    from stresswatch.doctor import check_kafka

    beats = f"beats-doctor-{tmp_path.name[-6:]}"
    cfg = load(
        tmp_path, kafka__bootstrap_servers=kafka.bootstrap, kafka__replication="1", kafka__beats_topic=beats
    )
    ensure_topics(cfg.kafka.client_config(), [beats], 2, 1)
    found = {f.what: f for f in check_kafka(cfg)}
    assert found[f"kafka {kafka.bootstrap}"].level == Level.OK
    wrong = found[f"kafka topic {beats}"]  # made with 2 partitions, the config says 48
    assert wrong.level == Level.WARN and "has 2 partitions, [kafka] partitions says 48" in wrong.detail
    assert found["kafka topic readings"].level == Level.OK

    three = check_kafka(
        load(tmp_path, kafka__bootstrap_servers=kafka.bootstrap)
    )  # replication 3 on one broker
    assert three[0].level == Level.PROBLEM and "1 broker(s) for replication 3" in three[0].detail

    nobody = f"127.0.0.1:{servers.free_port()}"
    gone = check_kafka(load(tmp_path, kafka__bootstrap_servers=nobody))
    assert [f.level for f in gone] == [Level.PROBLEM] and "bootstrap_servers" in gone[0].fix
