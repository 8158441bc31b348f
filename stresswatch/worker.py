"""`stresswatch worker`: the home service's per-person path as a Quix Streams application on Kafka.

Each `beats` message (one person's beats, gaps and motion of a few seconds, key = the person) goes
through the *same* code as at home: `Service.events` (stresswatch/service.py) feeds the person's `Pipeline` and
`AlertEngine`; what the service hands its sinks (`KafkaOutputs`, behind the same seam as
sinks/fanout.py's `Sinks`) becomes records on the `readings`, `prompts` (prompt intents, each with
its deterministic id `<person>-<reading time>-<kind>`) and `daily` topics, produced by Quix in
the same checkpoint as the input offsets (at-least-once).

State, per person, in Quix State (RocksDB, backed by a changelog topic that Kafka restores on
whichever worker the consumer group gives the person's partition to):
- `snap`: a snapshot (`Service.snapshot`: the pipeline's RR window, corrector, baseline and step
  clocks, its motion track, and the engine's `to_dict`), rewritten every SNAPSHOT_EVERY_S of the
  person's beat time;
- `tail/0`, `tail/1`, ...: the messages since it (`tail_n` of them; keys beyond are left over
  from an earlier snapshot's tail, overwritten later);
- `meta`: `n`, messages taken; `last`, the time of the last beat or gap taken; `moved`, per
  motion device, the time of the last motion taken; `snap_t` and `snap_moved`, the same two at
  the snapshot; `tail_n`.
The working numpy arrays stay in memory. A worker that finds a person it does not hold (or holds
a stale copy of: `n` differs, the person was elsewhere meanwhile) rebuilds them from `snap` and
replays the tail with outputs muted (they were produced before that checkpoint); the readings that
follow equal an uninterrupted run's (tests/stresswatch/test_worker.py).

Messages are replayed after a failover (those after the last checkpoint) and a collector may send
one twice: beats and gaps no later than `last`, and motion no later than its device's `moved`, are
dropped, so a replayed message changes nothing.

A phone's answer to a prompt comes on the same topic and key (`{"person", "answer": {"id",
"action", "minutes"}, "time"}`, from `deliver mqtt`), so it reaches the worker that holds the
person in order with their beats and is replayed with the tail like them; `Service.respond` takes
it at its `time` (the engine keeps the first answer, so a replay changes nothing). What the answer
brings (the response and, after a breathing exercise, its measured effect) goes out on `prompts`
as an outcome record (`"outcome": true`), which `deliver influx` writes onto the prompt's point.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import zlib
from pathlib import Path

import orjson

from alerts.prompt import Prompt
from collector.events import Beat, Event, Gap, Motion
from processing.reading import Reading
from sinks.kafka import decode_events
from stresswatch.config import Config
from stresswatch.service import Service

log = logging.getLogger("stresswatch.worker")

# Beat time between two snapshots of a person (the issue asks for 30-60 s): the tail replayed at a
# rebuild is at most this long, and a snapshot (~60-100 kB of JSON, ~25-35 kB compressed) is
# written this often per person rather than with every message. Ours: 60 s, the upper
# bound, because snapshots were ~20 % of a worker's CPU at 45 s; a rebuild then replays up to 20
# messages of 3 s instead of 15, a few ms more.
SNAPSHOT_EVERY_S = 60.0
# A worker that dies unannounced (kill -9, power) loses its partitions after this long without
# a heartbeat (librdkafka's default is 45 s; the goal for the gap to a person's next
# reading is 30 s). Ours: 10 s, with a heartbeat every second; brokers accept 6 s and up.
SESSION_TIMEOUT_MS = 10_000
# Ours: a person whose messages stopped coming this long ago (wall time) is let go from memory:
# their partition went to another worker, or they took the strap off. Their State stays (RocksDB
# and the changelog), so a message that comes later rebuilds them (`n` tells a stale copy from a
# current one). 15 min keeps warm a person whose collector pauses for minutes; checked once a
# minute.
IDLE_FREE_S = 900.0
FREE_CHECK_S = 60.0
# Set-up tries while a just-created topic is not known to every broker yet (`run`), this far apart.
STARTUP_TRIES = 5
STARTUP_RETRY_S = 2.0
# A worker whose commit is refused because the group no longer knows it (its session timed out
# while a broker that coordinated the group was down or the machine stalled) starts its
# application again: this many times within RESTART_WINDOW_S, RESTART_WAIT_S apart (ours: a
# broker's failover takes seconds; a worker that keeps losing its group has another problem and
# exits, for its supervisor to restart and the log to show).
RESTARTS_MAX, RESTART_WINDOW_S, RESTART_WAIT_S = 5, 600.0, 2.0


class KafkaOutputs:
    """The sink seam of `Service` for a worker: readings, prompts, days and baselines become output
    records (`take()` hands them over). Corrected beats and device status are not forwarded (ours:
    beats stay in the `beats` topic; a worker has no straps)."""

    store = None
    mqtt = None
    influx = None

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.muted = False

    def take(self) -> list[dict]:
        out, self.records = self.records, []
        return out

    def _add(self, stream: str, value: dict) -> None:
        if not self.muted:
            self.records.append({"stream": stream, "value": value})

    def reading(self, r: Reading, status: dict | None = None) -> None:
        self._add("readings", r.to_dict(digits=9))

    def prompt(self, prompt: Prompt) -> None:
        self._add("prompts", prompt.to_dict())

    def daily(self, person: str, summary: dict, t: float) -> None:
        self._add("daily", {"person": person, "time": t, "summary": summary})

    def baseline(self, person: str, t: float, ref) -> None:
        """The person's resting reference as the home service writes it every SAVE_EVERY_S, as a
        record on `daily` (`deliver influx` writes the InfluxDB `baseline` point)."""
        fields = ("ln_rmssd_mean", "ln_rmssd_sd", "hr_mean", "hr_sd", "samples")
        self._add("daily", {"person": person, "time": t, "baseline": {f: getattr(ref, f) for f in fields}})

    def prompt_outcome(self, prompt: dict, response: str | None, effects: dict | None = None) -> None:
        """The answer the engine took and the measured effect, as an outcome record on `prompts`
        (`deliver influx` merges it into the prompt's point; `deliver mqtt` passes it by)."""
        self._add("prompts", {**prompt, "outcome": True, "response": response, "effects": effects or {}})

    def beat(self, beat: Beat) -> None:
        pass

    def state(self, r: Reading, status: dict | None = None) -> None:
        pass

    def device(self, person: str, device: str, status: dict, t: float) -> None:
        pass

    def save_states(self, values: dict[str, dict]) -> None:
        pass


def _json(snapshot: dict) -> bytes:
    """The snapshot as JSON that `json.loads` reads back to what `json.dumps` would have given.

    orjson (a dependency of Quix Streams) writes it ~14 times faster than `json`, but turns NaN
    and infinities into null and refuses what `json` converts (non-str keys, big ints, numpy
    scalars); reading it back and comparing catches each of those (NaN != None, a tuple != a list,
    an int key != a str key) and then `json` writes it, as it always did. The check costs about
    what orjson's writing does."""
    try:
        data = orjson.dumps(snapshot)
        if orjson.loads(data) == snapshot:
            return data
    except (TypeError, orjson.JSONDecodeError):
        pass
    return json.dumps(snapshot, separators=(",", ":")).encode()


def _packed(snapshot: dict) -> str:
    return base64.b64encode(zlib.compress(_json(snapshot), 1)).decode()


def _unpacked(text: str) -> dict:
    return json.loads(zlib.decompress(base64.b64decode(text)))


def _event_time(e: Event) -> float:
    return e.end if isinstance(e, Gap) else e.t


def _fresh(
    events: list[Event], last: float | None, moved: dict[str, float]
) -> tuple[list[Event], float | None]:
    """The events not taken before, and the new `last`: beats and gaps later than `last` (the
    time of the last one taken), motion later than the last taken from its device (`moved`,
    updated: a strap's accelerometer says what a window was after that window's beats, so motion
    has clocks of its own)."""
    fresh = []
    for e in events:
        if isinstance(e, Motion):
            if e.device not in moved or e.t > moved[e.device]:
                fresh.append(e)
                moved[e.device] = e.t
        elif last is None or _event_time(e) > last:
            fresh.append(e)
    beats = [e for e in fresh if not isinstance(e, Motion)]
    return fresh, _event_time(beats[-1]) if beats else last


class PersonProcessor:
    """The stateful step of the Quix application: one `beats` message (and the person's State)
    in, the output records out. Holds the people of this worker in one `Service`."""

    def __init__(self, cfg: Config, snapshot_every_s: float = SNAPSHOT_EVERY_S, clock=time.monotonic):
        self.outputs = KafkaOutputs()
        self.service = Service(cfg, [], sinks=self.outputs, restore=False)
        self.service.people.clear()  # people come with their messages
        self.snapshot_every_s = snapshot_every_s
        self.taken: dict[str, int] = {}  # messages each in-memory person has taken
        self.rebuilds = 0
        self.freed = 0
        self.clock = clock
        self._seen: dict[str, float] = {}  # person -> wall time of their last message
        self._next_free = clock() + FREE_CHECK_S

    def __call__(self, value: dict, state) -> list[dict]:
        person = value["person"]
        now = self.clock()
        self._seen[person] = now
        if now >= self._next_free:
            self._free_idle(now)
        # One key for the small values read and written with every message (each key is a JSON
        # round trip through RocksDB: five of them were ~10 % of the per-message path's CPU).
        meta = state.get("meta") or new_meta()
        if self.taken.get(person) != meta["n"]:
            self._rebuild(person, state, meta)
        if "answer" in value:
            self.service.respond(person, value["answer"], now=float(value["time"]))
            state.set(f"tail/{meta['tail_n']}", value)  # replayed in order with the beats
            meta["tail_n"] += 1
            events = []
        else:
            events, last = _fresh(decode_events(value), meta["last"], meta["moved"])
        if events:
            self.service.events(events)
            meta["last"] = last
            snap_t = meta["snap_t"]
            if last is not None and (
                snap_t is None or last - snap_t >= self.snapshot_every_s or last < snap_t
            ):
                state.set("snap", _packed(self.service.snapshot(person)))
                meta.update(snap_t=last, snap_moved=dict(meta["moved"]), tail_n=0)
            else:
                # A key per message: the tail as one list was read and written whole with every
                # message (~15 a snapshot): 12-15 % of the per-message path's CPU.
                state.set(f"tail/{meta['tail_n']}", value)
                meta["tail_n"] += 1
        meta["n"] += 1
        state.set("meta", meta)
        self.taken[person] = meta["n"]
        return self.outputs.take()

    def _free_idle(self, now: float) -> None:
        """Let go of the people without a message for IDLE_FREE_S (see there)."""
        self._next_free = now + FREE_CHECK_S
        idle = [p for p, t in self._seen.items() if now - t >= IDLE_FREE_S]
        for p in idle:
            del self._seen[p]
            self.service.people.pop(p, None)
            self.taken.pop(p, None)
        if idle:
            self.freed += len(idle)
            log.info(
                "let go of %d idle people (no message for %.0f min); %d held",
                len(idle),
                IDLE_FREE_S / 60,
                len(self.service.people),
            )

    def _rebuild(self, person: str, state, meta: dict) -> None:
        """The person as of their State: the snapshot, then the messages since it, outputs muted."""
        packed = state.get("snap")
        self.service.add_person(person, _unpacked(packed) if packed else None)
        tail = [state.get(f"tail/{k}") for k in range(meta["tail_n"])]
        self.outputs.muted = True
        try:
            # As when they were first taken: a message re-sent across the snapshot adds nothing.
            last = meta["snap_t"] if packed else None
            moved = dict(meta["snap_moved"]) if packed else {}
            for value in tail:
                if "answer" in value:
                    self.service.respond(person, value["answer"], now=float(value["time"]))
                    continue
                events, last = _fresh(decode_events(value), last, moved)
                if events:
                    self.service.events(events)
        finally:
            self.outputs.muted = False
            self.outputs.records.clear()
        if packed or tail:
            self.rebuilds += 1
            log.info("%s: rebuilt from a snapshot and %d message(s) after it", person, len(tail))


def new_meta() -> dict:
    """A person's `meta` State before their first message (the module docstring)."""
    return {"n": 0, "last": None, "moved": {}, "snap_t": None, "snap_moved": {}, "tail_n": 0}


def application(
    cfg: Config, state_dir: str | Path, commit_interval_s: float = 5.0, loglevel: str = "WARNING"
):
    """The Quix application of a worker and its dataframe: beats -> PersonProcessor -> outputs."""
    from quixstreams import Application
    from quixstreams.kafka.configuration import ConnectionConfig
    from quixstreams.models.topics import TopicConfig

    k = cfg.kafka
    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(k.client_config()),
        consumer_group=k.worker_group,
        auto_offset_reset="earliest",
        state_dir=str(state_dir),
        commit_interval=commit_interval_s,
        processing_guarantee="at-least-once",
        loglevel=loglevel,
        producer_extra_config={"enable.idempotence": True, "acks": "all"},
        consumer_extra_config={"session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1000},
    )
    topic_config = TopicConfig(num_partitions=k.partitions, replication_factor=k.replication)
    beats = app.topic(k.beats_topic, value_deserializer="json", key_deserializer="str", config=topic_config)
    outputs = {
        name: app.topic(
            getattr(k, f"{name}_topic"), value_serializer="json", key_serializer="str", config=topic_config
        )
        for name in ("readings", "prompts", "daily")
    }
    processor = PersonProcessor(cfg)
    sdf = app.dataframe(beats).apply(processor, stateful=True, expand=True)
    # Each record's stream rides in a header, so the value produced is the record itself.
    sdf = sdf.set_headers(lambda value, _key, _ts, _headers: [("stream", value["stream"].encode())])
    sdf = sdf.apply(lambda record: record["value"])
    sdf = sdf.to_topic(
        lambda _value, _key, _ts, headers: outputs[dict(headers)["stream"].decode()],
        key=lambda value: value["person"],
    )
    return app, sdf, processor


def run(cfg: Config, state_dir: str | Path, sleep=time.sleep) -> None:
    """Until SIGTERM / SIGINT (Quix handles both: the last checkpoint is committed).

    Workers started together race to create their changelog topic; one that asks for the topic's
    settings before every broker knows it got "Unknown topic or partition" and died (seen with 3
    workers on 3 brokers), or Quix's look-up of the changelog topic did not find it yet (seen in CI:
    "Topic ... not found on the broker"). Set-up is tried again while that is the answer,
    STARTUP_TRIES times.

    A commit refused because the group no longer knows this worker (its session timed out while the
    broker coordinating the group was killed, seen with the machine under load) used to end the
    worker; it starts its application again instead (RESTARTS_MAX within RESTART_WINDOW_S)."""
    from quixstreams.checkpointing.exceptions import CheckpointConsumerCommitError

    restarts: list[float] = []
    while True:
        app, processor = _set_up(cfg, state_dir, sleep)
        started = time.monotonic()
        try:
            app.run()
        except CheckpointConsumerCommitError as exc:
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(restarts) > RESTARTS_MAX:
                raise
            # Nothing is lost: the state and offsets of the messages since the last commit were
            # not committed, so they are processed again (readings overwrite themselves, a
            # prompt's id keeps it from reaching the phone twice).
            log.warning(
                "the consumer group no longer knows this worker (%s): a broker went away or the worker "
                "stalled; the messages since the last commit are processed again; starting again in %.0f s",
                exc,
                RESTART_WAIT_S,
            )
            sleep(RESTART_WAIT_S)
            continue
        log.info(
            "stopped after %.0f s; %d people held, %d rebuilt",
            time.monotonic() - started,
            len(processor.service.people),
            processor.rebuilds,
        )
        return


def _set_up(cfg: Config, state_dir: str | Path, sleep):
    """The worker's application and its processor, set up again while a broker does not know a
    topic yet (see `run`)."""
    from confluent_kafka import KafkaError, KafkaException
    from quixstreams.models.topics.exceptions import TopicNotFoundError

    for attempt in range(1, STARTUP_TRIES + 1):
        try:
            app, _sdf, processor = application(cfg, state_dir, loglevel="INFO")
            return app, processor
        except (KafkaException, TopicNotFoundError) as exc:
            # The broker's answer (KafkaException), or Quix's own look-up of the changelog topic
            # another worker has just created (TopicNotFoundError).
            unknown = (
                isinstance(exc, TopicNotFoundError) or exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            )
            if attempt == STARTUP_TRIES or not unknown:
                raise
            log.warning(
                "a topic is not known to every broker yet (%s); setting up again in %.0f s",
                exc if isinstance(exc, TopicNotFoundError) else exc.args[0].str(),
                STARTUP_RETRY_S,
            )
            sleep(STARTUP_RETRY_S)
    raise AssertionError("unreachable")
