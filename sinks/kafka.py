"""Apache Kafka at the edges: the beats' message format, topics, and a producer behind the SQLite outbox.

A collector (stresswatch/collect.py) queues each person's events as one message every few seconds in
the state store's outbox (sink `kafka`), and `KafkaOutbox.flush` hands them to an idempotent producer
(`acks=all`): a site that loses its uplink keeps them on disk and delivers them, in order, when it is
back. A row leaves the outbox only once the cluster has acknowledged it and every row before it;
after a crash between the two a message is sent twice, and the worker drops beats it has already seen
(a person's beats are in time order; one no later than the last is a copy).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable

from collector.events import Beat, Event, Gap, HeartRate, Motion, MotionKind
from collector.log_limit import LogLimit
from sinks.store import StateStore

log = logging.getLogger("stresswatch.kafka")

SINK = "kafka"
# Rows handed to the producer at a time; the next batch waits until this one is settled.
BATCH_ROWS = 2000
# A message the cluster has not acknowledged after this long fails (and stays in the outbox), so a
# lost uplink settles a batch instead of holding it in the producer's memory for ever.
MESSAGE_TIMEOUT_MS = 30_000

# Beats as positional arrays: a person's message every few seconds holds ~3-5 of them, and a
# field name per value would be most of the bytes.
BEAT_FIELDS = ("device", "t", "rr_ms", "hr_bpm", "contact", "source")
# Motion (a foot pod, the phone, or a strap's accelerometer classified by the collector) the same
# way, with `at`: how many of the message's beats and gaps came before it (see `encode_events`).
MOTION_FIELDS = (
    "device",
    "t",
    "kind",
    "span_s",
    "intensity_mg",
    "cadence_spm",
    "speed_m_s",
    "source",
    "hold_s",
    "at",
)


def encode_events(person: str, events: Iterable[Event]) -> dict:
    """One person's beats, gaps, heart rates without RR intervals and motion as the `beats`
    topic's JSON value.

    `events` in the order they came: a motion row keeps its place among the beats, gaps and heart
    rates (`at`), so the worker's pipeline takes it where the home service's would have (a strap's
    accelerometer says what a window was after its beats, not at its time). `heart_rates` (a strap
    that sends no RR intervals) and `motion` are absent without any."""
    beats, gaps, rates, motion = [], [], [], []
    for e in events:
        if isinstance(e, Beat):
            beats.append([e.device, e.t, e.rr_ms, e.hr_bpm, e.contact, e.source])
        elif isinstance(e, Gap):
            gaps.append([e.device, e.start, e.end, e.reason])
        elif isinstance(e, HeartRate):
            rates.append([e.device, e.t, e.hr_bpm, e.contact, e.energy_kj, e.source])
        elif isinstance(e, Motion):
            motion.append(
                [
                    e.device,
                    e.t,
                    e.kind.value,
                    e.span_s,
                    e.intensity_mg,
                    e.cadence_spm,
                    e.speed_m_s,
                    e.source,
                    e.hold_s,
                    len(beats) + len(gaps) + len(rates),
                ]
            )
    value = {"person": person, "beats": beats, "gaps": gaps}
    if rates:
        value["heart_rates"] = rates
    if motion:
        value["motion"] = motion
    return value


def decode_events(value: dict) -> list[Event]:
    """The events of one `beats` message: beats, gaps and heart rates in time order (a gap before
    the beats after its start), each motion row after the first `at` of them."""
    person = value["person"]
    events: list[tuple[float, int, Event]] = []
    for device, t, rr, hr, contact, source in value.get("beats", ()):
        events.append((t, 1, Beat(person, device, float(t), float(rr), hr, contact, source=source or "")))
    for device, t, hr, contact, energy, source in value.get("heart_rates", ()):
        events.append((t, 1, HeartRate(person, device, float(t), float(hr), contact, energy, source or "")))
    for device, start, end, reason in value.get("gaps", ()):
        events.append((start, 0, Gap(person, device, float(start), float(end), reason or "")))
    events.sort(key=lambda x: (x[0], x[1]))
    out: list[Event] = [e for _, _, e in events]
    for device, t, kind, span, intensity, cadence, speed, source, hold, at in reversed(
        value.get("motion", ())
    ):
        out.insert(
            at,
            Motion(
                person,
                device,
                float(t),
                MotionKind(kind),
                float(span),
                intensity,
                cadence,
                speed,
                source or "",
                float(hold),
            ),
        )
    return out


def producer_config(client: dict[str, str], message_timeout_ms: int = MESSAGE_TIMEOUT_MS) -> dict:
    """An idempotent producer: every message acknowledged by all in-sync replicas, no duplicates
    from its own retries, order kept per partition."""
    return {
        **client,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 50,
        "compression.type": "lz4",
        "message.timeout.ms": message_timeout_ms,
    }


def ensure_topics(
    client: dict[str, str], topics: Iterable[str], partitions: int, replication: int, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns those created. Existing ones are left as
    they are (their partition count decides where people live).

    A transient answer (a retriable error, or librdkafka's "broker handle destroyed", given when the
    bootstrap connection is replaced by the cluster's own while the request waits: seen on a
    3-broker cluster just started) is asked again until `timeout_s`."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client)
    deadline = time.monotonic() + timeout_s
    topics = list(dict.fromkeys(topics))
    created: list[str] = []
    while True:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
        wanted = [t for t in topics if t not in existing]
        if not wanted:
            return created
        futures = admin.create_topics(
            [NewTopic(t, partitions, replication) for t in wanted], request_timeout=timeout_s
        )
        again = False
        for topic, future in futures.items():
            try:
                future.result()
                created.append(topic)
            except KafkaException as exc:
                err = exc.args[0]
                if err.name() == "TOPIC_ALREADY_EXISTS":  # another collector or worker was first
                    continue
                if (
                    err.retriable() or err.code() == KafkaError._DESTROY_BROKER
                ) and time.monotonic() < deadline:
                    again = True
                    continue
                raise
        if not again:
            return created
        time.sleep(0.5)


class KafkaOutbox:
    """Messages queued durably in the state store and produced to Kafka by `flush`.

    `flush` is called from one thread at a time (a flusher); `add` from any."""

    def __init__(
        self, store: StateStore, client: dict[str, str], message_timeout_ms: int = MESSAGE_TIMEOUT_MS
    ):
        from confluent_kafka import Producer  # here: the home service never needs librdkafka

        self.store = store
        self.message_timeout_s = message_timeout_ms / 1000
        self.producer = Producer(producer_config(client, message_timeout_ms))
        self.sent = 0
        self._flushing = threading.Lock()
        self._problem = ""
        self._problem_log = LogLimit()

    def add(self, topic: str, key: str, value: dict, row_key: str) -> None:
        """Queue a message; a `row_key` already waiting is not queued again."""
        payload = json.dumps({"topic": topic, "key": key, "value": value}, separators=(",", ":"))
        self.store.enqueue(SINK, [(row_key, payload, None)])

    def pending(self) -> int:
        return self.store.pending(SINK)

    def flush(self, timeout_s: float = 10.0) -> int:
        """Produce what waits, batch by batch, each until the cluster acknowledged it or it failed;
        returns the number of messages acknowledged and removed from the outbox."""
        with self._flushing:
            done = 0
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                rows = self.store.peek(SINK, BATCH_ROWS)
                if not rows:
                    break
                acked = self._send(rows, deadline)
                done += acked
                if acked < len(rows):
                    break
            self.sent += done
            return done

    def _send(self, rows, deadline: float) -> int:
        results: dict[int, str | None] = {}

        def report(row_id: int):
            def on_delivery(err, _msg) -> None:
                results[row_id] = None if err is None else str(err)

            return on_delivery

        for row in rows:
            msg = json.loads(row.payload)
            value = json.dumps(msg["value"], separators=(",", ":")).encode()
            while True:
                try:
                    self.producer.produce(
                        msg["topic"], key=msg["key"].encode(), value=value, on_delivery=report(row.id)
                    )
                    break
                except BufferError:  # the producer's queue is full: let it send
                    self.producer.poll(0.1)
        # Settle the whole batch: a lost uplink fails it after MESSAGE_TIMEOUT_MS, so no message
        # is in the producer and in the outbox at once when the next batch starts.
        while len(results) < len(rows):
            self.producer.poll(0.1)
            if time.monotonic() > deadline + self.message_timeout_s:
                break
        # Only the acknowledged prefix leaves the outbox: a failed message is sent again with
        # everything after it, so a person's messages never arrive out of order.
        acked = []
        for row in rows:
            if results.get(row.id, "unsettled") is not None:
                self._log_problem(results.get(row.id) or "no answer")
                break
            acked.append(row.id)
        self.store.delete(acked)
        if len(acked) == len(rows) and self._problem:
            log.info("Kafka accepts messages again; %d waiting", self.pending())
            self._problem = ""
        return len(acked)

    def _log_problem(self, reason: str) -> None:
        """Log a delivery problem once when it starts or changes, then at most once a minute."""
        if reason != self._problem:
            self._problem_log.forget()
        if self._problem_log.allow():
            log.warning("Kafka not accepting messages (%s); %d kept in the outbox", reason, self.pending())
            self._problem = reason

    def close(self, timeout_s: float = 10.0) -> int:
        sent = self.flush(timeout_s)
        self.producer.flush(1.0)
        return sent
