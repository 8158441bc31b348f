"""The test harness's Kafka is real: a KRaft node started from the Maven Central jars stores and serves keyed messages."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer


def test_a_kraft_node_keeps_keyed_messages_in_order_per_key(kafka):
    topic = f"harness-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "acks": "all"})
    for k in range(30):
        producer.produce(topic, key=f"person{k % 3}", value=str(k))
    assert producer.flush(30) == 0

    consumer = Consumer(
        {"bootstrap.servers": kafka.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got: dict[str, list[int]] = {}
    try:
        for _ in range(200):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.setdefault(msg.key().decode(), []).append(int(msg.value()))
            if sum(map(len, got.values())) == 30:
                break
    finally:
        consumer.close()
    assert got == {f"person{p}": list(range(p, 30, 3)) for p in range(3)}
