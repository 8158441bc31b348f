"""`stresswatch deliver mqtt|influx` on real Kafka, Mosquitto and InfluxDB 1.6.7: a prompt intent
replayed after a failover reaches the phone once; a phone's answer goes to the person's worker on
`beats`; the workers' outcome records reach InfluxDB and never a phone."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
from kafka_server import consume
from paho.mqtt.enums import CallbackAPIVersion
from servers import influx_query, wait_for

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


def _config(kafka, tmp_path, broker=None, influxdb=None) -> configuration.Config:
    suffix = uuid.uuid4().hex[:6]
    env = {
        "STRESSWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
        "STRESSWATCH_KAFKA__BEATS_TOPIC": f"beats-{suffix}",
        "STRESSWATCH_KAFKA__PROMPTS_TOPIC": f"prompts-{suffix}",
        "STRESSWATCH_KAFKA__READINGS_TOPIC": f"readings-{suffix}",
        "STRESSWATCH_KAFKA__DAILY_TOPIC": f"daily-{suffix}",
        "STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"),
    }
    if broker is not None:
        env |= {
            "STRESSWATCH_MQTT__URL": f"mqtt://127.0.0.1:{broker.port}",
            "STRESSWATCH_MQTT__DISCOVERY": "false",
            "STRESSWATCH_MQTT__CLIENT_ID": f"notifier-{suffix}",
        }
    if influxdb is not None:
        env |= {
            "STRESSWATCH_INFLUX__URL": influxdb.url,
            "STRESSWATCH_INFLUX__API": "v1",
            "STRESSWATCH_INFLUX__BUCKET": "stresswatch",
        }
    return configuration.load(environ=env)


def _producer(kafka):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "acks": "all"})


def test_a_prompt_intent_replayed_after_it_was_sent_does_not_reach_the_phone_again(kafka, broker, tmp_path):
    cfg = _config(kafka, tmp_path, broker=broker)
    phone: list[dict] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, msg: phone.append(json.loads(msg.payload))
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("stresswatch/+/prompt", qos=1)
    sub.loop_start()
    producer = _producer(kafka)
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


def test_a_phones_answer_goes_to_the_persons_worker_and_an_outcome_never_to_the_phone(
    kafka, broker, tmp_path
):
    """Issue 19: the answer comes back. `deliver mqtt` takes the phone's answer to a prompt it sent
    (as the home service does: one for another person's prompt is dropped) and queues it on
    `beats` under the person's key, for the worker that holds them; a worker's outcome record on
    `prompts` is for InfluxDB and does not reach the phone."""
    cfg = _config(kafka, tmp_path, broker=broker)
    phone: list[dict] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, msg: phone.append(json.loads(msg.payload))
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("stresswatch/+/prompt", qos=1)
    sub.loop_start()
    producer = _producer(kafka)
    intent = _intent("ann", time.time())
    delivery = Delivery(cfg, "mqtt")
    try:
        producer.produce(cfg.kafka.prompts_topic, key=b"ann", value=json.dumps(intent).encode())
        producer.flush(30)
        assert wait_for(lambda: delivery.step(0.5) and False or phone, 60)
        answer = {"id": intent["id"], "action": "done"}
        sub.publish("stresswatch/bo/prompt/response", json.dumps(answer), qos=1)  # not bo's prompt
        sub.publish("stresswatch/ann/prompt/response", json.dumps(answer), qos=1)
        assert wait_for(lambda: delivery.step(0.5) and False or delivery.answers.sent >= 1, 30)
        outcome = {**intent, "outcome": True, "response": "done", "effects": {}}
        producer.produce(cfg.kafka.prompts_topic, key=b"ann", value=json.dumps(outcome).encode())
        producer.flush(30)
        for _ in range(6):
            delivery.step(0.5)
    finally:
        delivery.close()
        sub.loop_stop()
        sub.disconnect()
    got = consume(kafka.bootstrap, cfg.kafka.beats_topic, idle=3.0)
    assert [(key, v["person"], v["answer"]) for key, v in got] == [
        ("ann", "ann", {"id": intent["id"], "action": "done", "minutes": None})
    ]
    assert abs(got[0][1]["time"] - time.time()) < 60
    assert [p["id"] for p in phone] == [intent["id"]]  # the outcome record did not reach the phone


def test_a_workers_outcome_and_baseline_records_land_in_influxdb(kafka, influxdb, tmp_path):
    """The outcome merges into the prompt's point; a baseline record on `daily` is a `baseline`
    point, as the home service writes it."""
    cfg = _config(kafka, tmp_path, influxdb=influxdb)
    producer = _producer(kafka)
    intent = _intent("ann", time.time() - 600)
    effects = {"verdict": "improved", "d_ln_rmssd": 0.4, "d_hr_bpm": -9.5}
    for value in (intent, {**intent, "outcome": True, "response": "done", "effects": effects}):
        producer.produce(cfg.kafka.prompts_topic, key=b"ann", value=json.dumps(value).encode())
    ref = {"ln_rmssd_mean": 3.7, "ln_rmssd_sd": 0.2, "hr_mean": 63.5, "hr_sd": 3.1, "samples": 40}
    baseline = {"person": "ann", "time": intent["time"], "baseline": ref}
    producer.produce(cfg.kafka.daily_topic, key=b"ann", value=json.dumps(baseline).encode())
    producer.flush(30)
    delivery = Delivery(cfg, "influx")

    def point():
        delivery.step(0.5)
        res = influx_query(influxdb, "SELECT * FROM prompts WHERE person = 'ann'", db="stresswatch")
        series = res["results"][0].get("series")
        if not series:
            return None
        row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
        return row if row.get("response") else None

    def baseline_point():
        delivery.step(0.5)
        res = influx_query(influxdb, "SELECT * FROM baseline WHERE person = 'ann'", db="stresswatch")
        series = res["results"][0].get("series")
        return dict(zip(series[0]["columns"], series[0]["values"][0], strict=True)) if series else None

    try:
        row = wait_for(point, 60)
        base = wait_for(baseline_point, 30)
    finally:
        delivery.close()
    assert base, "no baseline point"
    assert base["hr_bpm"] == 63.5 and abs(base["hr_low"] - 60.4) < 1e-9 and abs(base["hr_high"] - 66.6) < 1e-9
    assert abs(base["rmssd_ms"] - 40.447) < 1e-3  # e^3.7
    assert row, "no prompts point with the response"
    assert (row["id"], row["response"], row["stress_score"]) == (intent["id"], "done", 90.0)  # merged
    assert row["d_ln_rmssd"] == 0.4 and row["d_hr_bpm"] == -9.5
