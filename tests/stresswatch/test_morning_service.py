"""Morning readings through the service: started by MQTT, by the command line and on its own; spoiled
readings; a restart in the middle; the person's local morning. Real Mosquitto and InfluxDB 1.6.7."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from servers import wait_for

from collector.artifacts import inject
from collector.events import Acceleration, Beat, Motion, MotionKind
from collector.simulator import phase, simulate, to_beats
from sinks.store import StateLock
from stresswatch import config
from stresswatch.service import Service

BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str, zone=BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


class Clock:
    """The service's clock: the time of the last beat the strap handed over."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class LiveStrap:
    """A live source (not a replay) of simulated beats on the virtual clock: a second of beats per
    turn of the event loop; `hold(t)` pauses it before the beat at t (e.g. until a reading is asked)."""

    finite = False

    def __init__(self, beats: list[Beat], clock: Clock, hold=None):
        self.beats, self.clock, self.hold = beats, clock, hold
        self.done = False

    async def run(self, emit, stop: asyncio.Event) -> None:
        i, n = 0, len(self.beats)
        while i < n and not stop.is_set():
            if self.hold is not None and self.hold(self.beats[i].t):
                await asyncio.sleep(0.01)
                continue
            end = self.beats[i].t + 1.0
            chunk = []
            while i < n and self.beats[i].t < end:
                chunk.append(self.beats[i])
                i += 1
            self.clock.t = chunk[-1].t
            emit(chunk)
            await asyncio.sleep(0.002)
        self.done = True
        await stop.wait()


def calm(minutes: float, start: float, seed: int = 1, person: str = "ann", **kw) -> list[Beat]:
    return to_beats(simulate([phase("calm", minutes, **kw)], seed=seed, start=start), person, "strap")


def write_config(tmp_path: Path, broker=None, influx=None, zone="Europe/Berlin", auto=True, extra="") -> Path:
    text = (
        f'[service]\ntimezone = "{zone}"\n[state]\ndirectory = "{tmp_path / "state"}"\n'
        f'[[people]]\nname = "ann"\nmorning_posture = "lying"\nmorning_auto = {"true" if auto else "false"}\n'
        f'[[devices]]\nperson = "ann"\naddress = "A0:9E:1A:00:00:07"\n' + extra
    )
    if broker is not None:
        text += f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
    if influx is not None:
        text += (
            f'[influx]\nurl = "{influx.url}"\napi = "v1"\nbucket = "stresswatch"\nflush_interval_s = 0.2\n'
        )
    path = tmp_path / "stresswatch.toml"
    path.write_text(text)
    return path


def run_service(
    cfg, strap: LiveStrap, clock: Clock, until, during=None, timeout: float = 60.0, **kw
) -> Service:
    """Run the service on `strap` until `until(service)` holds (or fail after `timeout` s);
    `during(service)` runs once the service is up."""
    service = Service(cfg, [strap], clock=clock, **kw)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        await asyncio.sleep(0.05)
        if during is not None:
            await asyncio.to_thread(during, service)
        deadline = time.monotonic() + timeout
        while not until(service):
            assert time.monotonic() < deadline, "timed out"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.02)
        stop.set()
        await task

    asyncio.run(main())
    return service


class Listener:
    """A subscriber on the real broker: every message under stresswatch/ and homeassistant/."""

    def __init__(self, broker, topics=("stresswatch/#", "homeassistant/#")):
        self.got: queue.Queue = queue.Queue()
        self.messages: list = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.got.put((m.topic, m.payload, m.retain))
        self.client.connect("127.0.0.1", broker.port)
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def drain(self) -> list:
        while not self.got.empty():
            self.messages.append(self.got.get())
        return self.messages

    def on(self, topic: str) -> list:
        return [json.loads(p) for t, p, _ in self.drain() if t == topic and p]

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def last_status(listener: Listener) -> str | None:
    """The status the last message on stresswatch/ann/measurement that reached `listener` says."""
    progress = listener.on("stresswatch/ann/measurement")
    return progress[-1]["status"] if progress else None


def ask(broker, topic: str, payload: str) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.publish(topic, payload, qos=1).wait_for_publish(10)
    c.loop_stop()
    c.disconnect()


# -- started by MQTT (the Home Assistant button's message) -----------------------------------------


def test_a_reading_asked_for_on_mqtt_says_its_progress_and_publishes_the_result(broker, influxdb, tmp_path):
    import servers

    cfg = config.load(write_config(tmp_path, broker, influxdb, auto=False))
    t0 = local("2026-01-15T07:10")
    clock = Clock(t0)
    beats = calm(6.0, t0)
    asked = []
    strap = LiveStrap(beats, clock, hold=lambda t: t > t0 + 30 and not asked)
    listener = Listener(broker)

    def press(service):
        assert wait_for(
            lambda: any(t.endswith("/button/stresswatch_ann/measure/config") for t, _, _ in listener.drain()),
            10,
        ), "no discovery of the button"
        ask(broker, "stresswatch/ann/measure", "start")  # what the Home Assistant button sends
        assert wait_for(lambda: service.people["ann"].morning is not None, 10), "the button started nothing"
        asked.append(True)

    def finished(service):
        return service.people["ann"].engine.days.open.morning_ln_rmssd is not None

    try:
        service = run_service(cfg, strap, clock, finished, during=press)
        wait_for(lambda: listener.on("stresswatch/ann/morning") and last_status(listener) == "done", 5)
        progress = listener.on("stresswatch/ann/measurement")
        results = listener.on("stresswatch/ann/morning")
    finally:
        listener.stop()
    statuses = [p["status"] for p in progress]
    assert statuses[0] == "idle" and statuses[-1] == "done"
    running = [p for p in progress if p["status"] in ("waiting", "stabilising", "measuring")]
    assert {p["status"] for p in running} >= {"stabilising", "measuring"} and len(running) >= 10
    lefts = [p["seconds_left"] for p in running]
    assert lefts[0] == 120 and lefts[-1] <= 5 and all(b <= a + 1 for a, b in itertools.pairwise(lefts))
    assert all(p["trigger"] == "mqtt" and p["posture"] == "lying" for p in running)
    done = progress[-1]["result"]
    assert len(results) == 1 and results[0] == done
    assert done["valid"] is True and done["posture"] == "lying" and done["date"] == "2026-01-15"
    assert 3.0 < done["ln_rmssd"] < 5.0 and 55 < done["hr_bpm"] < 65 and done["valid_mornings"] == 1
    assert service.people["ann"].engine.days.open.morning_ln_rmssd == pytest.approx(
        done["ln_rmssd"], abs=1e-4
    )
    # retained: a phone or Home Assistant connecting later gets the last reading
    late = Listener(broker, topics=("stresswatch/ann/morning",))
    try:
        assert wait_for(late.drain, 5)
        assert late.messages and late.messages[0][2] is True and json.loads(late.messages[0][1]) == done
    finally:
        late.stop()
    rows = servers.influx_query(
        influxdb, "SELECT ln_rmssd, hr_bpm, posture, trigger FROM morning", db="stresswatch"
    )
    values = rows["results"][0]["series"][0]["values"]
    assert len(values) == 1 and values[0][1] == pytest.approx(done["ln_rmssd"], abs=1e-3)
    assert values[0][3:] == ["lying", "mqtt"]


def test_a_retained_or_malformed_request_starts_nothing(broker, tmp_path, caplog):
    """A `start` left retained on the broker would start a reading at every reconnect."""
    cfg = config.load(write_config(tmp_path, broker, auto=False))
    t0 = local("2026-01-15T07:10")
    clock = Clock(t0)
    strap = LiveStrap(calm(3.0, t0), clock)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.publish("stresswatch/ann/measure", "start", qos=1, retain=True).wait_for_publish(10)

    def send(service):
        wait_for(lambda: "ignored a retained morning reading request" in caplog.text, 5)
        c.publish("stresswatch/ann/measure", "please", qos=1).wait_for_publish(10)
        wait_for(lambda: "got 'please'" in caplog.text, 5)

    try:
        with caplog.at_level(logging.WARNING):
            service = run_service(cfg, strap, clock, lambda s: strap.done, during=send)
    finally:
        c.publish("stresswatch/ann/measure", "", qos=1, retain=True).wait_for_publish(10)  # clear it
        c.loop_stop()
        c.disconnect()
    assert service.people["ann"].engine.days.open.morning_time is None
    assert "ignored a retained morning reading request on stresswatch/ann/measure" in caplog.text
    assert "expected start, stop or JSON, got 'please'" in caplog.text


# -- started by the command line -----------------------------------------------------------------


def test_the_command_line_asks_the_running_service_and_prints_the_result(broker, tmp_path):
    path = write_config(tmp_path, broker, auto=False)
    cfg = config.load(path)
    t0 = local("2026-01-15T07:10")
    clock = Clock(t0)
    asked = []
    strap = LiveStrap(calm(6.0, t0), clock, hold=lambda t: t > t0 + 30 and not asked)
    outcome = {}

    def command(service):
        proc = subprocess.Popen(
            [sys.executable, "-m", "stresswatch.cli", "--config", str(path), "measure"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        deadline = time.monotonic() + 30
        while service.people["ann"].morning is None:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        asked.append(True)
        outcome["out"], outcome["err"] = proc.communicate(timeout=60)
        outcome["code"] = proc.returncode

    with StateLock(tmp_path / "state"):  # as `stresswatch run` holds it
        service = run_service(cfg, strap, clock, lambda s: "code" in outcome, during=command)
    out = outcome["out"]
    assert outcome["code"] == 0, outcome["err"][-2000:]
    lines = out.splitlines()
    assert lines[0].startswith(f"asked the running service (PID {os.getpid()}) for a morning reading of ann")
    assert any(line.startswith("settling: ") for line in lines) and any(
        line.startswith("measuring: ") for line in lines
    )
    result = service.people["ann"].engine.days.open
    assert lines[-1].startswith(f"morning reading: lnRMSSD {result.morning_ln_rmssd:.2f}")
    assert result.morning_trigger == "cli"


def test_measure_with_a_service_but_no_mqtt_says_what_to_do(tmp_path):
    path = write_config(tmp_path)
    with StateLock(tmp_path / "state"):
        proc = subprocess.run(
            [sys.executable, "-m", "stresswatch.cli", "--config", str(path), "measure"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        f"a stresswatch service (PID {os.getpid()}) runs" in proc.stderr and "set [mqtt] url" in proc.stderr
    )


@pytest.mark.slow
def test_measure_for_someone_without_a_strap_or_unknown_says_so(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f'[state]\ndirectory = "{tmp_path / "state"}"\n[[people]]\nname = "bo"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "--config", str(path), "measure"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no [[devices]] strap is configured for 'bo'" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "--config", str(path), "measure", "--person", "cy"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--person 'cy' is not configured (people: bo)" in proc.stderr


# -- started on its own --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_strap_put_on_in_the_morning_window_starts_a_reading_on_its_own_once_a_day(tmp_path):
    cfg = config.load(write_config(tmp_path))
    t0 = local("2026-01-15T06:40")
    clock = Clock(t0)
    # On at 06:40 and still for 4 min; off; on again at 07:30 (a second time that morning); and at
    # 14:00 (outside the window).
    beats = calm(4.0, t0) + calm(3.0, t0 + 50 * 60, seed=2) + calm(3.0, local("2026-01-15T14:00"), seed=3)
    seen = []
    strap = LiveStrap(beats, clock)
    service = run_service(
        cfg, strap, clock, lambda s: strap.done, on_measurement=lambda who, p: seen.append(p)
    )
    running = ("waiting", "stabilising", "measuring")
    starts = [
        b
        for a, b in itertools.pairwise([{"status": "idle"}, *seen])
        if b["status"] in running and a["status"] not in running
    ]
    done = [p for p in seen if p["status"] == "done"]
    assert len(done) == 1 and done[0]["trigger"] == "auto" and done[0]["result"]["trigger"] == "auto"
    assert len(starts) == 1  # not again at 07:30 (a valid reading today), nor at 14:00 (outside the window)
    today = service.people["ann"].engine.days.open
    assert today.morning_ln_rmssd == pytest.approx(done[0]["result"]["ln_rmssd"], abs=1e-4)
    assert today.date == "2026-01-15"


def test_a_replay_never_starts_a_reading_on_its_own(tmp_path):
    from stresswatch.sources import ReplaySource

    cfg = config.load(write_config(tmp_path))
    t0 = local("2026-01-15T06:40")
    service = Service(cfg, [ReplaySource(calm(4.0, t0))], clock=Clock(t0))
    asyncio.run(service.run(asyncio.Event()))
    assert (
        service.people["ann"].engine.days.open is None
        or service.people["ann"].engine.days.open.morning_time is None
    )


# -- spoiled readings ----------------------------------------------------------------------------


def test_a_reading_spoiled_by_movement_says_why_asks_again_and_stores_nothing(broker, tmp_path, caplog):
    cfg = config.load(write_config(tmp_path, broker, auto=False))
    t0 = local("2026-01-15T07:10")
    clock = Clock(t0)
    # still until the measured minute begins, then up and walking about
    beats = to_beats(
        simulate(
            [phase("rest", 1.1), phase("rest", 3.0, "walking", hr_bpm=104, rsa_ms=10)], seed=4, start=t0
        ),
        "ann",
        "strap",
    )
    asked = []
    strap = LiveStrap(beats, clock, hold=lambda t: t > t0 + 5 and not asked)
    listener = Listener(broker, topics=("stresswatch/ann/#",))

    def request(service):
        service._loop.call_soon_threadsafe(lambda: asked.append(service.measure("ann", "mqtt")))

    try:
        with caplog.at_level(logging.INFO):
            service = run_service(
                cfg, strap, clock, lambda s: asked and s.people["ann"].morning is None, during=request
            )
        wait_for(lambda: last_status(listener) == "failed", 5)
        progress = listener.on("stresswatch/ann/measurement")
        morning = listener.on("stresswatch/ann/morning")
    finally:
        listener.stop()
    failed = progress[-1]
    assert failed["status"] == "failed" and failed["failure"] == "movement" and failed["retry"] is True
    assert "heart rate changed by" in failed["reason"] and "start it again" in failed["reason"]
    assert morning == []  # nothing published, nothing stored
    today = service.people["ann"].engine.days.open
    assert today.morning_ln_rmssd is None and today.morning_failed == 1
    assert "ann: morning reading failed (movement): Your heart rate changed by" in caplog.text
    assert "Asked to take it again." in caplog.text


def test_a_reading_spoiled_by_artifacts_says_why_in_the_log_and_stores_nothing(tmp_path, caplog):
    cfg = config.load(write_config(tmp_path, auto=False))
    t0 = local("2026-01-15T07:10")
    clean = calm(4.0, t0, seed=5)
    times, _ = inject(np.array([t0] + [b.t for b in clean]), 0.03, seed=5)
    beats = [Beat("ann", "strap", float(b), float((b - a) * 1000)) for a, b in itertools.pairwise(times)]
    clock = Clock(t0)
    seen = []
    strap = LiveStrap(beats, clock, hold=lambda t: not seen)
    with caplog.at_level(logging.INFO):
        service = run_service(
            cfg,
            strap,
            clock,
            lambda s: seen and seen[-1]["status"] in ("failed", "done"),
            during=lambda s: s._loop.call_soon_threadsafe(s.measure, "ann", "cli"),
            on_measurement=lambda who, p: seen.append(p),
        )
    assert seen[-1]["status"] == "failed" and seen[-1]["failure"] == "artifacts"
    assert "had to be corrected" in seen[-1]["reason"]
    assert "ann: morning reading failed (artifacts):" in caplog.text
    assert service.people["ann"].engine.days.open.morning_ln_rmssd is None


def strap_acceleration(
    start: float, seconds: int, walking: tuple[float, float] | None = None, seed: int = 6
) -> list[Acceleration]:
    """A strap's accelerometer at 25 Hz in 1 s frames, as collector/pmd.py hands them over: still
    (gravity on y, 5 mg noise), walking (108 steps/min, 315 mg; as tests/processing/test_motion.py)
    over [walking[0], walking[1])."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(seconds):
        t = start + k + np.arange(25) / 25.0
        y = 1000.0 + rng.normal(0, 5.0, 25)
        if walking is not None:
            stepping = (t >= walking[0]) & (t < walking[1])
            y = y + stepping * 315.0 * np.sin(2 * np.pi * 1.8 * (t - walking[0]))
        x, z = rng.normal(0, 5.0, (2, 25))
        frames.append(Acceleration("ann", "strap", tuple(t), tuple(x), tuple(y), tuple(z), source="acc"))
    return frames


def take_reading(tmp_path, motion: list) -> list[dict]:
    """A requested reading at 07:10 on calm beats with `motion` events among them; what it said."""
    tmp_path.mkdir(exist_ok=True)
    cfg = config.load(write_config(tmp_path, auto=False))
    t0 = local("2026-01-15T07:10")
    seen = []
    service = Service(cfg, [], clock=Clock(t0), on_measurement=lambda who, p: seen.append(p))
    service.measure("ann", "cli", now=t0)
    events = sorted(
        calm(4.0, t0, seed=6) + motion, key=lambda e: e.t[0] if isinstance(e, Acceleration) else e.t
    )
    for e in events:
        service.events([e])
        if seen[-1]["status"] in ("done", "failed"):
            break
    service.sinks.close()
    return seen


def test_a_short_walk_the_strap_s_accelerometer_sees_spoils_the_reading(tmp_path):
    """Ten seconds of walking in the measured minute: too short for the minute's readings to call
    it activity (a quarter of their window, processing/motion.py), and the heart rate is calm, so
    only the accelerometer, classified by the pipeline, can tell."""
    t0 = local("2026-01-15T07:10")
    still = take_reading(tmp_path / "still", strap_acceleration(t0, 240))
    assert still[-1]["status"] == "done"
    seen = take_reading(tmp_path / "walk", strap_acceleration(t0, 240, walking=(t0 + 90, t0 + 100)))
    assert seen[-1]["status"] == "failed" and seen[-1]["failure"] == "movement"
    assert "the motion sensor says so" in seen[-1]["reason"]


@pytest.mark.parametrize(
    "kind, spoils", [(MotionKind.WALKING, True), (MotionKind.IN_VEHICLE, False), (MotionKind.STILL, False)]
)
def test_a_motion_source_s_report_in_the_measured_minute_spoils_it_only_when_it_says_moving(
    tmp_path, kind, spoils
):
    """A foot pod's (or the phone's) Motion as processing/motion.py reads it: a car is neither
    still nor moving, so it does not throw a reading away."""
    t0 = local("2026-01-15T07:10")
    seen = take_reading(tmp_path, [Motion("ann", "pod", t0 + 95, kind, span_s=5.0, source="rsc")])
    assert seen[-1]["status"] == ("failed" if spoils else "done")
    if spoils:
        assert seen[-1]["failure"] == "movement" and "the motion sensor says so" in seen[-1]["reason"]


# -- a restart in the middle ---------------------------------------------------------------------


def test_a_stop_in_the_middle_says_stopped_and_a_kill_leaves_no_half_reading(broker, influxdb, tmp_path):
    import servers

    cfg = config.load(write_config(tmp_path, broker, influxdb, auto=False))
    t0 = local("2026-01-15T07:10")
    beats = calm(5.0, t0)
    listener = Listener(broker, topics=("stresswatch/ann/#",))
    try:
        # 1. A clean stop (SIGTERM) 90 s into the reading.
        clock = Clock(t0)
        strap = LiveStrap([b for b in beats if b.t < t0 + 90], clock)
        service = run_service(
            cfg,
            strap,
            clock,
            lambda s: strap.done,
            during=lambda s: s._loop.call_soon_threadsafe(s.measure, "ann", "mqtt", None, t0),
        )
        wait_for(lambda: last_status(listener) == "stopped", 5)
        progress = listener.on("stresswatch/ann/measurement")
        assert progress[-2]["status"] == "measuring" and progress[-1]["status"] == "stopped"
        assert "nothing was stored" in progress[-1]["reason"]
        assert service.people["ann"].engine.days.open.morning_failed == 0  # not the person's failure
        # 2. A kill: the state saved mid-reading (as every 5 min), then the process is gone.
        clock = Clock(t0 + 600)
        crashed = Service(cfg, [], clock=clock)
        crashed.measure("ann", "mqtt", now=t0 + 600)
        crashed.events(calm(1.5, t0 + 600, seed=7))
        assert crashed.people["ann"].morning.phase(t0 + 690) == "measuring"
        crashed._save(crashed.people["ann"], force=True)
        crashed.sinks.close()  # no finish(): nothing said, nothing stored
        # 3. The next start: no half reading anywhere; the measurement topic says idle.
        clock = Clock(t0 + 1200)
        strap = LiveStrap(calm(0.5, t0 + 1200, seed=8), clock)
        said_before = len(listener.on("stresswatch/ann/measurement"))
        again = run_service(cfg, strap, clock, lambda s: strap.done)
        wait_for(lambda: len(listener.on("stresswatch/ann/measurement")) > said_before, 5)
        assert listener.on("stresswatch/ann/measurement")[-1]["status"] in ("idle", "stopped")
        assert listener.on("stresswatch/ann/morning") == []
    finally:
        listener.stop()
    today = again.people["ann"].engine.days.open
    assert today.morning_ln_rmssd is None and today.morning_failed == 0
    assert again.people["ann"].morning is None
    rows = servers.influx_query(influxdb, "SELECT * FROM morning", db="stresswatch")
    assert "series" not in rows["results"][0]
    late = Listener(broker, topics=("stresswatch/ann/measurement",))
    try:
        assert wait_for(late.drain, 5)
        assert json.loads(late.messages[0][1])["status"] in (
            "idle",
            "stopped",
        )  # retained: never a stale "measuring"
    finally:
        late.stop()


# -- the person's local morning ------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone, on, starts, date",
    [
        ("America/New_York", "2026-03-08T06:30", True, "2026-03-08"),  # the day the clocks go forward
        ("America/New_York", "2026-11-01T06:30", True, "2026-11-01"),  # ... and back
        ("America/New_York", "2026-03-08T01:30", False, None),  # 06:30 UTC is night in New York
        ("Pacific/Auckland", "2026-01-10T06:30", True, "2026-01-10"),  # 17:30 UTC the day before
    ],
)
def test_a_morning_is_the_persons_local_morning(tmp_path, zone, on, starts, date):
    cfg = config.load(write_config(tmp_path, zone=zone))
    t0 = local(on, ZoneInfo(zone))
    clock = Clock(t0)
    seen = []
    strap = LiveStrap(calm(4.0, t0), clock)
    service = run_service(
        cfg, strap, clock, lambda s: strap.done, on_measurement=lambda who, p: seen.append(p)
    )
    done = [p for p in seen if p["status"] == "done"]
    if not starts:
        assert done == [] and all(p["status"] == "idle" for p in seen)
        return
    assert len(done) == 1 and done[0]["result"]["date"] == date
    assert service.people["ann"].engine.days.open.date == date


# -- the command line with no service running: it takes the strap itself --------------------------


@pytest.mark.slow
def test_the_command_line_with_no_service_connects_to_the_strap_and_stores_the_reading(tmp_path):
    """A real `stresswatch measure` subprocess, unmodified bleak over the fake BlueZ; a short
    protocol (no stabilisation, 30 s measured) keeps it under a minute."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fake_bluez import FakeBlueZ, FakeStrap, PrivateSystemBus

    from sinks.store import StateStore

    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    bus = PrivateSystemBus()
    path = write_config(
        tmp_path, zone="UTC", auto=False, extra="[morning]\nstabilise_s = 0\nmeasure_s = 30\n"
    )
    # a resting heart: 60 bpm with breathing (5 beats a breath), in 1/1024 s
    script = [round(1024 * (1.0 + 0.04 * np.sin(2 * np.pi * i / 5))) for i in range(5)]

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        bluez.add(FakeStrap("A0:9E:1A:00:00:07", "Polar H10 7", script))
        heart = asyncio.create_task(bluez.run_heartbeats(0.5))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stresswatch.cli",
            "--config",
            str(path),
            "measure",
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 150)
        finally:
            heart.cancel()
        return proc.returncode, out.decode(), err.decode()

    try:
        code, out, err = asyncio.run(scenario())
    finally:
        bus.stop()
    assert code == 0, (out, err[-3000:])
    lines = out.splitlines()
    assert lines[0] == "no service runs: connecting to ann's strap for a morning reading"
    assert any(line.startswith("measuring: ") for line in lines)
    assert lines[-1].startswith("morning reading: lnRMSSD ") and "heart rate 60 bpm" in lines[-1]
    saved = StateStore(tmp_path / "state" / "state.db").load_state("alerts/ann")
    today = saved["days"]["open"]
    assert today["morning_trigger"] == "cli" and today["morning_posture"] == "lying"
    assert f"lnRMSSD {today['morning_ln_rmssd']:.2f}" in lines[-1]


# -- the engines hear the time; the settings are checked ---------------------------------------------


def test_the_service_tick_closes_a_morning_readers_day_at_midnight(tmp_path):
    cfg = config.load(write_config(tmp_path, auto=False))
    t0 = local("2026-01-15T07:10")
    days = []
    service = Service(cfg, [], clock=Clock(t0), on_daily=lambda who, d: days.append(d))
    service.measure("ann", "mqtt", now=t0)
    service.events(calm(3.0, t0))
    assert service.people["ann"].engine.days.open.morning_ln_rmssd is not None
    service.tick(local("2026-01-15T23:59"), engines=True)
    assert days == []
    service.tick(local("2026-01-16T00:05"), engines=True)
    assert [d.date for d in days] == ["2026-01-15"] and days[0].morning_ln_rmssd is not None
    assert days[0].hrv_source == "morning"


def test_morning_settings_are_checked_naming_the_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[[people]]\nname = "ann"\nmorning_posture = "standing"\nmorning_from = "5am"\n'
        '[morning]\nmeasure_s = 10\n[alerts]\nhrv_source = "wrist"\n'
    )
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    problems = err.value.problems
    assert "people[0].morning_posture: must be one of seated, lying, got 'standing'" in problems
    assert "people[0].morning_from: expected a time as HH:MM, got '5am'" in problems
    assert "morning.measure_s: must be >= 30, got 10" in problems
    assert "alerts.hrv_source: must be one of auto, night, morning, got 'wrist'" in problems


def test_a_request_during_a_reading_started_on_its_own_follows_that_reading_to_its_end(tmp_path):
    cfg = config.load(write_config(tmp_path))
    t0 = local("2026-01-15T06:40")
    seen = []
    beats = calm(4.0, t0)
    service = Service(
        cfg, [LiveStrap([], Clock(t0))], clock=Clock(t0), on_measurement=lambda who, p: seen.append(p)
    )
    service.events(beats[:30])
    assert service.people["ann"].morning.trigger == "auto"
    answer = service.measure("ann", "cli", request="r1", now=beats[29].t)
    assert answer["note"] == "a reading is already running: this one goes on" and answer["request"] == "r1"
    service.events(beats[30:])
    done = seen[-1]
    assert done["status"] == "done" and done["request"] == "r1" and done["result"]["trigger"] == "auto"
