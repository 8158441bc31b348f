"""paho driven from an asyncio event loop (sinks/paho_loop.py), against a real Mosquitto: on a
running loop (the service's) the MQTT sink adds no thread and calls back on the loop's thread; a
synchronous caller gets a loop of the sink's own, gone again after `stop`."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from servers import wait_for as wait

from alerts.prompt import Prompt
from sinks.mqtt import MqttSettings, MqttSink
from sinks.store import StateStore


def mqtt_threads() -> set[str]:
    """Threads that would be MQTT's own: paho's network thread, the sink's loop thread."""
    return {t.name for t in threading.enumerate() if t.name.startswith(("paho-mqtt-client", "mqtt-loop"))}


def test_on_a_running_loop_the_sink_adds_no_thread_and_everything_happens_on_the_loop(broker, tmp_path):
    store = StateStore(tmp_path / "state.db")
    answered_on: list[int] = []
    before = mqtt_threads()  # sinks of other tests in this process may still run

    async def scenario():
        loop_thread = threading.get_ident()
        sink = MqttSink(
            store,
            MqttSettings(port=broker.port, client_id=f"sw-{uuid.uuid4().hex[:6]}", discovery=False),
            ["ann"],
            on_response=lambda person, r: answered_on.append(threading.get_ident()),
        )
        sink.start()
        assert await asyncio.to_thread(sink.connected.wait, 10)
        assert mqtt_threads() == before
        now = time.time()
        p = Prompt("p1", "ann", now, "acute", "Your RMSSD has been low for 10 minutes.", 82.0, now + 600)
        sink.publish_prompt(p)
        assert await asyncio.to_thread(wait, lambda: store.prompt("p1")["status"] == "delivered", 10)
        phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        phone.connect("127.0.0.1", broker.port)
        phone.loop_start()
        info = phone.publish(
            "stresswatch/ann/prompt/response", json.dumps({"id": "p1", "action": "done"}), qos=1
        )
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert await asyncio.to_thread(wait, lambda: answered_on, 10)
        phone.loop_stop()
        await sink.aclose()
        sink.client.loop_stop()
        assert sink.client.socket() is None and not sink.connected.is_set()
        return loop_thread

    loop_thread = asyncio.run(scenario())
    assert answered_on == [loop_thread]
    assert store.prompt("p1")["status"] == "done"


def test_a_synchronous_caller_gets_a_loop_of_the_sink_s_own_that_stop_ends(broker, tmp_path):
    before = mqtt_threads()
    sink = MqttSink(
        StateStore(tmp_path / "state.db"),
        MqttSettings(port=broker.port, client_id=f"sw-{uuid.uuid4().hex[:6]}", discovery=False),
        ["ann"],
    )
    sink.start()
    assert sink.connected.wait(10)
    assert mqtt_threads() - before == {"mqtt-loop"}
    sink.stop()
    assert mqtt_threads() == before and sink.client.socket() is None
