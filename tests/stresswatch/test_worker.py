"""`stresswatch worker` on real Kafka: the home service's per-person path in Quix Streams, and a
worker that gains people mid-stream rebuilds them from snapshot + tail to the same outputs, from the
changelog or from old local state."""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter

import numpy as np
import pytest
from kafka_server import beat_messages, consume, home_outputs, produce

from collector.events import Acceleration, HeartRate
from sinks.kafka import KafkaOutbox, decode_events, ensure_topics
from sinks.store import StateStore
from stresswatch import config as configuration
from stresswatch import worker
from stresswatch.collect import Collector
from stresswatch.sources import simulated_day, simulated_phone

PEOPLE = ("ada", "bo")
MINUTES = 30  # the demo day's rest, work stress and the breathing exercise after the prompt


def _config(kafka, suffix: str) -> configuration.Config:
    env = {
        "STRESSWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
        "STRESSWATCH_KAFKA__PARTITIONS": "2",
        "STRESSWATCH_KAFKA__REPLICATION": "1",
        "STRESSWATCH_KAFKA__WORKER_GROUP": f"workers-{suffix}",
        "STRESSWATCH_SERVICE__TIMEZONE": "UTC",
    }
    for stream in ("beats", "readings", "prompts", "daily"):
        env[f"STRESSWATCH_KAFKA__{stream.upper()}_TOPIC"] = f"{stream}-{suffix}"
    return configuration.load(environ=env)


def _run_worker(cfg, state_dir) -> worker.PersonProcessor:
    """A worker until it has been idle for a few seconds (everything there is taken), stopped cleanly."""
    app, _sdf, processor = worker.application(cfg, state_dir, commit_interval_s=1.0)
    app.run(timeout=3.0, collect=False)
    return processor


def _outputs(kafka, cfg, stream: str) -> dict:
    """Every output of `stream` by (person, id or time); a replayed output must be the same output."""
    got = consume(kafka.bootstrap, getattr(cfg.kafka, f"{stream}_topic"))
    by_id = {}
    for key, value in got:
        assert key == value["person"]
        ident = (value["person"], value.get("id") or value["time"])
        assert ident not in by_id or by_id[ident] == value
        by_id[ident] = value
    return by_id


def test_a_worker_that_gains_people_mid_stream_rebuilds_them_to_the_same_outputs(kafka, tmp_path):
    messages = beat_messages(
        PEOPLE, MINUTES, phone=True
    )  # the phone says still: the RR-only gate lets stress through
    # Not on snapshots: each rebuild replays a tail.
    first, second = len(messages) * 11 // 20, len(messages) * 16 // 20

    whole = _config(kafka, "whole-" + uuid.uuid4().hex[:6])
    produce(kafka.bootstrap, whole.kafka.beats_topic, messages)
    _run_worker(whole, tmp_path / "whole")

    parts = _config(kafka, "parts-" + uuid.uuid4().hex[:6])
    produce(kafka.bootstrap, parts.kafka.beats_topic, messages[:first])
    a = _run_worker(parts, tmp_path / "a")
    produce(kafka.bootstrap, parts.kafka.beats_topic, messages[first:second])
    # Another worker, with no local state: it gets the partitions and the State from the changelog.
    b = _run_worker(parts, tmp_path / "b")
    produce(kafka.bootstrap, parts.kafka.beats_topic, messages[second:])
    # The first worker again, on its old local state (behind the changelog by b's part): it catches up.
    a_again = _run_worker(parts, tmp_path / "a")
    assert (a.rebuilds, b.rebuilds, a_again.rebuilds) == (0, len(PEOPLE), len(PEOPLE))

    readings = _outputs(kafka, whole, "readings")
    assert len(readings) >= len(PEOPLE) * (MINUTES * 6 - 12)  # a reading every 10 s once the window fills
    assert _outputs(kafka, parts, "readings") == readings  # every field, to the bit
    prompts = _outputs(kafka, whole, "prompts")
    assert prompts and all(p["kind"] == "acute" for p in prompts.values())  # the work stress was prompted
    assert _outputs(kafka, parts, "prompts") == prompts
    # The resting reference, as the home service writes it (every 5 min of readings, and with a
    # prompt), on `daily`; a rebuilt person writes it when the original did.
    baselines = {k: v for k, v in _outputs(kafka, whole, "daily").items() if "baseline" in v}
    times = sorted(t for p, t in baselines if p == PEOPLE[0])
    assert len(times) >= MINUTES // 5 - 1 and all(b - a <= 320 for a, b in itertools.pairwise(times))
    assert all(40 < v["baseline"]["hr_mean"] < 100 for v in baselines.values())
    assert baselines[(PEOPLE[0], times[-1])]["baseline"]["samples"] >= 20  # the person's own rest by then
    assert {k: v for k, v in _outputs(kafka, parts, "daily").items() if "baseline" in v} == baselines


def _strap_walk(person: str, start: float, seconds: float) -> list[Acceleration]:
    """A chest strap's accelerometer (25 Hz, a frame a second) while its wearer walks at 110
    steps/min: gravity plus a vertical sinusoid of 315 mg (MAD ~200 mg, between the 3 and 6 MET
    cut-points; tests/processing/test_motion.py `gait`), plus noise."""
    rng = np.random.default_rng(7)
    t = start + np.arange(0.0, seconds, 1 / 25)
    vertical = 1000.0 + 315.0 * np.sin(2 * np.pi * (110 / 60) * (t - start))
    x, y, z = rng.normal(0, 20, (3, len(t)))
    return [
        Acceleration(
            person,
            "strap",
            tuple(t[k : k + 25]),
            tuple(x[k : k + 25]),
            tuple(vertical[k : k + 25] + y[k : k + 25]),
            tuple(z[k : k + 25]),
        )
        for k in range(0, len(t), 25)
    ]


def test_a_workers_readings_carry_motion_as_the_home_services_do(kafka, tmp_path):
    """Beats, the phone's activity and a strap's accelerometer through `collect` (its outbox, a
    message per person every 3 s of the stream) and a worker: the readings and prompts equal the
    home service's over the same events, each reading's `motion` included."""
    cfg = _config(kafka, "motion-" + uuid.uuid4().hex[:6])
    ensure_topics(
        cfg.kafka.client_config(), cfg.kafka.topics().values(), cfg.kafka.partitions, cfg.kafka.replication
    )
    events = []
    for person in PEOPLE:
        beats, _ = simulated_day(seed=len(person), artifacts=0.005, person=person)
        beats = [b for b in beats if b.t - beats[0].t < MINUTES * 60]
        walk = _strap_walk(person, beats[0].t + 4 * 60, 3 * 60) if person == "ada" else []
        # A frame arrives when its last sample is taken: the order the home service gets them in.
        events += sorted(
            [*beats, *simulated_phone(person)[:MINUTES], *walk],
            key=lambda e: e.t[-1] if isinstance(e, Acceleration) else e.t,
        )
    home_readings, home_prompts = home_outputs(cfg, events)

    collector = Collector(
        cfg, [], KafkaOutbox(StateStore(tmp_path / "collect.db"), cfg.kafka.client_config())
    )
    for person in PEOPLE:  # the collector's batching on the stream's clock (batch_s = 3 s), not the wall's
        mine = [e for e in events if e.person == person]
        cut_at = None
        for e in mine:
            t = e.t[-1] if isinstance(e, Acceleration) else e.t
            if cut_at is not None and t >= cut_at:
                collector.cut()
                cut_at = None
            cut_at = cut_at or t + cfg.kafka.batch_s
            collector.events([e])
        collector.cut()
    assert collector.outbox.flush(60) and collector.outbox.pending() == 0
    _run_worker(cfg, tmp_path / "worker")

    readings = _outputs(kafka, cfg, "readings")
    assert readings == {(p, t): r for (p, t), r in home_readings.items()}  # every field, to the bit
    motion = Counter(r["motion"] for r in readings.values())
    assert motion["moving"] >= 15 and motion["still"] >= len(readings) // 2, (
        motion
    )  # the walk; the phone's still
    moving = {p for (p, _t), r in readings.items() if r["motion"] == "moving"}
    assert moving == {"ada"}  # only ada's strap saw the walk
    prompts = {p["id"]: p for p in _outputs(kafka, cfg, "prompts").values()}
    assert prompts == home_prompts and prompts  # the work stress prompted, with the RR-only gate on


def test_a_worker_that_starts_before_every_broker_knows_its_changelog_topic_sets_up_again(monkeypatch):
    """The answer Quix got when three workers started together on three brokers (one died of it)."""
    from confluent_kafka import KafkaError, KafkaException
    from quixstreams.models.topics.exceptions import TopicNotFoundError

    cfg = configuration.load(environ={})
    answers = [
        KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "Broker: Unknown topic or partition")),
        # Quix's own look-up of the changelog topic another worker had just created (seen in CI)
        TopicNotFoundError('Topic "changelog__workers--beats--default" not found on the broker'),
    ]
    ran = []

    class App:
        def run(self):
            ran.append(True)

    def application(*_args, **_kw):
        if answers:
            raise answers.pop()
        return App(), None, worker.PersonProcessor(cfg)

    monkeypatch.setattr(worker, "application", application)
    slept = []
    worker.run(cfg, "unused", sleep=slept.append)
    assert ran == [True] and slept == [worker.STARTUP_RETRY_S] * 2

    # Anything else is not waited out: it is the person's to fix.
    answers[:] = [KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not authorised"))]
    with pytest.raises(KafkaException):
        worker.run(cfg, "unused", sleep=slept.append)
    assert len(slept) == 2


def test_a_worker_whose_group_forgot_it_while_a_broker_was_down_starts_again(monkeypatch, caplog):
    """Seen with a broker killed on a loaded machine: the session timed out while the group's
    coordinator moved, and the next commit was refused with "Unknown member"."""
    from confluent_kafka import KafkaError
    from quixstreams.checkpointing.exceptions import CheckpointConsumerCommitError

    def unknown_member():
        return CheckpointConsumerCommitError(
            KafkaError(KafkaError.UNKNOWN_MEMBER_ID, "Commit failed: Unknown member")
        )

    cfg = configuration.load(environ={})
    failures = [unknown_member()]
    set_up = []

    class App:
        def run(self):
            if failures:
                raise failures.pop()

    def application(*_args, **_kw):
        set_up.append(True)
        return App(), None, worker.PersonProcessor(cfg)

    monkeypatch.setattr(worker, "application", application)
    slept = []
    with caplog.at_level("WARNING", logger="stresswatch.worker"):
        worker.run(cfg, "unused", sleep=slept.append)
    assert len(set_up) == 2 and slept == [worker.RESTART_WAIT_S]
    assert "no longer knows this worker" in caplog.text and "processed again" in caplog.text

    # A worker that keeps losing its group has another problem: it exits after RESTARTS_MAX.
    failures[:] = [unknown_member() for _ in range(worker.RESTARTS_MAX + 1)]
    with pytest.raises(CheckpointConsumerCommitError):
        worker.run(cfg, "unused", sleep=slept.append)
    assert len(slept) == 1 + worker.RESTARTS_MAX


@pytest.mark.parametrize(
    "snapshot",
    [
        {"rr": [812.5, 0.1 + 0.2, 1e-300, -0.0], "t": 1.7e9, "none": None, "ok": True, "by": {"a": [1, 2]}},
        {"baseline": {"mean": float("nan"), "sd": float("inf"), "n": 0}},  # orjson would write null
        {"spans": [(1.0, 2.0, "walk")]},  # a tuple comes back as a list
        {"hours": {7: 1.5}},  # an int key comes back as a str
        {"count": 2**70},  # beyond orjson's 64 bits
        {"x": np.float64(0.1), "y": [np.float64("nan")]},
    ],
)
def test_a_packed_snapshot_unpacks_to_what_json_would_have_given(snapshot):
    """The snapshot is written with orjson for speed, but what a rebuild reads is what `json`
    round-trips to, to the bit (NaN stays NaN; tuples, int keys and big ints as `json` has them)."""
    import json

    expected = json.loads(json.dumps(snapshot))
    got = worker._unpacked(worker._packed(snapshot))
    assert json.dumps(got) == json.dumps(expected)
    assert repr(got) == repr(expected)


def test_a_strap_without_rr_intervals_gives_the_home_services_readings_through_kafka(kafka, tmp_path):
    """A band that sends heart rate alone (once a second, no RR intervals) beside a chest strap:
    through `collect` and a worker, its heart rates become the readings the home service makes of
    them (heart rate and activity, no HRV), the strap's as before."""
    cfg = _config(kafka, "hr-" + uuid.uuid4().hex[:6])
    ensure_topics(
        cfg.kafka.client_config(), cfg.kafka.topics().values(), cfg.kafka.partitions, cfg.kafka.replication
    )
    beats, _ = simulated_day(seed=3, artifacts=0.005, person="ada")
    beats = [b for b in beats if b.t - beats[0].t < 10 * 60]
    t0 = beats[0].t
    band = [
        HeartRate("bo", "band", t0 + k, 62.0 + 8.0 * (k // 120 % 2), contact=True, source="ble")
        for k in range(10 * 60)
    ]
    events = sorted([*beats, *band], key=lambda e: e.t)
    home_readings, _ = home_outputs(cfg, events)
    assert any(p == "bo" for p, _t in home_readings)  # the home service makes readings of them

    collector = Collector(
        cfg, [], KafkaOutbox(StateStore(tmp_path / "collect.db"), cfg.kafka.client_config())
    )
    cut_at = None
    for e in events:  # a message per person every batch_s of the stream
        if cut_at is not None and e.t >= cut_at:
            collector.cut()
            cut_at = None
        cut_at = cut_at or e.t + cfg.kafka.batch_s
        collector.events([e])
    collector.cut()
    assert collector.outbox.flush(60) and collector.outbox.pending() == 0
    _run_worker(cfg, tmp_path / "worker")

    readings = _outputs(kafka, cfg, "readings")
    assert readings == home_readings  # every field, to the bit
    band_readings = [r for (p, _t), r in readings.items() if p == "bo"]
    assert len(band_readings) >= 50 and all(r["rmssd_ms"] is None and r["hr_bpm"] for r in band_readings)


def _with_answers(messages: list[dict], prompts: dict, action: str, after_s: float) -> list[dict]:
    """`messages` with a phone's answer to each prompt, `after_s` after it, as `deliver mqtt`
    queues it: on `beats`, the person's key, after the person's beats up to then."""
    out = list(messages)
    for p in sorted(prompts.values(), key=lambda p: p["time"]):
        at = p["time"] + after_s
        k = next(i for i, m in enumerate(out) if "beats" in m and m["beats"] and m["beats"][0][1] >= at)
        answer = {
            "person": p["person"],
            "answer": {"id": p["id"], "action": action, "minutes": None},
            "time": at,
        }
        out.insert(k, answer)
    return out


def _home_with_answers(cfg, messages: list[dict]) -> list[dict]:
    """The home service's outputs over the same messages, answers taken where they come."""
    from stresswatch.service import Service

    outputs = worker.KafkaOutputs()
    service = Service(cfg, [], sinks=outputs, restore=False)
    service.people.clear()
    for person in dict.fromkeys(m["person"] for m in messages):
        service.add_person(person)
    for m in messages:
        if "answer" in m:
            service.respond(m["person"], m["answer"], now=m["time"])
        else:
            service.events(decode_events(m))
    return [r["value"] for r in outputs.take() if r["stream"] == "prompts"]


def test_a_phones_answer_reaches_the_persons_worker_in_order_and_survives_a_rebuild(kafka, tmp_path):
    """Issue 19: answers routed to the workers. A `done` answer on `beats` (as `deliver mqtt`
    queues it) is taken by the worker that holds the person, where it comes among their beats: an
    outcome record on `prompts` carries the response (and, once measured, the breathing's effect),
    equal to the home service's; a worker that rebuilds the person after the answer replays it."""
    cfg0 = _config(kafka, "ans0-" + uuid.uuid4().hex[:6])
    plain = beat_messages(PEOPLE, MINUTES, phone=True)
    _readings, prompts = home_outputs(cfg0, [e for m in plain for e in decode_events(m)])
    assert prompts
    messages = _with_answers(plain, prompts, "done", after_s=30.0)
    home = _home_with_answers(cfg0, messages)
    outcomes = {(o["id"], o["response"]) for o in home if o.get("outcome")}
    assert {(pid, "done") for pid in prompts} <= outcomes  # the home service took each answer

    whole = _config(kafka, "ans-whole-" + uuid.uuid4().hex[:6])
    produce(kafka.bootstrap, whole.kafka.beats_topic, messages)
    _run_worker(whole, tmp_path / "whole")
    parts = _config(kafka, "ans-parts-" + uuid.uuid4().hex[:6])
    cut = max(i for i, m in enumerate(messages) if "answer" in m) + 3  # just after the last answer
    produce(kafka.bootstrap, parts.kafka.beats_topic, messages[:cut])
    a = _run_worker(parts, tmp_path / "a")
    produce(kafka.bootstrap, parts.kafka.beats_topic, messages[cut:])
    b = _run_worker(parts, tmp_path / "b")  # no local state: rebuilds, replaying the answers in the tail
    assert (a.rebuilds, b.rebuilds) == (0, len(PEOPLE))

    def outcome_records(cfg) -> list[dict]:
        got = consume(kafka.bootstrap, cfg.kafka.prompts_topic)
        return sorted((v for _k, v in got if v.get("outcome")), key=lambda v: (v["id"], json.dumps(v)))

    want = sorted((o for o in home if o.get("outcome")), key=lambda v: (v["id"], json.dumps(v)))
    assert outcome_records(whole) == want
    assert outcome_records(parts) == want
    assert _outputs(kafka, parts, "readings") == _outputs(kafka, whole, "readings")


class _State:
    """A person's Quix State as the processor sees it: get/set of JSON values (a copy each way,
    as RocksDB stores them)."""

    def __init__(self):
        self.data: dict[str, str] = {}

    def get(self, key: str, default=None):
        return json.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value) -> None:
        self.data[key] = json.dumps(value)


def test_a_worker_lets_go_of_people_it_no_longer_gets_and_rebuilds_them_if_they_come_back():
    """Issue 19: a worker held every person it ever had (a dead worker's partitions moved back, a
    strap taken off). After IDLE_FREE_S without a message a person is let go from memory; a
    message that comes later rebuilds them from their State, to the same outputs."""
    cfg = configuration.load(environ={"STRESSWATCH_SERVICE__TIMEZONE": "UTC"})
    messages = beat_messages(PEOPLE, 12, phone=True)
    pause = next(i for i, m in enumerate(messages) if m["beats"][0][1] - messages[0]["beats"][0][1] >= 300)
    wall = [0.0]
    freeing = worker.PersonProcessor(cfg, clock=lambda: wall[0])
    keeping = worker.PersonProcessor(cfg, clock=lambda: 0.0)

    def run(processor, states, batch):
        return [rec for m in batch for rec in processor(m, states.setdefault(m["person"], _State()))]

    a_states, b_states = {}, {}
    out = run(freeing, a_states, messages[:pause])
    kept = run(keeping, b_states, messages[:pause])
    # bo's collector goes quiet for 16 min of wall time while ada's messages keep coming
    ada = [m for m in messages[pause:] if m["person"] == "ada"][:20]
    for m in ada:
        wall[0] += 50.0
        out += run(freeing, a_states, [m])
    kept += run(keeping, b_states, ada)
    assert set(freeing.service.people) == {"ada"} and freeing.freed == 1
    rest = [m for m in messages[pause:] if m not in ada]
    out += run(freeing, a_states, rest)
    kept += run(keeping, b_states, rest)
    assert freeing.rebuilds == 1 and keeping.rebuilds == 0 and set(freeing.service.people) == set(PEOPLE)
    assert len(out) > 100 and out == kept  # every output, to the bit
