"""A home with two wearers, end to end: `stresswatch run` with two straps behind a fake BlueZ, a real
Mosquitto and a real VictoriaMetrics; a phone that answers prompts; an outage of both servers.

How the scenario is kept short and honest: a new user needs 10 minutes of rest before `stressed`
is ever declared (processing/baseline.py CALIBRATION_SAMPLES). Here both wearers are returning
users: their calibrated resting baselines are in the state store before the start, exactly as
the service saved them before a restart (`baseline/<person>`, `Baseline.to_dict`), so the
service restores them as it does after any restart. The acute rule is shortened through the
`[alerts]` keys (2 stressed minutes of 3 instead of 10 of 15), quiet hours and the sleep window
are empty so the test passes at any hour, and the hearts beat in real time (a faster heart than
the clock would be re-anchored by the beat timer and lose beats).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import queue
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from servers import vm_samples, wait_for

from alerts.timeofday import zone
from processing.baseline import Baseline
from sinks.store import StateStore
from stresswatch.config import machine_zone
from stresswatch.device_health import DeviceHealth

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_bluez import FakeBlueZ, FakeStrap, PrivateSystemBus

ANN, BOB = "A0:9E:1A:00:00:07", "A0:9E:1A:00:00:08"
# Raw strap intervals (1/1024 s). Ann is stressed: ~714 ms (84 bpm, 4 above her rest) with her
# vagal tone kept (RMSSD ~24 ms), the stress a strap without motion can judge (a larger rise, or
# RMSSD collapsing, is "too active to judge": processing/stress.py RR_GATE);
# Bob rests: ~940 ms (64 bpm) with a breathing-like swing.
STRESSED = [int(731 + 30 * math.sin(i * 2 * math.pi / 5)) for i in range(40)]
RESTING = [int(962 + 45 * math.sin(i * 2 * math.pi / 5)) for i in range(40)]


def test_device_health_counts_the_last_minute_and_ages_the_last_beat():
    h = DeviceHealth()
    assert h.report(100.0) == {
        "last_beat_age_s": None,
        "beats_last_min": 0,
        "artifacts_last_min": 0,
        "hr_without_rr_last_min": 0,
    }
    h.status = {"battery_pct": 64, "connected": True, "model": "H10"}
    for k in range(120):  # two minutes at 60 bpm, every tenth beat corrected
        h.beat(1000.0 + k, artifact=k % 10 == 0)
    now = 1000.0 + 119 + 0.5
    assert h.report(now) == {
        "battery_pct": 64,
        "connected": True,
        "model": "H10",
        "last_beat_age_s": 0.5,
        "beats_last_min": 60,
        "artifacts_last_min": 6,
        "hr_without_rr_last_min": 0,
    }
    # The strap taken off: the counts fall to zero and the age grows; nothing stays frozen.
    assert h.report(now + 90) == {
        "battery_pct": 64,
        "connected": True,
        "model": "H10",
        "last_beat_age_s": 90.5,
        "beats_last_min": 0,
        "artifacts_last_min": 0,
        "hr_without_rr_last_min": 0,
    }


def test_device_health_counts_heart_rates_without_rr_apart_from_beats():
    h = DeviceHealth()
    h.status = {"connected": True, "sends_rr": False}
    for k in range(90):  # a band sending heart rate alone, once a second
        h.heart_rate(1000.0 + k)
    report = h.report(1089.5)
    assert report["sends_rr"] is False and report["hr_without_rr_last_min"] == 60
    assert report["beats_last_min"] == 0 and report["last_beat_age_s"] is None
    assert h.report(1089.5 + 61)["hr_without_rr_last_min"] == 0  # taken off: the count falls to zero


def test_device_health_follows_a_clock_set_back():
    """NTP sets the clock an hour back while the strap streams: the beats after the step are the
    last minute's, and the age of the last beat is measured on the new clock."""
    h = DeviceHealth()
    for k in range(120):
        h.beat(5000.0 + k, artifact=False)
    for k in range(90):  # the same strap, the clock an hour back
        h.beat(5000.0 + 120 - 3600.0 + k, artifact=k % 10 == 0)
    now = 5000.0 + 120 - 3600.0 + 89 + 0.5
    assert h.report(now) == {
        "last_beat_age_s": 0.5,
        "beats_last_min": 60,
        "artifacts_last_min": 6,
        "hr_without_rr_last_min": 0,
    }
    assert h.report(now + 30) == {
        "last_beat_age_s": 30.5,
        "beats_last_min": 30,
        "artifacts_last_min": 3,
        "hr_without_rr_last_min": 0,
    }


def test_heart_rates_without_rr_in_device_health_follow_a_clock_set_back():
    """A band's heart rates before a step back of the clock are not the new clock's last minute."""
    h = DeviceHealth()
    for k in range(120):
        h.heart_rate(5000.0 + k)
    for k in range(90):  # the same band, the clock an hour back
        h.heart_rate(5000.0 + 120 - 3600.0 + k)
    now = 5000.0 + 120 - 3600.0 + 89 + 0.5
    assert h.report(now)["hr_without_rr_last_min"] == 60
    assert h.report(now + 30)["hr_without_rr_last_min"] == 30


def calibrated_baseline(hr: float, ln_rmssd: float, now: float) -> dict:
    """A returning user's resting baseline: 30 minutes of rest samples, as the service saves it."""
    b = Baseline(zone(machine_zone()))
    for k in range(60):
        t = now - 1800.0 + 30.0 * k
        wobble = (k % 5 - 2) * 0.8
        b.add_hr(t, hr + wobble)
        b.add_rest(t, ln_rmssd + wobble / 40, hr + wobble)
    assert b.calibrated
    return b.to_dict()


class Phone:
    """A second MQTT client: sees everything under stresswatch/, answers Ann's prompts `done`."""

    def __init__(self, port: int):
        self.port = port
        self.got: queue.Queue = queue.Queue()
        self.prompts: list[dict] = []
        self.devices: dict[str, list[dict]] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"phone-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda c, u, m: self.got.put(m)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("stresswatch/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def drain(self) -> None:
        while not self.got.empty():
            m = self.got.get()
            if re.fullmatch(r"stresswatch/[^/]+/prompt", m.topic):
                self.prompts.append(json.loads(m.payload))
            elif "/device/" in m.topic:
                self.devices.setdefault(m.topic.rsplit("/", 1)[1], []).append(json.loads(m.payload))

    def answer(self, prompt: dict, action: str) -> None:
        topic = f"stresswatch/{prompt['person']}/prompt/response"
        self.client.publish(
            topic, json.dumps({"id": prompt["id"], "action": action}), qos=1
        ).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(port: int, topic: str) -> bytes | None:
    got: queue.Queue = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: got.put(m)
    c.connect("127.0.0.1", port)
    c.subscribe(topic)
    c.loop_start()
    try:
        m = got.get(timeout=5)
        return m.payload if m.retain else None
    except queue.Empty:
        return None
    finally:
        c.loop_stop()
        c.disconnect()


def hrv_times(vm, person: str) -> list[int]:
    """Timestamps of the person's stored readings (VictoriaMetrics; duplicates would show twice)."""
    series = vm_samples(vm, f'hrv_hr_bpm{{person="{person}"}}')
    return sorted(ts for samples in series.values() for ts, _ in samples)


def test_two_wearers_one_prompt_answered_an_outage_loses_nothing_and_sigterm_leaves_offline(
    broker, vm, tmp_path
):
    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    state = tmp_path / "state"
    state.mkdir()
    now = time.time()
    store = StateStore(state / "state.db")
    store.save_state("baseline/ann", calibrated_baseline(80.0, 3.2, now))
    store.save_state("baseline/bob", calibrated_baseline(64.0, 3.8, now))
    store.close()
    cfg = tmp_path / "stresswatch.toml"
    cfg.write_text(
        f'[processing]\nstep_s = 5\n[state]\ndirectory = "{state}"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
        f'[influx]\nurl = "{vm.url}"\nflush_interval_s = 1\n'
        "[alerts]\nacute_n_min = 2\nacute_m_min = 3\ncooldown_min = 600\n"
        'quiet_hours = ["00:00", "00:00"]\nsleep_window = ["00:00", "00:00"]\n'
        f'[[devices]]\nperson = "ann"\naddress = "{ANN}"\n'
        f'[[devices]]\nperson = "bob"\naddress = "{BOB}"\n'
    )
    bus = PrivateSystemBus()
    phone = Phone(broker.port)
    outage: dict[str, float] = {}

    async def scenario():
        bluez = FakeBlueZ(bus.address)
        await bluez.start()
        bluez.add(FakeStrap(ANN, "Polar H10 A", STRESSED, battery=64))
        bluez.add(FakeStrap(BOB, "Polar H10 B", RESTING, battery=81))
        hearts = asyncio.create_task(bluez.run_heartbeats(1.0))
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
        out_task = asyncio.create_task(proc.stdout.read())
        err_task = asyncio.create_task(proc.stderr.read())
        try:
            # 1. Ann's sustained stress at rest: one acute prompt; the phone answers `done`.
            for _ in range(480):
                await asyncio.sleep(0.5)
                phone.drain()
                if phone.prompts:
                    break
            assert phone.prompts, "no prompt within 4 minutes"
            prompt = phone.prompts[0]
            phone.answer(prompt, "done")
            db = StateStore(state / "state.db")
            for _ in range(100):
                await asyncio.sleep(0.2)
                rec = db.prompt(prompt["id"])
                if rec and rec["status"] == "done":
                    break
            answer = db.prompt(prompt["id"])
            db.close()
            # 2. Both servers killed for a while; the readings of that time wait in the outbox.
            # The broker is killed; VictoriaMetrics is stopped (SIGTERM): it acknowledges a write
            # before it reaches disk, so a SIGKILL loses up to a second of points it had accepted,
            # which no client can prevent. Either way both are gone for the outage.
            broker.kill()
            vm.stop()
            outage["start"] = time.time()
            await asyncio.sleep(25)
            outage["end"] = time.time()
            broker.start()
            vm.start()
            phone.client.reconnect()

            def caught_up() -> bool:
                """Both outboxes empty and the outage's readings of both people stored."""
                db = StateStore(state / "state.db")
                try:
                    if db.pending("influx") or db.pending("mqtt"):
                        return False
                finally:
                    db.close()
                return all(
                    sum(outage["start"] * 1000 <= t <= outage["end"] * 1000 for t in hrv_times(vm, p)) >= 3
                    for p in ("ann", "bob")
                )

            await asyncio.to_thread(wait_for, caught_up, 60)
            phone.drain()
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
            hearts.cancel()
        return proc.returncode, (await out_task).decode(), (await err_task).decode(), prompt, answer

    try:
        code, out, err, prompt, answer = asyncio.run(scenario())
        phone.drain()
        offline = retained(broker.port, "stresswatch/status")
    finally:
        phone.close()
        bus.stop()
    assert code == 0, err[-3000:]
    # Exactly one prompt, to Ann (Bob rested); the answer was stored.
    assert [p["person"] for p in phone.prompts] == ["ann"] and prompt["kind"] == "acute"
    assert answer["status"] == "done" and answer["response"]["action"] == "done"
    # The strap health is part of each strap's retained status.
    for dev in (ANN, BOB):
        live = [d for d in phone.devices[dev] if d.get("connected")]
        assert live and {"last_beat_age_s", "beats_last_min", "artifacts_last_min"} <= set(live[-1])
        assert any(d["beats_last_min"] >= 30 and d["last_beat_age_s"] < 5 for d in live)
    # Nothing lost in the outage: every reading printed is in VictoriaMetrics, those of the outage too.
    printed = {p: sum(1 for line in out.splitlines() if line.startswith(p + " ")) for p in ("ann", "bob")}
    for person in ("ann", "bob"):
        times = hrv_times(vm, person)
        assert len(times) == printed[person] > 20, (
            f"{person}: {printed[person]} readings printed, {len(times)} stored; outage {outage}, stored {times}"
        )
        during = [t for t in times if outage["start"] * 1000 <= t <= outage["end"] * 1000]
        assert len(during) >= 3, f"{person}: {len(during)} readings from the outage stored"
    # A clean stop: `offline` retained and nothing left in either outbox.
    assert offline == b"offline"
    db = StateStore(state / "state.db")
    assert db.pending("influx") == 0 and db.pending("mqtt") == 0
    db.close()
