"""The alert stage in the service: prompts reach the phone, answers reach the engine, and state
survives a restart (real Mosquitto, the real pipeline and engine on the simulated day)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import queue
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from servers import wait_for

from alerts.settings import AlertSettings
from stresswatch import config
from stresswatch.service import Service
from stresswatch.sources import ReplaySource, as_known_still, simulated_day


class UntilStopped:
    """A live source that sends nothing: keeps the service running until the test stops it."""

    finite = False

    async def run(self, emit, stop):
        await stop.wait()


def load(tmp_path, **env):
    environ = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state")}
    environ.update({f"STRESSWATCH_{k.upper()}": v for k, v in env.items()})
    return config.load(None, environ=environ)


def work_stress_beats(ending_at: float | None = None):
    """Morning rest and the work-stress block of the simulated day (the engine prompts in it),
    moved to end at `ending_at` when given."""
    beats, spans = simulated_day(seed=7, artifacts=0.0, person="me")
    end = next(s.end for s in spans if s.name == "work stress")
    shift = 0.0 if ending_at is None else ending_at - end
    return [dataclasses.replace(b, t=b.t + shift) for b in beats if b.t <= end]


# Prompts at any hour the test runs: no quiet hours, no sleep window.
ANY_HOUR = AlertSettings(quiet_hours=("00:00", "00:00"), sleep_window=("00:00", "00:00"))


def test_a_stress_block_prompts_the_phone_once_and_its_answer_reaches_the_engine(broker, tmp_path):
    phone_got: queue.Queue = queue.Queue()
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.on_message = lambda c, u, m: phone_got.put(m)
    phone.connect("127.0.0.1", broker.port)
    phone.subscribe("stresswatch/me/prompt", qos=1)
    phone.loop_start()
    cfg = load(tmp_path, mqtt__url=f"mqtt://127.0.0.1:{broker.port}")
    service = Service(cfg, [], utc_offset_s=0.0, alert_settings=ANY_HOUR)
    as_known_still(service.pipelines.values())  # the simulated wearer sits still: its stress is judged
    prompts = []
    service.on_prompt = prompts.append

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        service.sources.append(UntilStopped())
        # beats up to now: a prompt about the past would (rightly) expire before it is sent
        service.events(work_stress_beats(ending_at=time.time()))
        assert len(prompts) == 1
        msg = await asyncio.to_thread(phone_got.get, True, 15)
        body = json.loads(msg.payload)
        assert body["id"] == prompts[0].id and body["exercise"]["breaths_per_min"] > 0
        phone.publish("stresswatch/me/prompt/response", json.dumps({"id": body["id"], "action": "done"}), qos=1)
        engine = service.people["me"].engine
        await asyncio.to_thread(wait_for, lambda: engine.prompts[body["id"]]["answer"] is not None, 15)
        stop.set()
        await task
        return engine.prompts[body["id"]]["answer"]

    try:
        answer = asyncio.run(scenario())
    finally:
        phone.loop_stop()
    assert answer["action"] == "done"
    assert service.store.prompt(prompts[0].id)["status"] == "done"


def test_a_restart_restores_the_baseline_and_the_alert_engine(tmp_path):
    cfg = load(tmp_path)
    beats = work_stress_beats()
    first = Service(cfg, [ReplaySource(beats)], utc_offset_s=0.0)
    as_known_still(first.pipelines.values())
    asyncio.run(first.run(asyncio.Event()))
    before = first.people["me"]
    engine_state = before.engine.to_dict()
    baseline_state = before.pipeline.model.baseline.to_dict()
    assert engine_state["prompts"], "the stress block should have produced a prompt"
    again = Service(cfg, [], utc_offset_s=0.0)
    after = again.people["me"]
    assert after.engine.to_dict() == engine_state
    assert after.pipeline.model.baseline.to_dict() == baseline_state
    # (alerts/engine tests show a restored engine makes every later decision as before)


def test_the_demo_plays_the_person_and_reports_the_measured_effect(tmp_path):
    env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "stresswatch.cli", "demo", "--seconds", "0", "--plot", ""],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count(">> prompt (acute") == 2
    assert "answered done" in out and "answered: not stressed" in out
    assert "After resonance breathing your resting HRV (lnRMSSD) went from" in out
    assert "prompts: 2" in out


def test_real_cycling_and_its_recovery_never_prompt(reference, tmp_path):
    """exercise_rri.hrm (seated rest, ~30 min cycling, recovery): exercise is not stress."""
    from collector.files import read_recording
    from processing.reading import Activity

    rec = read_recording(reference / "rr/rest_exercise/exercise_rri.hrm", person="me")
    decisions, readings, prompts = [], [], []
    service = Service(load(tmp_path), [ReplaySource(rec.events)], utc_offset_s=0.0, alert_settings=ANY_HOUR,
                      on_prompt=prompts.append, on_reading=readings.append,
                      on_decision=lambda person, d: decisions.append(d))
    asyncio.run(service.run(asyncio.Event()))
    moving = [r for r in readings if r.activity in (Activity.ACTIVE, Activity.RECOVERY)]
    assert len(moving) > 150  # the cycling was seen as activity
    assert prompts == [] and not [d for d in decisions if d.what == "suppressed"]
