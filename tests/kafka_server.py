"""Real Apache Kafka for the tests: KRaft nodes from the Maven Central artifacts, run with `java -cp`.

`libs()` fetches `org.apache.kafka:kafka_2.13:VERSION` and its runtime dependencies once with
`mvn dependency:copy-dependencies` (a throw-away pom in a temporary folder) into
~/.cache/stresswatch/kafka-VERSION/libs, under a lock so parallel sessions fetch it once (as
tests/homeassistant_server.py caches Home Assistant's venv). `start(workdir, nodes)` formats KRaft
storage for 1 or 3 combined broker/controller nodes on free loopback ports and starts them the way
the distribution's kafka-server-start.sh does (`java -cp 'libs/*' kafka.Kafka server.properties`),
with small heaps; `Cluster.stop()` always stops them.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# The newest 3.x (3.9 is the last line with both KRaft and the old tools; 4.x needs Java 17 too but
# drops nothing we use). Every test of the Kafka path runs against this one.
VERSION = "3.9.1"
# The distribution ships reload4j as slf4j's binding; slf4j-simple is the smallest one, so a node's
# log (warnings and errors only, see JAVA_OPTS) says why it did not start.
EXTRA_ARTIFACTS = ["org.slf4j:slf4j-simple:1.7.36"]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stresswatch" / f"kafka-{VERSION}"
# Small heaps and a quick JIT: the test machine has 2 cores shared by several people.
JAVA_OPTS = [
    "-Xms64m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xss512k",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
]

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>stresswatch.tests</groupId><artifactId>kafka-fetch</artifactId><version>1</version>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


def _dependency(coordinates: str) -> str:
    group, artifact, version = coordinates.split(":")
    return (
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
    )


def libs() -> Path:
    """The folder of Kafka's jars, fetched from Maven Central on first use and reused after."""
    target = CACHE / "libs"
    ready = CACHE / ".stresswatch-ready"
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / f"kafka-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return target
        shutil.rmtree(CACHE, ignore_errors=True)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("Maven (mvn) is not installed; scripts/test installs it with apt")
        with tempfile.TemporaryDirectory() as tmp:
            deps = "\n".join(
                _dependency(c) for c in [f"org.apache.kafka:kafka_2.13:{VERSION}", *EXTRA_ARTIFACTS]
            )
            (Path(tmp) / "pom.xml").write_text(POM.format(dependencies=deps))
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={target}",
                ],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode or not any(target.glob(f"kafka_2.13-{VERSION}.jar")):
            shutil.rmtree(CACHE, ignore_errors=True)
            raise RuntimeError(
                f"fetching Kafka {VERSION} with Maven failed ({result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
        ready.write_text(f"org.apache.kafka:kafka_2.13:{VERSION} {' '.join(EXTRA_ARTIFACTS)}\n")
    return target


def _free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports (held open together so none is handed out twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Node:
    """One combined broker/controller: its id, ports, folder and process."""

    node_id: int
    port: int
    controller_port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "kafka.log"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Cluster:
    """Running KRaft nodes; `bootstrap` is what clients are given."""

    nodes: list[Node]
    libs: Path
    cluster_id: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes if n.alive()) or ",".join(
            f"127.0.0.1:{n.port}" for n in self.nodes
        )

    def start_node(self, node: Node) -> None:
        with open(node.log, "ab") as out:
            node.proc = subprocess.Popen(
                [
                    "java",
                    *JAVA_OPTS,
                    "-cp",
                    f"{self.libs}/*",
                    "kafka.Kafka",
                    str(node.workdir / "server.properties"),
                ],
                cwd=node.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, node: Node) -> None:
        """kill -9: the node loses whatever it had not written."""
        self._signal(node, signal.SIGKILL)

    def restart(self, node: Node, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again on its ports and data, ready for clients."""
        self.start_node(node)
        self.wait_ready(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            self._signal(node, signal.SIGTERM, wait_s=20)

    @staticmethod
    def _signal(node: Node, sig: int, wait_s: float = 10) -> None:
        if node.alive():
            node.proc.send_signal(sig)
            try:
                node.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(5)
        node.proc = None

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until every live node answers a metadata request listing all of them as brokers."""
        from confluent_kafka.admin import AdminClient  # the tests' Kafka client, from the [kafka] extra

        deadline = time.monotonic() + timeout
        want = {n.node_id for n in self.nodes if n.alive()}
        last = "no answer"
        while time.monotonic() < deadline:
            dead = [n for n in self.nodes if n.proc is not None and n.proc.poll() is not None]
            if dead:
                raise RuntimeError(
                    f"Kafka node {dead[0].node_id} exited with {dead[0].proc.returncode}; "
                    f"its log:\n{dead[0].log.read_text(errors='replace')[-3000:]}"
                )
            try:
                md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
                if want <= set(md.brokers):
                    return
                last = f"brokers {sorted(md.brokers)} of {sorted(want)}"
            except Exception as exc:  # noqa: BLE001  (not up yet: any client error means wait)
                last = str(exc)
            time.sleep(0.3)
        logs = "\n".join(f"node {n.node_id}: {n.log.read_text(errors='replace')[-1500:]}" for n in self.nodes)
        raise TimeoutError(f"Kafka not ready after {timeout:.0f} s ({last}); logs:\n{logs}")


def start(workdir: Path, nodes: int = 1, timeout: float = 120.0, **extra: str) -> Cluster:
    """`nodes` (1 or 3) combined broker/controller nodes, formatted and started, ready for clients.
    Internal topics are replicated to every node (3 nodes: `min.insync.replicas` 2); `extra` adds
    server properties."""
    jars = libs()
    ports = _free_ports(2 * nodes)
    cluster_id = _random_uuid()
    members = [Node(k + 1, ports[2 * k], ports[2 * k + 1], workdir / f"node{k + 1}") for k in range(nodes)]
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in members)
    replicas = min(nodes, 3)
    props = {
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min(replicas, 2)),
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min(replicas, 2)),
        "num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.num.partitions": "4",
        "auto.create.topics.enable": "true",
        "log.segment.bytes": str(16 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        **extra,
    }
    cluster = Cluster(members, jars, cluster_id, props)
    for n in members:
        n.workdir.mkdir(parents=True, exist_ok=True)
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(n.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:{n.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{n.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(n.workdir / "data"),
            **props,
        }
        (n.workdir / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    _format(members, jars, cluster_id)
    try:
        for n in members:
            cluster.start_node(n)
        cluster.wait_ready(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def consume(
    bootstrap: str,
    topic: str,
    until=None,
    timeout: float = 60.0,
    group: str | None = None,
    idle: float = 2.0,
    timestamps: list | None = None,
) -> list:
    """Every message of `topic` from the start, (key, value as JSON) in order per partition, read
    until `until(messages)` is true, or (without `until`) nothing came for `idle` s after the
    partitions were assigned, or `timeout` s pass (then what was read). `timestamps` gets each
    message's Kafka time (unix seconds: when it was produced)."""
    import json

    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list = []
    deadline = time.monotonic() + timeout
    quiet_since = None
    stamps = timestamps if timestamps is not None else []
    try:
        while time.monotonic() < deadline and not (until is not None and until(got)):
            msg = consumer.poll(0.3)
            if msg is not None and msg.error() is None:
                got.append((msg.key().decode() if msg.key() else None, json.loads(msg.value())))
                stamps.append(msg.timestamp()[1] / 1000)
                quiet_since = time.monotonic()
            elif until is None and consumer.assignment():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > idle:
                    break
    finally:
        consumer.close()
    return got


class Reader:
    """Reads a topic from the start in a thread of its own (one consumer group join for a whole
    test): `messages` holds (key, value as JSON, when it was read, unix seconds) as they come.
    (Not the message's Kafka time: Quix gives an output the time of the input it came from.)"""

    def __init__(self, bootstrap: str, topic: str):
        import threading

        self.bootstrap, self.topic = bootstrap, topic
        self.messages: list[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import json

        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.topic])
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is not None and msg.error() is None:
                    key = msg.key().decode() if msg.key() else None
                    self.messages.append((key, json.loads(msg.value()), time.time()))
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@functools.cache
def _demo_day_beats(seed: int, artifacts: float) -> list:
    """The demo day's beats for `seed` (its person field is not sent: `encode_events` takes the
    person apart). Cached: people whose names give the same seed share it, so 300 people cost ~30
    simulated days, not 300."""
    from stresswatch.sources import simulated_day

    return simulated_day(seed=seed, artifacts=artifacts, person="")[0]


def beat_messages(
    people,
    minutes: float,
    message_s: float = 3.0,
    artifacts: float = 0.005,
    start: float | None = None,
    phone: bool = False,
) -> list[dict]:
    """Simulated wearers' beats (the demo day from its start, moved to `start` if given) as a
    collector sends them: a `beats` message per person every `message_s`, all people interleaved
    in time order. The beats are the demo day of seed `sum(map(ord, person))`; with `phone`, the
    demo phone's activity once a minute travels with them (as Motion)."""
    from sinks.kafka import encode_events
    from stresswatch.sources import shifted, simulated_phone

    out = []
    for person in people:
        events = _demo_day_beats(sum(map(ord, person)), artifacts)
        if phone:
            events = sorted([*events, *simulated_phone(person)], key=lambda e: e.t)
        events = [e for e in events if e.t - events[0].t < minutes * 60]
        if start is not None:
            events = shifted(events, start - events[0].t)
        chunk: list = []
        for e in events:
            if chunk and e.t - chunk[0].t >= message_s:
                out.append(encode_events(person, chunk))
                chunk = []
            chunk.append(e)
        out.append(encode_events(person, chunk))
    return sorted(out, key=lambda m: m["beats"][0][1])


def home_outputs(cfg, events) -> tuple[dict, dict]:
    """The home service's path (`Service.events`, in this process, no Kafka) over `events`:
    readings by (person, time) and prompts by id, as the worker writes them to their topics."""
    from stresswatch.service import Service
    from stresswatch.worker import KafkaOutputs

    outputs = KafkaOutputs()
    service = Service(cfg, [], sinks=outputs, restore=False)
    service.people.clear()
    for person in dict.fromkeys(e.person for e in events):
        service.add_person(person)
    service.events(list(events))
    readings, prompts = {}, {}
    for rec in outputs.take():
        v = rec["value"]
        if rec["stream"] == "readings":
            readings[(v["person"], v["time"])] = v
        elif rec["stream"] == "prompts":
            prompts[v["id"]] = v
    return readings, prompts


def produce(bootstrap: str, topic: str, messages: list[dict]) -> None:
    """`beats` messages keyed by person, acknowledged by all in-sync replicas."""
    import json

    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for m in messages:
        producer.produce(topic, key=m["person"].encode(), value=json.dumps(m).encode())
    if producer.flush(60):
        raise RuntimeError(f"Kafka at {bootstrap} did not take every message")


def _random_uuid() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as `kafka-storage
    random-uuid`). Kafka's own `Uuid.randomUuid` draws again while the text starts with '-', which
    a command line would take for an option (`format -t -abc...` failed once in 64 runs)."""
    import base64

    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _format(members: list[Node], jars: Path, cluster_id: str) -> None:
    """`kafka-storage.sh format` for every node, all at once (a JVM start each is the slow part)."""
    procs = [
        (
            n,
            subprocess.Popen(
                [
                    "java",
                    *JAVA_OPTS,
                    "-cp",
                    f"{jars}/*",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(n.workdir / "server.properties"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for n in members
    ]
    for n, p in procs:
        out, _ = p.communicate(timeout=120)
        if p.returncode:
            raise RuntimeError(f"formatting KRaft storage of node {n.node_id} failed:\n{out[-3000:]}")


if __name__ == "__main__":  # scripts/test: fetch ahead of the run, so a fresh machine fails early and clearly
    started = time.monotonic()
    print(libs(), f"{time.monotonic() - started:.0f} s")
