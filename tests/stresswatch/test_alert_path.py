"""The alert stage in the service: prompts reach the phone, answers reach the engine, and state
survives a restart (real Mosquitto, the real pipeline and engine on the simulated day)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import queue
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
import servers
from paho.mqtt.enums import CallbackAPIVersion
from servers import wait_for

from alerts.settings import AlertSettings
from stresswatch import config
from stresswatch.service import Service
from stresswatch.sources import ReplaySource, shifted, simulated_day, simulated_phone


class UntilStopped:
    """A live source that sends nothing: keeps the service running until the test stops it."""

    finite = False

    async def run(self, emit, stop):
        await stop.wait()


def load(tmp_path, **env):
    environ = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state")}
    environ.update({f"STRESSWATCH_{k.upper()}": v for k, v in env.items()})
    return config.load(None, environ=environ)


def work_stress_events(ending_at: float | None = None, phone: bool = True):
    """Morning rest and the work-stress block of the simulated day (the engine prompts in it),
    with what the demo person's phone says over them as the demo replays it (still: they sit;
    collector/simulator.py phone_reports), moved to end at `ending_at` when given. `phone` False:
    the beats alone, without motion, which judged by RR alone are too active to judge
    (processing/stress.py RR_GATE): no stress, no prompt."""
    beats, spans = simulated_day(seed=7, artifacts=0.0, person="me")
    end = next(s.end for s in spans if s.name == "work stress")
    events = [b for b in beats if b.t <= end]
    if phone:
        events = sorted([*events, *(m for m in simulated_phone("me") if m.t <= end)], key=lambda e: e.t)
    return shifted(events, 0.0 if ending_at is None else ending_at - end)


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
    service = Service(cfg, [], timezone="UTC", alert_settings=ANY_HOUR)
    prompts = []
    service.on_prompt = prompts.append

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        service.sources.append(UntilStopped())
        # beats up to now: a prompt about the past would (rightly) expire before it is sent
        service.events(work_stress_events(ending_at=time.time()))
        assert len(prompts) == 1
        msg = await asyncio.to_thread(phone_got.get, True, 15)
        body = json.loads(msg.payload)
        assert body["id"] == prompts[0].id and body["exercise"]["breaths_per_min"] > 0
        phone.publish(
            "stresswatch/me/prompt/response", json.dumps({"id": body["id"], "action": "done"}), qos=1
        )
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


def test_the_phone_s_first_answer_stands_everywhere_and_its_snooze_shows_in_the_retained_state(
    broker, influxdb, tmp_path, caplog
):
    """Through a real Mosquitto and a real InfluxDB 1.6.7: snoozes the engine cannot take are
    refused where they arrive; a good snooze is the answer that stands in the engine, the prompt
    history and the `prompts` point, while a `done` and a `dismiss` after it are only logged
    and counted; the retained state shows the snooze and the count at once."""
    caplog.set_level(logging.INFO)
    got: queue.Queue = queue.Queue()
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.on_message = lambda c, u, m: got.put(m)
    phone.connect("127.0.0.1", broker.port)
    phone.subscribe([("stresswatch/me/prompt", 1), ("stresswatch/me/state", 0)])
    phone.loop_start()
    cfg = load(
        tmp_path,
        mqtt__url=f"mqtt://127.0.0.1:{broker.port}",
        influx__url=influxdb.url,
        influx__api="v1",
        influx__bucket="stresswatch",
    )
    service = Service(cfg, [], timezone="UTC", alert_settings=ANY_HOUR)
    engine = service.people["me"].engine
    states: list[dict] = []

    def next_prompt() -> dict:
        while True:
            m = got.get(timeout=15)
            if m.topic.endswith("/state"):
                states.append(json.loads(m.payload))
            else:
                return json.loads(m.payload)

    def state_where(test) -> dict:
        def seen():
            while not got.empty():
                m = got.get()
                if m.topic.endswith("/state"):
                    states.append(json.loads(m.payload))
            return next((st for st in states if test(st["alerts"])), None)

        return wait_for(seen, 15)

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        service.sources.append(UntilStopped())
        service.events(work_stress_events(ending_at=time.time()))
        body = await asyncio.to_thread(next_prompt)
        topic = "stresswatch/me/prompt/response"
        for minutes in ("1e9", "1e400", "Infinity", "NaN", "1" + "0" * 400, "0"):  # as a phone may write them
            phone.publish(topic, f'{{"id": "{body["id"]}", "action": "snooze", "minutes": {minutes}}}', qos=1)
        for answer in ({"action": "snooze", "minutes": 30}, {"action": "done"}, {"action": "dismiss"}):
            phone.publish(topic, json.dumps({"id": body["id"], **answer}), qos=1)
        await asyncio.to_thread(wait_for, lambda: engine.ignored_answers == 2, 15)
        snoozed = await asyncio.to_thread(state_where, lambda a: a["ignored_answers"] == 2)
        stop.set()
        await task
        return body, snoozed

    try:
        body, snoozed = asyncio.run(scenario())
    finally:
        phone.loop_stop()
    answer = engine.prompts[body["id"]]["answer"]
    assert answer["action"] == "snooze" and answer["minutes"] == 30
    # The retained state, republished with the answer (no reading came after it), shows the snooze.
    assert snoozed["alerts"]["snoozed_until"] == answer["time"] + 30 * 60
    assert snoozed["alerts"]["snoozed_prompt"] == body["id"]
    # The prompt history and InfluxDB keep the first answer.
    rec = service.store.prompt(body["id"])
    assert rec["status"] == "snooze" and rec["response"] == {
        "id": body["id"],
        "action": "snooze",
        "minutes": 30,
    }
    rows = servers.influx_query(
        influxdb, f"SELECT response FROM prompts WHERE id = '{body['id']}'", db="stresswatch"
    )
    assert [response for _, response in rows["results"][0]["series"][0]["values"]] == ["snooze"]
    # One log line for each refused snooze and each later answer.
    lines = [r.getMessage() for r in caplog.records]
    refused = [m for m in lines if "malformed prompt response" in m]
    assert len(refused) == 6 and all(
        "minutes: must be a snooze length from 1 to 240 minutes" in m for m in refused
    )
    assert [m for m in lines if f"Prompt {body['id']}" in m] == [
        f"me: Prompt {body['id']} answered snooze.",
        f"me: Prompt {body['id']} already answered snooze; done ignored.",
        f"me: Prompt {body['id']} already answered snooze; dismiss ignored.",
    ]
    assert service.store.counter("mqtt.bad_responses") == 6


def test_a_bad_answer_handed_to_the_service_is_one_log_line_and_changes_nothing(tmp_path, caplog):
    service = Service(load(tmp_path), [], timezone="UTC", alert_settings=ANY_HOUR)
    prompts = []
    service.on_prompt = prompts.append
    service.events(work_stress_events())
    (p,) = prompts
    engine = service.people["me"].engine
    before = (json.dumps(engine.to_dict()), service.store.prompt(p.id), service.store.load_state("alerts/me"))
    caplog.clear()
    for minutes in (10**400, float("nan"), 1e9, "30"):
        service.respond("me", {"id": p.id, "action": "snooze", "minutes": minutes})
    assert (
        json.dumps(engine.to_dict()),
        service.store.prompt(p.id),
        service.store.load_state("alerts/me"),
    ) == before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4 and all(
        w.startswith(f"me: answer snooze to prompt {p.id} not taken: minutes: must be a snooze length")
        for w in warnings
    )


def test_a_snooze_saved_beyond_240_minutes_is_dropped_at_start_with_a_log_line(tmp_path, caplog):
    """A state saved by the code before the bound (a 1e9-minute snooze holds acute prompts for good)."""
    service = Service(load(tmp_path), [], timezone="UTC", alert_settings=ANY_HOUR)
    prompts = []
    service.on_prompt = prompts.append
    service.events(work_stress_events())
    (p,) = prompts
    service.respond("me", {"id": p.id, "action": "snooze", "minutes": 30}, now=p.time + 60)
    saved = service.store.load_state("alerts/me")
    saved["policy"]["snooze"]["due"] = p.time + 60 + 1e9 * 60
    service.store.save_state("alerts/me", saved)
    caplog.clear()
    again = Service(load(tmp_path), [], timezone="UTC", alert_settings=ANY_HOUR)
    assert again.people["me"].engine.status()["snoozed_until"] is None
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (
        f"me: dropped the saved snooze of prompt {p.id}: due 1000000000 minutes after it was "
        "asked for, more than the 240 allowed"
    )


def test_a_restart_restores_the_baseline_and_the_alert_engine(tmp_path):
    cfg = load(tmp_path)
    first = Service(cfg, [ReplaySource(work_stress_events())], timezone="UTC")
    asyncio.run(first.run(asyncio.Event()))
    before = first.people["me"]
    engine_state = before.engine.to_dict()
    baseline_state = before.pipeline.model.baseline.to_dict()
    assert engine_state["prompts"], "the stress block should have produced a prompt"
    again = Service(cfg, [], timezone="UTC")
    after = again.people["me"]
    assert after.engine.to_dict() == engine_state
    assert after.pipeline.model.baseline.to_dict() == baseline_state
    # (alerts/engine tests show a restored engine makes every later decision as before)


@pytest.mark.slow
def test_the_demo_plays_the_person_and_reports_the_measured_effect(tmp_path):
    env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "demo", "--seconds", "0", "--plot", ""],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count(">> prompt (acute") == 2
    assert "answered done" in out and "answered: not stressed" in out
    assert "After resonance breathing your resting HRV (lnRMSSD) went from" in out
    assert "prompts: 2" in out
    # the walk to the gym (heart rate up ~25 bpm, the phone saying walking) is activity, not stress
    walk = next(line for line in out.splitlines() if line.startswith("walk to the gy"))
    assert "stressed" not in walk and walk.rstrip().endswith("active")
    call = next(line for line in out.splitlines() if line.startswith("tense call"))
    assert "stressed" in call


def test_real_cycling_and_its_recovery_never_prompt(reference, tmp_path):
    """exercise_rri.hrm (seated rest, ~30 min cycling, recovery): exercise is not stress."""
    from collector.files import read_recording
    from processing.reading import Activity

    rec = read_recording(reference / "rr/rest_exercise/exercise_rri.hrm", person="me")
    decisions, readings, prompts = [], [], []
    service = Service(
        load(tmp_path),
        [ReplaySource(rec.events)],
        timezone="UTC",
        alert_settings=ANY_HOUR,
        on_prompt=prompts.append,
        on_reading=readings.append,
        on_decision=lambda person, d: decisions.append(d),
    )
    asyncio.run(service.run(asyncio.Event()))
    moving = [r for r in readings if r.activity in (Activity.ACTIVE, Activity.RECOVERY)]
    assert len(moving) > 150  # the cycling was seen as activity
    assert prompts == [] and not [d for d in decisions if d.what == "suppressed"]


def clock_stepped_back(beats, hours: float = 1.0):
    """The beats of a strap whose first half was timed by a wall clock `hours` ahead, then set
    right (as the collector emits them: a Gap at the step, on the new clock)."""
    from collector.events import Gap

    half = len(beats) // 2
    ahead = [dataclasses.replace(b, t=b.t + hours * 3600.0) for b in beats[:half]]
    step = Gap(
        "me",
        beats[0].device,
        beats[half - 1].t,
        beats[half - 1].t,
        f"the wall clock stepped {-hours * 3600:+.1f} s",
    )
    return ahead, step, beats[half:]


def test_a_clock_set_back_while_running_is_followed_by_the_whole_service(tmp_path, caplog):
    """Issue 16 row 1 through the service: after the step every beat is still used, readings go
    on at once, the alert engine counts them, the state saved is on the new clock, one warning."""
    ahead, step, after = clock_stepped_back(work_stress_events(phone=False))
    readings = []
    service = Service(load(tmp_path), [], on_reading=readings.append, timezone="UTC")
    with caplog.at_level("WARNING", logger="stresswatch.service"):
        service.events(ahead + [step] + after)
        service.finish()
    w = service.people["me"]
    assert w.pipeline.n_dropped == 0
    later = [r for r in readings if r.time < after[-1].t + 1]
    assert len(later) >= (after[-1].t - after[0].t) / 10 - 5  # a reading every 10 s again within seconds
    assert w.engine.last_time == later[-1].time
    minutes = (ahead[-1].t - ahead[0].t + after[-1].t - after[0].t) / 60
    assert minutes - 2 < w.engine.days.open.worn_min <= minutes  # every reading counted, once
    assert service.store.load_state("alerts/me")["last_time"] == w.engine.last_time
    assert w.recent[0][0] >= after[0].t - 5  # the beats kept for the breathing check: the new clock's
    lines = [r.getMessage() for r in caplog.records if "clock went back" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("me: The clock went back")


def test_a_restart_with_the_clock_corrected_counts_every_reading_again(tmp_path, caplog):
    """Issue 16 row 2: the service ran on a clock an hour ahead and saved its state; it starts again
    with the clock set right. Before, `alerts/me` kept a `last_time` in the future and no
    reading counted for an hour, without a word."""
    ahead, _, after = clock_stepped_back(work_stress_events(phone=False))
    cfg = load(tmp_path)
    first = Service(cfg, [], timezone="UTC")
    first.events(ahead)
    first.finish()
    worn = first.people["me"].engine.days.open.worn_min
    again = Service(cfg, [], timezone="UTC")
    with caplog.at_level("WARNING", logger="stresswatch.service"):
        again.events(after)
        again.finish()
    engine = again.people["me"].engine
    assert engine.days.open.worn_min - worn > (after[-1].t - after[0].t) / 60 - 2
    assert again.store.load_state("alerts/me")["last_time"] == engine.last_time < after[-1].t + 1
    assert sum("clock went back" in r.getMessage() for r in caplog.records) == 1
