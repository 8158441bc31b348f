"""`stresswatch deliver mqtt` on real Kafka and Mosquitto: a prompt intent replayed after a failover
reaches the phone once."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from servers import wait_for

from alerts.prompt import Exercise
from stresswatch import config as configuration
from stresswatch.deliver import Delivery


def _intent(person: str, t: float) -> dict:
    return {
        "id": f"{person}-{int(t)}-acute",
        "person": person,
        "time": t,
        "kind": "acute",
        "exercise": Exercise().to_dict(),
        "reason": "You have been stressed for 10 of the last 15 minutes.",
        "stress_score": 90.0,
        "expires_at": t + 1800,
    }


def test_a_prompt_intent_replayed_after_it_was_sent_does_not_reach_the_phone_again(kafka, broker, tmp_path):
    from confluent_kafka import Producer

    suffix = uuid.uuid4().hex[:6]
    cfg = configuration.load(
        environ={
            "STRESSWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
            "STRESSWATCH_KAFKA__PROMPTS_TOPIC": f"prompts-{suffix}",
            "STRESSWATCH_KAFKA__READINGS_TOPIC": f"readings-{suffix}",
            "STRESSWATCH_KAFKA__DAILY_TOPIC": f"daily-{suffix}",
            "STRESSWATCH_MQTT__URL": f"mqtt://127.0.0.1:{broker.port}",
            "STRESSWATCH_MQTT__DISCOVERY": "false",
            "STRESSWATCH_MQTT__CLIENT_ID": f"notifier-{suffix}",
            "STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"),
        }
    )
    phone: list[dict] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, msg: phone.append(json.loads(msg.payload))
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("stresswatch/+/prompt", qos=1)
    sub.loop_start()
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "acks": "all"})
    now = time.time()
    first, second = _intent("ann", now), _intent("ann", now + 5400)
    delivery = Delivery(cfg, "mqtt")
    try:
        producer.produce(cfg.kafka.prompts_topic, key=b"ann", value=json.dumps(first).encode())
        producer.flush(30)
        assert wait_for(lambda: delivery.step(0.5) and False or phone, 60)
        assert wait_for(lambda: delivery.store.prompt(first["id"])["status"] == "delivered", 10)
        # A worker that took over replays the intent (and then its next one): same id, not sent again.
        for intent in (first, second):
            producer.produce(cfg.kafka.prompts_topic, key=b"ann", value=json.dumps(intent).encode())
        producer.flush(30)
        assert wait_for(lambda: delivery.step(0.5) and False or len(phone) >= 2, 60)
        time.sleep(1.0)  # a copy of the first would have come before the second
        assert [p["id"] for p in phone] == [first["id"], second["id"]]
        assert delivery.skipped_prompts == 1
    finally:
        delivery.close()
        sub.loop_stop()
        sub.disconnect()
