"""`stresswatch collect` on real Kafka: each person's beats keyed by person, every few seconds, none lost
when the uplink is away."""

from __future__ import annotations

import asyncio
import uuid

from kafka_server import consume

from collector.events import Beat
from sinks.kafka import KafkaOutbox, decode_events
from sinks.store import StateStore
from stresswatch import config as configuration
from stresswatch.collect import Collector
from stresswatch.sources import ReplaySource, simulated_day

PEOPLE = ("ada", "bo", "cy")


def _config(kafka, topic: str) -> configuration.Config:
    return configuration.load(
        environ={
            "STRESSWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
            "STRESSWATCH_KAFKA__BEATS_TOPIC": topic,
            "STRESSWATCH_KAFKA__DEVICES_TOPIC": topic + "-devices",
            "STRESSWATCH_KAFKA__BATCH_S": "2",
        }
    )


def _beats(person: str, minutes: float) -> list[Beat]:
    beats, _ = simulated_day(seed=len(person), artifacts=0.0, person=person)
    return [b for b in beats if b.t - beats[0].t < minutes * 60]


def _collect(cfg, outbox, sent: dict[str, list[Beat]], pace: float) -> None:
    sources = [ReplaySource(beats, pace=pace) for beats in sent.values()]
    asyncio.run(Collector(cfg, sources, outbox).run(asyncio.Event()))


def _received(kafka, topic: str, n: int) -> list:
    return consume(kafka.bootstrap, topic, lambda got: sum(len(v["beats"]) for _, v in got) >= n)


def test_collect_sends_each_persons_beats_in_order_keyed_by_person_every_few_seconds(kafka, tmp_path):
    topic = f"beats-{uuid.uuid4().hex[:8]}"
    cfg = _config(kafka, topic)
    sent = {p: _beats(p, 4) for p in PEOPLE}
    outbox = KafkaOutbox(StateStore(tmp_path / "state.db"), cfg.kafka.client_config())
    _collect(cfg, outbox, sent, pace=0.03)  # 4 minutes of beats in ~7 s: a message each 2 s is ~60 s of beats

    got = _received(kafka, topic, sum(map(len, sent.values())))
    by_person: dict[str, list[Beat]] = {}
    messages: dict[str, int] = {}
    for key, value in got:
        assert value["person"] == key
        by_person.setdefault(key, []).extend(decode_events(value))
        messages[key] = messages.get(key, 0) + 1
    assert by_person == sent  # every beat, once, in order, with its device, RR and time
    assert all(3 <= messages[p] <= 8 for p in PEOPLE), messages  # ~7 s of wall time in 2 s messages
    assert outbox.pending() == 0


def test_a_site_cut_off_for_ten_minutes_keeps_its_beats_and_delivers_them_all_later(kafka, tmp_path):
    """Every broker down while 10 minutes of beats come (time compressed: replayed at 50 x real
    time, ~12 s; a message per person every 2 s, longer while a flush waits for the cluster); the
    collector is started again on its outbox once Kafka is back, and all of them arrive, in order."""
    topic = f"beats-{uuid.uuid4().hex[:8]}"
    cfg = _config(kafka, topic)
    sent = {p: _beats(p, 10) for p in PEOPLE}
    store = StateStore(tmp_path / "state.db")
    node = kafka.nodes[0]
    kafka.kill(node)
    try:
        outbox = KafkaOutbox(store, cfg.kafka.client_config(), message_timeout_ms=2000)
        _collect(cfg, outbox, sent, pace=0.02)
        waiting = outbox.pending()
        assert waiting >= len(PEOPLE) * 2  # nothing reached Kafka, all of it kept
    finally:
        kafka.restart(node)
    outbox = KafkaOutbox(store, cfg.kafka.client_config())  # as after a restart of the collector
    assert outbox.flush(timeout_s=60) == waiting
    got = _received(kafka, topic, sum(map(len, sent.values())))
    by_person: dict[str, list[Beat]] = {}
    for key, value in got:
        by_person.setdefault(key, []).extend(decode_events(value))
    assert by_person == sent
