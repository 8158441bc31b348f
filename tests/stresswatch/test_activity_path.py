"""The phone's activity reaches the person's state: `stresswatch/<person>/activity` on a real
Mosquitto becomes Motion in the pipeline; a phone that says walking turns a heart-rate rise into
activity, with no prompt, and one that says still lets it be judged as stress (without motion the
RR-only gate leaves it unjudged)."""

from __future__ import annotations

import asyncio
import json
import logging

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from servers import wait_for
from test_alert_path import ANY_HOUR, UntilStopped, load, work_stress_events

from collector.events import MotionKind
from processing.reading import Activity, MotionState, StressState
from stresswatch.service import Service
from stresswatch.sources import simulated_day

WALKING = json.dumps({"activity": "walking", "confidence": 92}).encode()


def publish(port: int, topic: str, payload: bytes, retain: bool = False) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


def test_the_phone_s_activity_on_mqtt_reaches_the_person_s_pipeline(broker, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    publish(broker.port, "stresswatch/me/activity", WALKING, retain=True)  # stale: never taken
    service = Service(
        load(tmp_path, mqtt__url=f"mqtt://127.0.0.1:{broker.port}"), [UntilStopped()], timezone="UTC"
    )
    track = service.people["me"].pipeline.motion

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        assert await asyncio.to_thread(service.sinks.mqtt.connected.wait, 10)
        await asyncio.sleep(0.5)  # the subscription is answered with the retained message, if any
        assert track.latest is None
        publish(broker.port, "stresswatch/me/activity", b'{"activity": "flying"}')
        publish(broker.port, "stresswatch/nobody/activity", WALKING)
        publish(broker.port, "stresswatch/me/activity", WALKING)
        got = await asyncio.to_thread(wait_for, lambda: track.latest, 10)
        stop.set()
        await task
        return got

    motion = asyncio.run(scenario())
    assert (motion.person, motion.kind, motion.source) == ("me", MotionKind.WALKING, "phone")
    bad = [r.getMessage() for r in caplog.records if "activity message" in r.getMessage()]
    assert bad == [
        "me: ignored an activity message from the phone: unknown activity 'flying' "
        "(one of: automotive, cycling, in_vehicle, on_bicycle, on_foot, running, stationary, "
        "still, tilting, unknown, walking)"
    ]


def stress_block_with_the_phone(saying: bytes | None):
    """The simulated morning rest and work-stress block through the service; during the block
    the phone reports `saying` once a minute (None: no phone). Readings and prompts out."""
    beats = work_stress_events(phone=False)
    _, spans = simulated_day(seed=7, artifacts=0.0, person="me")
    block = next(s for s in spans if s.name == "work stress")
    return block, run_with_phone(beats, saying, block.start, block.end)


def run_with_phone(beats, saying, start, end):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        service = Service(load(Path(tmp)), [], timezone="UTC", alert_settings=ANY_HOUR)
        readings, prompts = [], []
        service.on_reading, service.on_prompt = readings.append, prompts.append
        next_report = start
        for b in beats:
            while saying is not None and next_report <= min(b.t, end):
                service.phone_activity("me", saying, now=next_report)
                next_report += 60.0
            service.events([b])
        service.finish()
        service.sinks.close()
    return readings, prompts


def test_a_phone_that_says_walking_leaves_no_stressed_reading_and_no_prompt():
    block, (readings, prompts) = stress_block_with_the_phone(WALKING)
    during = [r for r in readings if block.start + 60 <= r.time <= block.end]
    assert during and all(r.motion == MotionState.MOVING for r in during)
    assert not any(r.state == StressState.STRESSED for r in during)
    assert all(r.activity == Activity.ACTIVE for r in during)
    assert prompts == []
    # without the phone the block is too active to judge by RR alone (processing/stress.py
    # RR_GATE): not stressed, no prompt either, but not `active` (a phone saying still: stress)
    _, (readings, prompts) = stress_block_with_the_phone(None)
    during = [r for r in readings if block.start + 60 <= r.time <= block.end]
    assert during and all(r.motion == MotionState.UNKNOWN for r in during)
    assert all(
        (r.activity, r.state, r.stress_score) == (Activity.UNKNOWN, StressState.UNKNOWN, None) for r in during
    )
    assert prompts == []


def test_a_phone_that_says_still_keeps_the_stress_it_sees():
    block, (readings, prompts) = stress_block_with_the_phone(b'{"activity": "still", "confidence": 100}')
    during = [r for r in readings if block.start + 60 <= r.time <= block.end]
    assert all(r.motion == MotionState.STILL for r in during)
    assert sum(r.state == StressState.STRESSED for r in during) > len(during) / 2
    assert len(prompts) == 1
