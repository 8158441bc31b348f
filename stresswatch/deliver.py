"""`stresswatch deliver influx|mqtt`: the workers' output topics to InfluxDB, or to the phones over MQTT.

Each is its own consumer group (`stresswatch-influx`, `stresswatch-mqtt`) reading `readings`,
`prompts` and `daily`, and hands what it reads to the home service's sinks (sinks/fanout.py), whose
SQLite outbox keeps it until the server accepts it; a batch's offsets are committed once it is
in the outbox (at-least-once). A replay after a failover is harmless by construction:
- InfluxDB: a reading is a point at its person and time, and a second write of the same series
  and time overwrites it;
- MQTT: a prompt intent carries a deterministic id (`<person>-<reading time>-<kind>`); the
  notifier records each id in the state store as it queues the prompt (sinks/store.py `prompts`)
  and skips an id it has queued already, so a phone never gets one prompt twice.

The phones' answers go the other way: `deliver mqtt` takes them as the home service does (only
for a prompt it sent, to that person; sinks/mqtt.py) and queues each as a message on `beats`
under the person's key (`{"person", "answer": {"id", "action", "minutes"}, "time"}`, `time` when
it came), through a Kafka outbox in its state store, so the worker that holds the person takes it
in order with their beats (stresswatch/worker.py). The workers' outcome records on `prompts` (the
answer taken, the measured effect) go to InfluxDB onto the prompt's point, never to a phone.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from processing.baseline import Reference
from processing.reading import Reading
from sinks.fanout import Sinks, SinkSettings
from sinks.kafka import KafkaOutbox
from sinks.line_protocol import prompt_line
from sinks.store import StateStore
from stresswatch.config import Config

log = logging.getLogger("stresswatch.deliver")

TARGETS = ("influx", "mqtt")
# Messages read per batch; its offsets are committed once all of it is in the outbox.
BATCH = 500


class Delivery:
    """One consumer of the output topics and the sink it feeds."""

    def __init__(self, cfg: Config, target: str, state_path: Path | None = None):
        from confluent_kafka import Consumer  # here: the home service never needs librdkafka

        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.target = target
        k = cfg.kafka
        self.topics = {k.readings_topic: "readings", k.prompts_topic: "prompts", k.daily_topic: "daily"}
        settings = cfg.sink_settings()
        state_path = state_path or settings.state_path
        only = SinkSettings(
            state_path,
            mqtt=settings.mqtt if target == "mqtt" else None,
            influx=settings.influx if target == "influx" else None,
            mqtt_outbox_max_messages=settings.mqtt_outbox_max_messages,
        )
        if (only.mqtt if target == "mqtt" else only.influx) is None:
            raise ValueError(f"deliver {target}: [{target}] url is not set")
        self.store = StateStore(state_path, limits=only.outbox_limits())
        self.sinks = Sinks(only, store=self.store, inline_flush=False)
        self.consumer = Consumer(
            {
                **k.client_config(),
                "group.id": f"stresswatch-{target}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self.consumer.subscribe(list(self.topics))
        self.skipped_prompts = 0
        self.handled = 0
        self.answers: KafkaOutbox | None = None
        if target == "mqtt":
            self.answers = KafkaOutbox(self.store, k.client_config())
            self.beats_topic = k.beats_topic
            self.sinks.mqtt.on_response = self._answer

    def _answer(self, person: str, response: dict) -> None:
        """A phone's answer (on the MQTT sink's thread): queued for the person's worker."""
        answer = {"id": response["id"], "action": response["action"], "minutes": response.get("minutes")}
        self.answers.add(
            self.beats_topic,
            person,
            {"person": person, "answer": answer, "time": time.time()},
            row_key=f"answer/{person}/{answer['id']}/{answer['action']}",  # a redelivery waits once
        )

    def step(self, timeout_s: float = 1.0) -> int:
        """One batch: read, hand to the sink, flush InfluxDB, commit; the number of messages."""
        import json

        messages = [m for m in self.consumer.consume(BATCH, timeout=timeout_s) if m.error() is None]
        for m in messages:
            self._handle(self.topics[m.topic()], json.loads(m.value()))
        if self.target == "influx":
            self.sinks.flush()
        else:
            self.answers.flush(timeout_s)
        if messages:
            self.consumer.commit(asynchronous=False)  # all of them are in the outbox by now
            self.handled += len(messages)
        return len(messages)

    def _handle(self, stream: str, value: dict) -> None:
        s = self.sinks
        if stream == "readings":
            s.reading(Reading.from_dict(value))
        elif stream == "daily":
            if "baseline" in value:  # the person's resting reference (stresswatch/worker.py)
                s.baseline(value["person"], value["time"], Reference(**value["baseline"]))
            else:
                s.daily(value["person"], value["summary"], value["time"])
        elif self.target == "influx":
            if value.get("outcome"):
                s.prompt_outcome(value, value["response"], value["effects"])
            else:
                s.influx.add([prompt_line(value)])
        elif value.get("outcome"):
            return  # the answer and its effect: for InfluxDB, not for the phone
        else:
            known = self.store.prompt(value["id"])
            if known is not None and known["status"] != "pending":
                self.skipped_prompts += 1  # queued and sent before: a replay
                return
            s.mqtt.publish_prompt_body(
                value
            )  # records the id, then queues (a waiting one is not queued twice)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.close()

    def close(self) -> None:
        if self.answers is not None:
            self.answers.flush(5.0)  # what stays queued goes at the next start
        self.consumer.close()
        self.sinks.close()
        log.info(
            "stopped: %d message(s) handled, %d replayed prompt(s) skipped",
            self.handled,
            self.skipped_prompts,
        )
