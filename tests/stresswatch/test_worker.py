"""`stresswatch worker` on real Kafka: the home service's per-person path in Quix Streams, and a
worker that gains people mid-stream rebuilds them from snapshot + tail to the same outputs, from the
changelog or from old local state."""

from __future__ import annotations

import uuid

from kafka_server import beat_messages, consume, produce

from stresswatch import config as configuration
from stresswatch import worker

PEOPLE = ("ada", "bo")
MINUTES = 30  # the demo day's rest, work stress and the breathing exercise after the prompt


def _config(kafka, suffix: str) -> configuration.Config:
    env = {"STRESSWATCH_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap, "STRESSWATCH_KAFKA__PARTITIONS": "2",
           "STRESSWATCH_KAFKA__REPLICATION": "1", "STRESSWATCH_KAFKA__WORKER_GROUP": f"workers-{suffix}",
           "STRESSWATCH_SERVICE__TIMEZONE": "UTC",
           # beats only (motion does not travel through Kafka yet), seated as in a study: no RR-only gate
           "STRESSWATCH_PROCESSING__RR_GATE": "false"}
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
    messages = beat_messages(PEOPLE, MINUTES)
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
