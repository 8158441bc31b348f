"""Benchmark of `stresswatch worker` on real Apache Kafka (KRaft, from the Maven jars of tests/kafka_server.py).

Prints figures, asserts nothing. Three phases on one cluster of --brokers nodes (replication
min(3, brokers), min.insync.replicas 2 with 3):
1. throughput: --people simulated wearers x --minutes of beats queued in `beats` first, then one
   worker process takes them all; its CPU time (from /proc) against the beat time it processed
   gives the wearers one worker core follows at real time;
2. latency: --workers worker processes and the same people streamed at real time (a message per
   person every 3 s, as `collect` sends them) for --seconds; per reading, the time from its input
   message being produced to the reading being readable (p50 / p99; the collector's batching
   adds up to [kafka] batch_s before that);
3. failover: in phase 2, after half of --seconds, one worker is killed (SIGKILL); the gap is the
   longest wait from the kill to a person's next reading.

Usage: .venv/bin/python benchmarks/cluster.py [--brokers 3] [--workers 3] [--people 300]
       [--minutes 10] [--seconds 120]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from benchmarks.options import parser


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Outputs:
    """Reads `readings` in a thread: (person, time, produced, read) per reading."""

    def __init__(self, bootstrap: str, topic: str):
        from confluent_kafka import Consumer

        self.rows: list[tuple[str, float, float, float]] = []
        self.stop = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for m in self.consumer.consume(1000, timeout=0.2):
                if m.error() is None:
                    v = json.loads(m.value())
                    self.rows.append((v["person"], v["time"], m.timestamp()[1] / 1000, time.time()))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


def _config(path: Path, bootstrap: str, suffix: str, replication: int, partitions: int, state: Path) -> Path:
    path.write_text(f"""[service]
timezone = "UTC"
[state]
directory = "{state}"
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = {partitions}
replication = {replication}
worker_group = "bench-{suffix}"
beats_topic = "beats-{suffix}"
readings_topic = "readings-{suffix}"
prompts_topic = "prompts-{suffix}"
daily_topic = "daily-{suffix}"
""")
    return path


def _workers(config: Path, n: int, logdir: Path) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "stresswatch.cli", "--config", str(config), "worker"],
            stdout=open(logdir / f"worker{k}.log", "wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        for k in range(n)
    ]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.5)
    return False


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--brokers", type=int, choices=(1, 3), default=3)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--people", type=int, default=300)
    p.add_argument("--minutes", type=float, default=10.0, help="beat time per person queued for phase 1")
    p.add_argument("--seconds", type=float, default=120.0, help="wall time of the real-time phase 2")
    p.add_argument("--partitions", type=int, default=12)
    args = p.parse_args()

    import kafka_server
    from confluent_kafka import Producer

    from sinks.kafka import ensure_topics
    from stresswatch import config as configuration

    people = [f"p{k:04d}" for k in range(args.people)]
    replication = min(3, args.brokers)
    with tempfile.TemporaryDirectory(prefix="stresswatch-cluster-") as tmp:
        tmp = Path(tmp)
        cluster = kafka_server.start(tmp / "kafka", nodes=args.brokers)
        try:
            print(
                f"Kafka {kafka_server.VERSION}: {args.brokers} KRaft node(s), replication {replication}, "
                f"{args.partitions} partitions; {args.people} people; {os.cpu_count()} cores"
            )
            # -- 1: throughput of one worker over a backlog
            suffix = uuid.uuid4().hex[:6]
            cfg_path = _config(
                tmp / "a.toml", cluster.bootstrap, suffix, replication, args.partitions, tmp / "a"
            )
            k = configuration.load(cfg_path, environ={}).kafka
            ensure_topics(k.client_config(), k.topics().values(), k.partitions, k.replication)
            messages = kafka_server.beat_messages(people, args.minutes, start=time.time() - args.minutes * 60)
            kafka_server.produce(cluster.bootstrap, k.beats_topic, messages)
            expected = (
                6 * args.minutes * len(people) * 0.9
            )  # a reading per 10 s once the windows hold 20 beats
            out = _Outputs(cluster.bootstrap, k.readings_topic)
            [worker] = _workers(cfg_path, 1, tmp)
            started = time.monotonic()
            _wait(lambda: out.rows, 600)
            done = _wait(lambda: len(out.rows) >= expected and time.time() - out.rows[-1][3] > 5, 3600)
            cpu = _cpu_s(worker.pid)
            wall = time.monotonic() - started
            _stop([worker])
            out.close()
            beat_s = len(people) * args.minutes * 60
            print(
                f"\n1. throughput: {len(messages)} messages, {len(out.rows)} readings{'' if done else ' (incomplete)'} "
                f"in {wall:.0f} s wall, worker CPU {cpu:.1f} s (start-up included)"
            )
            print(f"   wearers per worker core at real time: {beat_s / cpu:,.0f}")

            # -- 2 and 3: real time, several workers, one killed
            suffix = uuid.uuid4().hex[:6]
            cfg_path = _config(
                tmp / "b.toml", cluster.bootstrap, suffix, replication, args.partitions, tmp / "b"
            )
            k = configuration.load(cfg_path, environ={}).kafka
            ensure_topics(k.client_config(), k.topics().values(), k.partitions, k.replication)
            minutes = args.seconds / 60 + 1
            messages = kafka_server.beat_messages(people, minutes, start=time.time())
            out = _Outputs(cluster.bootstrap, k.readings_topic)
            workers = [_workers(cfg_path, 1, tmp)[0] for _ in range(args.workers)]
            time.sleep(10)  # the group formed before the stream starts
            producer = Producer(
                {
                    "bootstrap.servers": cluster.bootstrap,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                }
            )
            t0, wall0 = messages[0]["beats"][0][1], time.time()
            killed_at = None
            for m in messages:
                due = wall0 + (m["beats"][-1][1] - t0)  # sent once its last beat has happened
                if due - wall0 > args.seconds:
                    break
                if killed_at is None and time.time() - wall0 > args.seconds / 2:
                    workers[0].kill()
                    killed_at = time.time()
                if due > time.time():
                    producer.poll(due - time.time())
                producer.produce(k.beats_topic, key=m["person"].encode(), value=json.dumps(m).encode())
            producer.flush(60)
            time.sleep(15)
            out.close()
            _stop(workers)
            latency = sorted(
                read - produced
                for _p, _t, produced, read in out.rows
                if killed_at is None or produced < killed_at - 15 or produced > killed_at + 60
            )
            after = {}
            for person, _t, _produced, read in out.rows:
                if killed_at is not None and read > killed_at:
                    after.setdefault(person, read)
            print(
                f"\n2. latency, {args.workers} workers, {len(people)} people at real time for {args.seconds:.0f} s: "
                f"{len(out.rows)} readings"
            )
            if latency:
                p99 = latency[min(len(latency) - 1, int(0.99 * len(latency)))]
                print(
                    f"   message produced -> reading readable: p50 {statistics.median(latency) * 1000:.0f} ms, "
                    f"p99 {p99 * 1000:.0f} ms (outside the failover)"
                )
            if killed_at is not None and after:
                print(
                    f"\n3. failover: worker killed (SIGKILL) at {killed_at - wall0:.0f} s; longest wait to a "
                    f"person's next reading {max(after.values()) - killed_at:.1f} s; people with readings after it: "
                    f"{len(after)} of {len(people)}"
                )
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
