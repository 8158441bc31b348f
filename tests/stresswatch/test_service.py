"""`stresswatch run` end to end: a strap on a fake BlueZ -> the service -> a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import servers
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_bluez import FakeBlueZ, FakeStrap, PrivateSystemBus

H10 = "A0:9E:1A:00:00:07"
BAND = "F0:13:C3:00:00:08"  # an arm band that sends heart rate without RR intervals


def run_service(
    broker, cfg: Path, straps: list[FakeStrap], done, speed: float = 1.0, timeout_s: float = 60.0
):
    """`stresswatch run --readings` with `straps` on a fake BlueZ, until `done(seen)` holds for the
    latest message of each topic on the broker (or `timeout_s`), then SIGTERM. Returns the exit
    code, stdout, stderr and the messages seen."""
    bus = PrivateSystemBus()
    got: queue.Queue = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.put(m)
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("#")
    sub.loop_start()

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        for strap in straps:
            bluez.add(strap)
        beats = asyncio.create_task(bluez.run_heartbeats(0.5, speed=speed))
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stresswatch.cli",
            "--config",
            str(cfg),
            "run",
            "--readings",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        seen: dict[str, mqtt.MQTTMessage] = {}
        for _ in range(int(timeout_s * 10)):
            await asyncio.sleep(0.1)
            while not got.empty():
                m = got.get()
                seen[m.topic] = m
            if done(seen):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        beats.cancel()
        await asyncio.sleep(0.5)
        while not got.empty():
            m = got.get()
            seen[m.topic] = m
        return proc.returncode, out.decode(), err.decode(), seen

    try:
        return asyncio.run(scenario())
    finally:
        sub.loop_stop()
        bus.stop()


def needs_dbus() -> None:
    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")


def test_run_collects_from_a_strap_and_publishes_state_and_device_status(broker, tmp_path):
    needs_dbus()
    cfg = tmp_path / "stresswatch.toml"
    cfg.write_text(
        f'[processing]\nstep_s = 1\n[state]\ndirectory = "{tmp_path / "state"}"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
        f'[[devices]]\nperson = "ann"\naddress = "{H10}"\n'
    )
    strap = FakeStrap(H10, "Polar H10 7", [800 + (i * 29) % 70 for i in range(50)], battery=64)
    code, out, err, seen = run_service(
        broker,
        cfg,
        [strap],
        lambda seen: "stresswatch/ann/state" in seen and f"stresswatch/ann/device/{H10}" in seen,
        speed=3.0,
    )
    assert code == 0, err[-2000:]
    state = json.loads(seen["stresswatch/ann/state"].payload)
    assert state["person"] == "ann" and 60 < state["hr_bpm"] < 90 and state["n_beats"] >= 20
    device = json.loads(seen[f"stresswatch/ann/device/{H10}"].payload)
    assert device["battery_pct"] == 64 and device["model"] == "H10"
    assert "homeassistant/sensor/stresswatch_ann/battery_a0_9e_1a_00_00_07/config" in seen
    assert seen["stresswatch/status"].payload == b"offline"  # SIGTERM is a clean shutdown
    assert "ann" in out and "HR" in out
    # the start says whether the system clock is synchronised (a warning when it is not)
    from stresswatch.timesync import kernel_clock_state

    level = "INFO" if kernel_clock_state().synchronised else "WARNING"
    assert f"{level} stresswatch.clock: system clock: " in err


@pytest.mark.slow
def test_sigterm_of_run_stops_the_straps_accelerometer_before_the_link_closes(tmp_path):
    """`stresswatch run` (a real subprocess) with an H10 that streams its accelerometer: the
    walking it streams reaches the readings as motion, and SIGTERM stops the accelerometer
    (PMD 03 02) before the link closes; an H10 left streaming stays on until its battery is empty."""
    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    bus = PrivateSystemBus()
    cfg = tmp_path / "stresswatch.toml"
    cfg.write_text(
        f'[processing]\nstep_s = 2\n[state]\ndirectory = "{tmp_path / "state"}"\n'
        f'[[devices]]\nperson = "ann"\naddress = "{H10}"\n'
    )

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        strap = bluez.add(FakeStrap(H10, "Polar H10 7", [800 + (i * 29) % 70 for i in range(50)], pmd=True))
        beats = asyncio.create_task(bluez.run_heartbeats(0.5))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stresswatch.cli",
            "--config",
            str(cfg),
            "run",
            "--readings",
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        lines = []
        try:
            async with asyncio.timeout(90):
                while not any("motion moving" in ln for ln in lines):
                    lines.append((await proc.stdout.readline()).decode())
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            beats.cancel()
        return proc.returncode, "".join(lines) + out.decode(), err.decode(), strap

    try:
        code, out, err, strap = asyncio.run(scenario())
    finally:
        bus.stop()
    assert code == 0, err[-2000:]
    assert "accelerometer streaming at 25 Hz" in err and "motion moving" in out
    assert strap.gatt_log[-2:] == ["write 03 02", "disconnect"]
    assert not strap.acc_on and strap.acc_stops == 1 and "accelerometer stopped" in err


def test_a_strap_without_rr_gives_heart_rate_says_hrv_is_unavailable_and_doctor_says_why(
    broker, influxdb, tmp_path
):
    """Row 10 of issue 16: a band notifying bytes([0x06, 72]) once a second produced nothing."""
    needs_dbus()
    cfg = tmp_path / "stresswatch.toml"
    cfg.write_text(
        f'[processing]\nstep_s = 1\n[state]\ndirectory = "{tmp_path / "state"}"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
        f'[influx]\nurl = "{influxdb.url}"\napi = "v1"\nbucket = "stresswatch"\nflush_interval_s = 1\n'
        f'[[devices]]\nperson = "ann"\naddress = "{BAND}"\n'
    )
    state_topic, device_topic = "stresswatch/ann/state", f"stresswatch/ann/device/{BAND}"

    def done(seen) -> bool:
        return (
            state_topic in seen
            and device_topic in seen
            and json.loads(seen[device_topic].payload).get("sends_rr") is False
        )

    band = FakeStrap(BAND, "HRM band", sends_rr=False, hr_bpm=72, model="HRM-Fit", battery=55)
    code, out, err, seen = run_service(broker, cfg, [band], done)
    assert code == 0, err[-2000:]

    state = json.loads(seen[state_topic].payload)
    assert state["hr_bpm"] == 72.0 and state["n_beats"] == 0 and state["state"] == "unknown"
    assert state["hrv_unavailable"] == "the strap sends heart rate without RR intervals"
    assert state["rmssd_ms"] is None and state["ln_rmssd"] is None and state["stress_score"] is None
    assert state["activity"] == "rest" and state["quality"] == 0.0
    device = json.loads(seen[device_topic].payload)
    assert (
        device["sends_rr"] is False and device["beats_last_min"] == 0 and device["hr_without_rr_last_min"] > 5
    )
    assert device["model"] == "HRM-Fit" and device["battery_pct"] == 55
    # found out once, said once (not once per notification)
    said = [ln for ln in err.splitlines() if "without RR intervals" in ln]
    assert len(said) == 1 and f"{BAND}: the strap sends heart rate without RR intervals" in said[0], err[
        -2000:
    ]
    assert "HR  72.0" in out and "no HRV: the strap sends heart rate without RR intervals" in out

    # InfluxDB 1.6.7 took the readings: heart rate and the reason, no HRV field
    q = "SELECT hr_bpm, n_beats, hrv_unavailable, rmssd_ms, state FROM hrv WHERE person = 'ann'"
    rows = servers.influx_query(influxdb, q, db="stresswatch")["results"][0]["series"][0]["values"]
    assert rows and {tuple(r[1:]) for r in rows} == {
        (72.0, 0, "the strap sends heart rate without RR intervals", None, "unknown")
    }

    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "--config", str(cfg), "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = proc.stdout.splitlines()
    [k] = [k for k, ln in enumerate(lines) if f"strap {BAND} (ann)" in ln]
    assert lines[k].startswith("warn") and "sends heart rate without RR intervals" in lines[k]
    assert "HRV and the stress state are unavailable" in lines[k] and "scan --details" in lines[k + 1]


@pytest.mark.slow
def test_scan_command_lists_the_straps_with_details_and_whether_they_send_rr(tmp_path):
    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    bus = PrivateSystemBus()

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        bluez.add(FakeStrap(H10, "Polar H10 7", [820] * 10))
        bluez.add(FakeStrap(BAND, "HRM band", sends_rr=False, hr_bpm=72, model="HRM-Fit"))
        bluez.add(FakeStrap("11:22:33:44:55:66", "Scale", is_hr=False))
        beats = asyncio.create_task(bluez.run_heartbeats(0.5))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stresswatch.cli",
            "scan",
            "--timeout",
            "2",
            "--details",
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        beats.cancel()
        return proc.returncode, out.decode()

    try:
        code, out = asyncio.run(scenario())
    finally:
        bus.stop()
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ":" in ln and "dBm" in ln}
    assert sorted(lines) == sorted([H10, BAND])
    assert "model H10" in lines[H10] and "battery_pct 87" in lines[H10] and "hr_bpm 70" in lines[H10]
    assert lines[H10].endswith("sends_rr True")
    assert "model HRM-Fit" in lines[BAND] and "hr_bpm 72" in lines[BAND]
    assert lines[BAND].endswith("sends_rr False (heart rate only: no HRV or stress state from this strap)")


def test_devices_config_is_checked(tmp_path):
    from stresswatch import config

    path = tmp_path / "c.toml"
    path.write_text(
        '[[devices]]\nperson = "bob"\n[[devices]]\naddress = "nope"\n[[devices]]\nname = "Polar*"\nperson = "cy"\n'
    )
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    assert "devices[0]: give an address or a name pattern" in err.value.problems
    assert "devices[1].address: must look like AA:BB:CC:DD:EE:FF, got 'nope'" in err.value.problems
    path.write_text('[[devices]]\nname = "Polar*"\nperson = "cy"\n')
    assert [p.name for p in config.load(path, environ={}).people] == ["cy"]  # no phantom default "me"


def test_beats_are_stored_once_after_correction_with_the_correction_applied(influxdb, tmp_path):
    """The service writes each beat after artifact correction, so `beats.artifact` names the repair."""
    import servers

    from stresswatch import config
    from stresswatch.service import Service
    from stresswatch.sources import ReplaySource, simulated_day

    cfg = config.load(
        None,
        environ={
            "STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"),
            "STRESSWATCH_INFLUX__URL": influxdb.url,
            "STRESSWATCH_INFLUX__API": "v1",
            "STRESSWATCH_INFLUX__BUCKET": "stresswatch",
        },
    )
    beats, _ = simulated_day(seed=3, artifacts=0.01, person="me")
    beats = beats[:1500]
    service = Service(cfg, [ReplaySource(beats)])
    asyncio.run(service.run(asyncio.Event()))
    corrected = service.pipelines["me"].corrector.counts.total

    def count(where: str) -> int:
        rows = servers.influx_query(
            influxdb, f"SELECT count(rr_ms) FROM beats WHERE {where}", db="stresswatch"
        )
        series = rows["results"][0].get("series")
        return series[0]["values"][0][1] if series else 0

    # `artifact` is a string field: InfluxDB keeps it (VictoriaMetrics would drop it)
    by_kind = {kind: count(f"artifact = '{kind}'") for kind in ("ectopic", "missed", "extra", "longshort")}
    marked = count("artifact != 'none'")
    assert corrected > 20 and marked == sum(by_kind.values()) >= corrected  # a missed beat becomes two
    assert by_kind["ectopic"] > 0 and by_kind["missed"] > 0 and by_kind["extra"] > 0


def test_a_strap_task_that_fails_is_logged_and_restarted(caplog):
    from collector.ble import DeviceSpec, StrapLink
    from stresswatch.sources import StrapSource

    link = StrapLink(DeviceSpec("ann", H10), emit=None)
    calls = []

    async def scenario():
        stop = asyncio.Event()

        async def run(stop_event):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug in the link loop")
            stop.set()

        link.run = run
        source = StrapSource([link], restart_after_s=0.05)
        await asyncio.wait_for(source.run(lambda events: None, stop), 10)
        return source

    source = asyncio.run(scenario())
    assert len(calls) == 2 and source.restarts == 1
    assert any("restarting" in r.getMessage() and r.exc_info for r in caplog.records)


def test_run_without_devices_says_what_to_configure(tmp_path):
    import subprocess

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndirectory = "{tmp_path / "state"}"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "--config", str(cfg), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"stresswatch: config error: {cfg}: devices: no [[devices]] configured; `stresswatch scan` lists nearby straps"
    ]


@pytest.mark.slow
def test_scan_without_a_system_bus_is_one_line_naming_dbus_and_exit_2(tmp_path):
    socket = tmp_path / "system_bus_socket"
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "scan", "--timeout", "1"],
        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    want = f"no D-Bus system bus at {socket}: install and start dbus (apt install dbus)"
    assert proc.stderr == f"stresswatch: error: {want}\n"


@pytest.mark.slow
def test_run_without_a_system_bus_is_one_line_naming_dbus_and_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[state]\ndirectory = "{tmp_path / "state"}"\n[[devices]]\nperson = "ann"\naddress = "{H10}"\n'
    )
    socket = tmp_path / "system_bus_socket"
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "--config", str(cfg), "run"],
        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr
        == f"stresswatch: error: no D-Bus system bus at {socket}: install and start dbus (apt install dbus)\n"
    )


LEFT_CONNECTED = "already connected in BlueZ (left by a previous run?); disconnecting and reconnecting"


@pytest.mark.slow
def test_after_a_sigkill_the_strap_still_connected_in_bluez_is_found_and_streams_again(tmp_path):
    """A killed run cannot disconnect: BlueZ keeps the strap connected to nobody, and a connected
    strap does not advertise, so scanning never finds it again (bleak issues #315, #367). The
    next run finds it among BlueZ's connected devices, says so, and collects again."""
    import time

    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    bus = PrivateSystemBus()
    cfg = tmp_path / "stresswatch.toml"
    cfg.write_text(
        f'[processing]\nstep_s = 1\n[state]\ndirectory = "{tmp_path / "state"}"\n'
        f'[[devices]]\nperson = "ann"\naddress = "{H10}"\n'
    )

    async def start(log: Path):
        with log.open("wb") as err:  # a file, not a pipe nobody reads while the run goes on
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "stresswatch.cli",
                "--config",
                str(cfg),
                "run",
                "--readings",
                env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )

    async def a_reading_with_beats(proc, timeout: float) -> bool:
        """Whether this run prints a reading with a heart rate (made of beats it received) in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), left)
            except TimeoutError:
                return False
            if not line:
                return False  # the run ended
            if line.startswith(b"ann ") and b"HR -" not in line:
                return True
        return False

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        strap = bluez.add(FakeStrap(H10, "Polar H10 7", [800 + (i * 29) % 70 for i in range(50)]))
        heart = asyncio.create_task(bluez.run_heartbeats(0.5, speed=3.0))
        first = await start(tmp_path / "first.log")
        assert await a_reading_with_beats(first, 90), (tmp_path / "first.log").read_text()[-2000:]
        first.kill()
        await first.wait()
        # As BlueZ does for a client that died: its notification session ends, the link stays.
        for _ in range(100):
            if not strap.hr_char.notifying:
                break
            await asyncio.sleep(0.05)
        assert strap.device.connected and not strap.hr_char.notifying and strap.connections == 1
        started = time.monotonic()
        second = await start(tmp_path / "second.log")
        try:
            streams_again = await a_reading_with_beats(second, 60)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.communicate(), 30)
            heart.cancel()
        return streams_again, time.monotonic() - started, strap

    try:
        streams_again, after, strap = asyncio.run(scenario())
    finally:
        bus.stop()
    log = (tmp_path / "second.log").read_text()
    assert streams_again, log[-2000:]
    print(f"\nrestarted after a SIGKILL: a reading with beats after {after:.1f} s")
    assert f"{H10}: found {H10} {LEFT_CONNECTED}" in log
    assert strap.connections == 2  # disconnected, then connected afresh


def test_a_second_run_on_the_same_state_directory_refuses_naming_the_first_and_a_killed_one_blocks_nothing(
    broker, tmp_path
):
    """Two copies on one config took each other's MQTT session every second and shared one
    outbox. The second now stops before it connects anywhere, in one line naming the first's PID;
    the lock dies with its process, so after a SIGKILL the next start runs."""
    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    bus = PrivateSystemBus()
    state = tmp_path / "state"
    cfg = tmp_path / "stresswatch.toml"
    cfg.write_text(
        f'[processing]\nstep_s = 1\n[state]\ndirectory = "{state}"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
        f'[[devices]]\nperson = "ann"\naddress = "{H10}"\n'
    )
    status: queue.Queue = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: status.put(m.payload)
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("stresswatch/status")
    sub.loop_start()

    async def until_status(payload: bytes, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            while not status.empty():
                if status.get() == payload:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {payload!r} on stresswatch/status within {timeout:.0f} s")

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        bluez.add(FakeStrap(H10, "Polar H10 7", [800 + (i * 29) % 70 for i in range(50)], battery=64))
        beats = asyncio.create_task(bluez.run_heartbeats(0.5, speed=3.0))
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address}

        def start_run():
            return asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "stresswatch.cli",
                "--config",
                str(cfg),
                "run",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )

        first = await start_run()
        await until_status(b"online")
        lock = state / "stresswatch.lock"
        held = (lock.read_text(), lock.stat().st_mode & 0o777)
        second = await start_run()
        _, second_err = await asyncio.wait_for(second.communicate(), 60)
        still_running = first.returncode is None
        first.kill()  # SIGKILL: no clean-up, the lock goes with the process
        _, first_err = await asyncio.wait_for(first.communicate(), 30)
        await until_status(b"offline")  # the last will
        third = await start_run()
        await until_status(b"online")
        third.send_signal(signal.SIGTERM)
        _, third_err = await asyncio.wait_for(third.communicate(), 30)
        beats.cancel()
        return (
            first.pid,
            held,
            still_running,
            second.returncode,
            second_err.decode(),
            first_err.decode(),
            third.returncode,
            third_err.decode(),
        )

    try:
        pid, held, still_running, code, err, first_err, third_code, third_err = asyncio.run(scenario())
    finally:
        sub.loop_stop()
        bus.stop()
    assert held == (f"{pid}\n", 0o600)
    assert code == 2 and still_running
    assert err.splitlines() == [
        (
            f"stresswatch: error: another stresswatch (PID {pid}) is already running on the state directory {state}: "
            "stop it first, or give this one its own state.directory and mqtt.client_id"
        )
    ]
    assert "disconnected from MQTT broker" not in first_err and "took over" not in first_err
    assert third_code == 0, third_err[-2000:]
    assert (state / "stresswatch.lock").read_text() == ""  # released at the clean stop


def test_a_paced_replay_hands_over_motion_events_in_time_order():
    """Replays carry motion too: a Motion and accelerometer samples are timed like beats."""
    from collector.events import Acceleration, Beat, Gap, Motion, MotionKind
    from stresswatch.sources import ReplaySource

    events = [
        Beat("ann", "s", 100.0, 800.0),
        Motion("ann", "pod", 100.02, MotionKind.WALKING, 1.0),
        Acceleration("ann", "s", (100.03, 100.07), (0.0, 0.0), (1000.0, 1000.0), (0.0, 0.0)),
        Gap("ann", "s", 100.05, 100.06),
        Beat("ann", "s", 100.08, 800.0),
    ]
    got: list = []

    async def replay():
        await ReplaySource(events, pace=1.0).run(got.extend, asyncio.Event())

    asyncio.run(replay())
    assert got == events


def test_the_service_publishes_the_outbox_figures_with_the_device_status(broker, tmp_path):
    """Every health period (30 s) the service also publishes, retained, what waits in its outbox
    and what the outbox bounds have dropped (the counters of issue 16 row 12)."""
    from stresswatch import config
    from stresswatch.service import Service

    cfg = config.load(
        None,
        environ={
            "STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"),
            "STRESSWATCH_MQTT__URL": f"mqtt://127.0.0.1:{broker.port}",
            "STRESSWATCH_MQTT__DISCOVERY": "false",
        },
    )
    service = Service(cfg, [], timezone="UTC")
    service.store.bump("influx.dropped_overflow", 7)  # as an earlier outage left it
    got: queue.Queue = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.put(m)
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("stresswatch/outbox")
    sub.loop_start()
    try:
        assert service.sinks.mqtt.connected.wait(10)
        service.publish_health()
        live = got.get(timeout=10)
        late = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)  # subscribes afterwards
        late.on_message = lambda c, u, m: got.put(m)
        late.connect("127.0.0.1", broker.port)
        late.subscribe("stresswatch/outbox")
        late.loop_start()
        kept = got.get(timeout=10)
        late.loop_stop()
    finally:
        sub.loop_stop()
        service.sinks.close(timeout_s=2)
    assert kept.retain and kept.payload == live.payload
    assert json.loads(live.payload) == {
        "points_waiting": 0,
        "dropped_points": 7,
        "messages_waiting": 0,
        "dropped_messages": 0,
    }
