"""MQTT sink against a real Mosquitto: topics, retained flags, QoS, expiry, last will, discovery,
responses, authentication and ACLs, and a broker outage."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import sample
import servers
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from servers import wait_for as wait

from alerts.prompt import Prompt, PromptAction
from processing.reading import Reading
from sinks.homeassistant import EXPIRE_AFTER_S, discovery_messages
from sinks.mqtt import REPORT_EVERY_S, MqttSettings, MqttSink
from sinks.store import StateStore, StoreFull

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A second MQTT client that records what it receives (topic, payload, retain, properties)."""

    def __init__(self, port, topics=("#",), client_id=None, persistent=False, username=None, password=None):
        self.messages: queue.Queue = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"l-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.topics, self.port, self.persistent = topics, port, persistent
        self.subscribed = __import__("threading").Event()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in self.topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()

    def connect(self):
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if self.persistent else 0
        self.subscribed.clear()
        self.client.connect("127.0.0.1", self.port, clean_start=not self.persistent, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscription not acknowledged"
        return self

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def collect(self, seconds=1.0, until=None):
        """Messages received within `seconds` (or until `until(messages)` is true)."""
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.messages.get(timeout=0.05))
            except queue.Empty:
                pass
            if until and until(got):
                break
        return got


def reading(person="ann", t=None, score=40.0, state="neutral") -> Reading:
    return sample.reading(person=person, time=t or time.time(), stress_score=score, state=state)


def prompt(person="ann", expires_in=900.0, pid=None) -> Prompt:
    now = time.time()
    return Prompt(
        pid or uuid.uuid4().hex,
        person,
        now,
        "acute",
        "Your RMSSD has been low for 10 minutes.",
        82.0,
        now + expires_in,
    )


def make_sink(broker, tmp_path, **kw):
    settings = MqttSettings(
        host="127.0.0.1",
        port=broker.port,
        client_id=f"sw-{uuid.uuid4().hex[:6]}",
        **{k: v for k, v in kw.items() if k in MqttSettings.__dataclass_fields__},
    )
    store = kw.get("store") or StateStore(tmp_path / f"state-{uuid.uuid4().hex[:6]}.db")
    sink = MqttSink(
        store,
        settings,
        people=kw.get("people", ["ann"]),
        devices=kw.get("devices", {"ann": ["h10"]}),
        on_response=kw.get("on_response"),
        clock=kw.get("clock", time.time),
    )
    sink.start()
    return sink, store


def by_topic(msgs):
    return {m.topic: m for m in msgs}


def test_topics_retained_flags_qos_and_expiry_property(broker, tmp_path):
    live = Listener(broker.port, ["stresswatch/#"]).connect()
    sink, store = make_sink(broker, tmp_path)
    assert sink.connected.wait(10)
    sink.publish_state(reading())
    sink.publish_device("ann", "h10", {"battery_pct": 87, "connected": True, "model": "Polar H10"})
    p = prompt(expires_in=600)
    sink.publish_prompt(p)
    got = by_topic(live.collect(5, until=lambda ms: any(m.topic.endswith("/prompt") for m in ms)))
    pm = got["stresswatch/ann/prompt"]
    assert pm.qos == 1 and not pm.retain
    assert json.loads(pm.payload)["id"] == p.id
    expiry = pm.properties.MessageExpiryInterval
    assert 590 <= expiry <= 600
    assert wait(lambda: store.prompt(p.id)["status"] == "delivered")
    # A client arriving later sees the retained messages, with the retain flag, but no prompt.
    late = Listener(broker.port, ["stresswatch/#"]).connect()
    retained = by_topic(late.collect(2))
    assert retained["stresswatch/status"].payload == b"online" and retained["stresswatch/status"].retain
    state = retained["stresswatch/ann/state"]
    assert state.retain and json.loads(state.payload)["rmssd_ms"] == 42.0
    assert retained["stresswatch/ann/device/h10"].retain
    assert "stresswatch/ann/prompt" not in retained
    assert store.pending("mqtt") == 0
    sink.stop()
    late.close()
    live.close()


def test_broker_honours_message_expiry_for_an_offline_phone(broker, tmp_path):
    phone = Listener(broker.port, ["stresswatch/ann/prompt"], client_id="phone", persistent=True).connect()
    phone.close()  # the phone is offline; its persistent session queues QoS 1 messages
    sink, store = make_sink(broker, tmp_path)
    assert sink.connected.wait(10)
    short, long = prompt(expires_in=2, pid="short"), prompt(expires_in=600, pid="long")
    sink.publish_prompt(short)
    sink.publish_prompt(long)
    assert wait(lambda: store.pending("mqtt") == 0)
    time.sleep(3.5)
    phone = Listener(broker.port, ["stresswatch/ann/prompt"], client_id="phone", persistent=True).connect()
    ids = [json.loads(m.payload)["id"] for m in phone.collect(2)]
    assert ids == ["long"]  # the broker dropped the expired one
    phone.close()
    sink.stop()


def start_child_sink(broker, tmp_path, **settings) -> subprocess.Popen:
    """A service in another process (to be killed), connected to `broker` once this returns."""
    child = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(ROOT)!r}]
        from sinks.mqtt import MqttSettings, MqttSink
        from sinks.store import StateStore
        sink = MqttSink(StateStore({str(tmp_path / f"child-{uuid.uuid4().hex[:6]}.db")!r}),
                        MqttSettings(port={broker.port}, client_id="doomed", keepalive_s=5, **{settings!r}), ["ann"])
        sink.start()
        sink.connected.wait(10)
        print("up", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    return proc


def test_last_will_marks_a_killed_service_offline(broker, tmp_path):
    proc = start_child_sink(broker, tmp_path)
    watcher = Listener(broker.port, ["stresswatch/status"]).connect()
    assert [m.payload for m in watcher.collect(1)] == [b"online"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    got = watcher.collect(10, until=lambda ms: any(m.payload == b"offline" for m in ms))
    assert got and got[-1].payload == b"offline"
    late = Listener(broker.port, ["stresswatch/status"]).connect()
    last = late.collect(1)
    assert last[-1].payload == b"offline" and last[-1].retain
    watcher.close()
    late.close()


# The documented MQTT discovery fields (home-assistant.io/integrations/sensor.mqtt, event.mqtt).
SENSOR_DEVICE_CLASS_UNITS = {"battery": {"%"}, "duration": {"d", "h", "min", "s", "ms"}, "enum": {None}}
STATE_CLASSES = {"measurement", "total", "total_increasing"}


def test_home_assistant_discovery_is_valid_and_resent_when_ha_comes_online(broker, tmp_path):
    configs = discovery_messages("ann", devices=["h10"])
    ids = [p["unique_id"] for _, p in configs]
    assert len(ids) == len(set(ids))
    for topic, p in configs:
        component = topic.split("/")[1]
        assert topic.startswith("homeassistant/") and topic.endswith("/config")
        assert component in ("sensor", "event", "button")
        if component == "button":  # the morning reading's start: a command, no state
            assert p["command_topic"] == "stresswatch/ann/measure" and p["payload_press"] == "start"
            assert p["retain"] is False
        else:
            assert p["state_topic"].startswith("stresswatch/ann/")
        if "availability" in p:  # a strap's health: the service's status and the strap's connection
            assert "availability_topic" not in p and p["availability_mode"] == "all"
            assert p["availability"][0] == {
                "topic": "stresswatch/status",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        else:
            assert p["availability_topic"] == "stresswatch/status"
            assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
        assert p["device"]["identifiers"] == ["stresswatch_ann"] and p["device"]["name"]
        if component == "sensor":
            dc = p.get("device_class")
            if dc is not None:
                assert p.get("unit_of_measurement") in SENSOR_DEVICE_CLASS_UNITS[dc]
            if dc == "enum":
                assert "state_class" not in p
                assert set(p["options"]) >= (
                    {"idle", "stabilising", "measuring", "done", "failed"}
                    if p["state_topic"].endswith("/measurement")
                    else {"calm", "neutral", "stressed"}
                )
            else:
                assert p["state_class"] in STATE_CLASSES
        elif component == "event":
            assert p["event_types"] == ["acute", "chronic", "scheduled"]
    ha = Listener(broker.port, ["homeassistant/#"]).connect()
    sink, _ = make_sink(broker, tmp_path)
    first = ha.collect(5, until=lambda ms: len(ms) >= len(configs))
    assert {m.topic for m in first} == {t for t, _ in configs}
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
    again = [
        m
        for m in ha.collect(5, until=lambda ms: len(ms) >= len(configs) + 1)
        if m.topic != "homeassistant/status"
    ]
    assert {m.topic for m in again} == {t for t, _ in configs}
    pub.loop_stop()
    ha.close()
    sink.stop()


def test_a_response_from_the_phone_changes_the_prompt_state(broker, tmp_path):
    answers = []
    sink, store = make_sink(broker, tmp_path, on_response=lambda person, r: answers.append((person, r)))
    assert sink.connected.wait(10)
    p = prompt()
    sink.publish_prompt(p)
    assert wait(lambda: store.prompt(p.id)["status"] == "delivered")
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.connect("127.0.0.1", broker.port)
    phone.loop_start()
    topic = "stresswatch/ann/prompt/response"
    phone.publish(topic, b"not json", qos=1).wait_for_publish(5)
    phone.publish(topic, json.dumps({"id": "nope", "action": "done"}), qos=1).wait_for_publish(5)
    phone.publish(topic, json.dumps({"id": p.id, "action": "snooze", "minutes": 15}), qos=1).wait_for_publish(
        5
    )
    assert wait(lambda: store.prompt(p.id)["status"] == "snooze")
    assert store.prompt(p.id)["response"] == {"id": p.id, "action": "snooze", "minutes": 15}
    assert answers == [("ann", {"id": p.id, "action": "snooze", "minutes": 15})]
    assert store.counter("mqtt.bad_responses") == 1 and store.counter("mqtt.unknown_responses") == 1
    phone.loop_stop()
    sink.stop()


def test_a_bad_snooze_length_is_refused_and_a_later_answer_does_not_rewrite_the_first(
    broker, tmp_path, caplog
):
    answers = []
    sink, store = make_sink(
        broker, tmp_path, discovery=False, on_response=lambda person, r: answers.append(r)
    )
    assert sink.connected.wait(10)
    p = prompt()
    sink.publish_prompt(p)
    assert wait(lambda: store.prompt(p.id)["status"] == "delivered")
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.connect("127.0.0.1", broker.port)
    phone.loop_start()
    topic = "stresswatch/ann/prompt/response"
    bad = ["1e9", "1e400", "Infinity", "NaN", "1" + "0" * 400, "true", '"30"', "-5"]
    for minutes in bad:  # as a phone's JSON may carry them: json.dumps would not write some
        payload = '{"id": "' + p.id + '", "action": "snooze", "minutes": ' + minutes + "}"
        phone.publish(topic, payload, qos=1).wait_for_publish(5)
    assert wait(lambda: store.counter("mqtt.bad_responses") == len(bad))
    assert store.prompt(p.id)["status"] == "delivered" and store.prompt(p.id)["response"] is None
    refused = [r.getMessage() for r in caplog.records if "malformed prompt response" in r.getMessage()]
    assert len(refused) == len(bad) and all(
        "minutes: must be a snooze length from 1 to 240" in m for m in refused
    )
    for action in ("done", "done", "dismiss"):
        phone.publish(topic, json.dumps({"id": p.id, "action": action}), qos=1).wait_for_publish(5)
    assert wait(lambda: len(answers) == 3)  # all go on: the engine logs and counts the later ones
    assert store.prompt(p.id)["status"] == "done"
    assert store.prompt(p.id)["response"] == {"id": p.id, "action": "done", "minutes": None}
    phone.loop_stop()
    sink.stop()


@pytest.mark.slow
def test_password_and_acl_restrict_a_phone_to_its_own_person(tmp_path):
    acl = textwrap.dedent("""
        user stresswatch
        topic readwrite stresswatch/#
        topic readwrite homeassistant/#
        user ann
        topic read stresswatch/ann/#
        topic write stresswatch/ann/prompt/response
        topic read stresswatch/status
    """)
    broker = servers.mosquitto(tmp_path, users={"stresswatch": "s3cret", "ann": "annpw"}, acl=acl).start()
    try:
        wrong, _ = make_sink(broker, tmp_path, username="stresswatch", password="wrong")
        assert not wrong.connected.wait(2)
        wrong.client.loop_stop()
        assert wrong.last_error == "the broker refused the connection: Not authorized"
        ann = Listener(broker.port, ["stresswatch/#"], username="ann", password="annpw").connect()
        sink, store = make_sink(
            broker, tmp_path, username="stresswatch", password="s3cret", people=["ann", "bob"]
        )
        assert sink.connected.wait(10)
        sink.publish_state(reading("ann"))
        sink.publish_state(reading("bob"))
        bobs = prompt("bob")
        sink.publish_prompt(bobs)
        sink.publish_prompt(prompt("ann"))
        assert wait(lambda: store.prompt(bobs.id)["status"] == "delivered")  # the broker took it
        wanted = {"stresswatch/ann/state", "stresswatch/ann/prompt"}
        got = ann.collect(5, until=lambda ms: wanted <= {m.topic for m in ms})
        got += ann.collect(0.5)  # bob's messages, had the broker let them through, would be here by now
        topics = {m.topic for m in got}
        assert wanted <= topics
        assert not any("/bob/" in t for t in topics)
        ann.close()
        sink.stop()
    finally:
        broker.stop()


@pytest.mark.slow
def test_broker_outage_delivers_state_and_live_prompts_later_and_drops_expired(tmp_path):
    broker = servers.mosquitto(tmp_path, persistence=True).start()
    try:
        phone = Listener(broker.port, ["stresswatch/ann/#"], client_id="phone", persistent=True).connect()
        phone.close()
        ahead = [0.0]  # how far the sink's clock runs ahead of the wall clock, in seconds
        sink, store = make_sink(broker, tmp_path, clock=lambda: time.time() + ahead[0])
        assert sink.connected.wait(10)
        broker.stop()
        assert wait(lambda: not sink.connected.is_set())
        produced = [prompt(expires_in=3, pid=f"short-{i}") for i in range(3)]
        produced += [prompt(expires_in=600, pid=f"long-{i}") for i in range(4)]
        for k, p in enumerate(produced):
            sink.publish_prompt(p)
            sink.publish_state(reading(score=float(k)))
        assert store.pending("mqtt") >= len(produced)
        ahead[0] = 4.0  # the short prompts expire while the broker is down
        broker.start()
        assert sink.connected.wait(40)
        assert wait(lambda: store.pending("mqtt") == 0, 15)
        phone = Listener(broker.port, ["stresswatch/ann/#"], client_id="phone", persistent=True).connect()
        got = phone.collect(3)
        prompts = sorted(json.loads(m.payload)["id"] for m in got if m.topic == "stresswatch/ann/prompt")
        states = [json.loads(m.payload)["stress_score"] for m in got if m.topic == "stresswatch/ann/state"]
        print(
            f"\nbroker outage: prompts produced {len(produced)}, delivered {len(prompts)}, "
            f"expired {store.counter('mqtt.expired')}; state messages received {len(states)} (newest {states[-1:]})"
        )
        assert prompts == [f"long-{i}" for i in range(4)]
        assert store.counter("mqtt.expired") == 3
        assert all(store.prompt(f"short-{i}")["status"] == "expired" for i in range(3))
        assert states[-1] == float(len(produced) - 1)  # only the newest retained state matters
        phone.close()
        sink.stop()
    finally:
        broker.stop()


def make_pki(d: Path, server_names: str) -> dict[str, str]:
    """A throw-away CA, a server certificate for `server_names` (subjectAltName) and a client
    certificate, made with the openssl command line."""
    openssl = servers.need("openssl")

    def run(*args):
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    for name, san in (("server", server_names), ("client", "DNS:phone")):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
        )
    return {
        k: str(d / v)
        for k, v in {
            "cafile": "ca.crt",
            "certfile": "server.crt",
            "keyfile": "server.key",
            "client_cert": "client.crt",
            "client_key": "client.key",
        }.items()
    }


@pytest.mark.parametrize(
    "names, verify, connects",
    [
        ("IP:127.0.0.1", True, True),  # certificate matches the host: verified
        ("DNS:elsewhere.example", True, False),  # wrong name, verification on: refused
        ("DNS:elsewhere.example", False, True),  # wrong name, verification off by config: accepted
    ],
)
@pytest.mark.slow
def test_tls_with_ca_file_and_hostname_verification(tmp_path, names, verify, connects):
    pki = make_pki(tmp_path, names)
    broker = servers.mosquitto(tmp_path, tls=pki).start()
    try:
        sink, _ = make_sink(broker, tmp_path, tls=True, ca_file=pki["cafile"], verify_hostname=verify)
        assert sink.connected.wait(5 if connects else 3) is connects
        sink.client.loop_stop()
    finally:
        broker.stop()


@pytest.mark.slow
def test_tls_with_a_client_certificate(tmp_path):
    pki = make_pki(tmp_path, "IP:127.0.0.1")
    broker = servers.mosquitto(tmp_path, tls={**pki, "require_certificate": "1"}).start()
    try:
        without, _ = make_sink(broker, tmp_path, tls=True, ca_file=pki["cafile"])
        assert not without.connected.wait(3)
        without.client.loop_stop()
        with_cert, _ = make_sink(
            broker,
            tmp_path,
            tls=True,
            ca_file=pki["cafile"],
            certfile=pki["client_cert"],
            keyfile=pki["client_key"],
        )
        assert with_cert.connected.wait(5)
        with_cert.stop()
    finally:
        broker.stop()


def test_threads_publishing_prompts_and_states_never_deadlock(broker, tmp_path):
    """Producers on several threads while paho's network thread acknowledges: the sink must
    never call paho while holding its own lock (it deadlocked after three QoS 1 prompts)."""
    import threading

    sink, store = make_sink(broker, tmp_path, people=["ann", "bob", "cy"], discovery=False)
    assert sink.connected.wait(10)
    prompts = {name: [prompt(person=name) for _ in range(500)] for name in ("ann", "bob", "cy")}

    def produce(name):
        for k, p in enumerate(prompts[name]):
            sink.publish_prompt(p)
            sink.publish_state(reading(person=name, score=float(k % 100)))

    threads = [threading.Thread(target=produce, args=(n,), daemon=True) for n in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a producer thread is stuck (deadlock)"
    assert wait(lambda: store.pending("mqtt") == 0, timeout=30)
    statuses = {store.prompt(p.id)["status"] for ps in prompts.values() for p in ps}
    assert statuses == {"delivered"}
    sink.stop()


def test_a_publish_the_broker_refuses_is_set_aside_and_never_counts_as_delivered(tmp_path, caplog):
    """An ACL deny comes back as PUBACK reason code 0x87 "Not authorized" (MQTT v5): the prompt
    is not delivered, its row is set aside with the reason, and the other rows go on."""
    acl = textwrap.dedent("""
        user stresswatch
        topic readwrite stresswatch/status
        topic readwrite stresswatch/ann/#
        topic read stresswatch/+/prompt/response
        topic readwrite homeassistant/#
    """)
    broker = servers.mosquitto(tmp_path, users={"stresswatch": "s3cret"}, acl=acl).start()
    try:
        sink, store = make_sink(
            broker, tmp_path, username="stresswatch", password="s3cret", people=["ann", "bob"]
        )
        assert sink.connected.wait(10)
        bobs, anns = prompt("bob"), prompt("ann")
        sink.publish_prompt(bobs)
        sink.publish_prompt(anns)
        sink.publish_state(reading("ann"))
        assert wait(lambda: store.prompt(anns.id)["status"] == "delivered")
        assert wait(lambda: store.prompt(bobs.id)["status"] == "rejected")
        assert store.pending("mqtt") == 0
        [(payload, reason)] = store.rejected("mqtt")
        assert json.loads(payload)["prompt"] == bobs.id and reason == "broker refused: Not authorized"
        assert store.counter("mqtt.rejected") == 1
        assert [
            r.getMessage() for r in caplog.records if "refused stresswatch/bob/prompt" in r.getMessage()
        ] == ["MQTT broker refused stresswatch/bob/prompt: Not authorized; set aside (mqtt.rejected)"]
        sink.stop()
    finally:
        broker.stop()


@pytest.mark.slow
def test_a_prompt_frozen_in_a_dead_connection_never_reaches_the_phone_after_it_expires(tmp_path):
    """The broker hangs (SIGSTOP) with a prompt unacknowledged, dies (SIGKILL) after the prompt
    expired and comes back on the same port and data folder: the prompt must not arrive late."""
    broker = servers.mosquitto(tmp_path, persistence=True).start()
    arrivals: list[tuple[float, str]] = []
    phone = Listener(broker.port, ["stresswatch/ann/prompt"], client_id="phone", persistent=True)
    phone.client.on_message = lambda c, u, m: arrivals.append((time.time(), json.loads(m.payload)["id"]))
    try:
        phone.connect()
        phone_connected = time.time()
        sink, store = make_sink(broker, tmp_path, discovery=False)
        assert sink.connected.wait(10)
        saved = tmp_path / "mosquitto.db"  # the broker saves the phone's session (autosave every second)
        assert wait(lambda: saved.exists() and saved.stat().st_mtime > phone_connected, 10)
        os.kill(broker.proc.pid, signal.SIGSTOP)
        frozen = prompt(expires_in=5, pid="frozen")
        sink.publish_prompt(frozen)
        assert wait(lambda: store.prompt("frozen")["status"] == "sent")
        time.sleep(8)
        broker.kill()
        broker.start()
        assert wait(lambda: store.prompt("frozen")["status"] != "sent", 30)
        assert wait(sink.connected.is_set, 30)
        # A live prompt after the restart: once the phone has it, anything sent before has arrived.
        sink.publish_prompt(prompt(expires_in=600, pid="live"))
        assert wait(lambda: any(pid == "live" for _, pid in arrivals), 30)
        late = [
            round(t - frozen.expires_at, 1)
            for t, pid in arrivals
            if pid == "frozen" and t > frozen.expires_at
        ]
        assert late == [], f"the expired prompt arrived {late} s after expires_at"
        assert store.prompt("frozen")["status"] == "expired" and store.counter("mqtt.expired") == 1
        assert wait(lambda: store.prompt("live")["status"] == "delivered" and store.pending("mqtt") == 0)
        sink.stop()
    finally:
        phone.close()
        broker.stop()


def test_a_message_that_can_never_be_sent_is_set_aside_without_blocking_the_others(broker, tmp_path):
    live = Listener(broker.port, ["stresswatch/#"]).connect()
    sink, store = make_sink(broker, tmp_path, discovery=False)
    assert sink.connected.wait(10)
    bad_people = ("a+b", "c#", "nul\x00")
    for person in bad_people:
        sink.publish_state(reading(person))
        sink.publish_prompt(prompt(person, pid=f"bad-{person}"))
    good = prompt("ann")
    sink.publish_prompt(good)
    sink.publish_state(reading("ann"))
    assert wait(lambda: store.prompt(good.id)["status"] == "delivered")
    got = live.collect(3, until=lambda ms: any(m.topic == "stresswatch/ann/state" for m in ms))
    assert "stresswatch/ann/state" in {m.topic for m in got}
    assert store.pending("mqtt") == 0
    reasons = [reason for _, reason in store.rejected("mqtt")]
    assert len(reasons) == 6 and store.counter("mqtt.rejected") == 6
    assert sum("wildcard" in r for r in reasons) == 4 and sum("NUL" in r for r in reasons) == 2
    assert {store.prompt(f"bad-{p}")["status"] for p in bad_people} == {"rejected"}
    assert sink.connected.is_set()
    sink.stop()
    live.close()


def test_a_phone_cannot_answer_another_persons_prompt(broker, tmp_path, caplog):
    answers = []
    sink, store = make_sink(
        broker,
        tmp_path,
        people=["ann", "bob"],
        discovery=False,
        on_response=lambda person, r: answers.append((person, r)),
    )
    assert sink.connected.wait(10)
    anns = prompt("ann")
    sink.publish_prompt(anns)
    assert wait(lambda: store.prompt(anns.id)["status"] == "delivered")
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.connect("127.0.0.1", broker.port)
    phone.loop_start()
    foreign = {"id": anns.id, "action": "dismiss"}
    phone.publish("stresswatch/bob/prompt/response", json.dumps(foreign), qos=1).wait_for_publish(5)
    phone.publish(
        "stresswatch/ann/prompt/response", json.dumps({"id": anns.id, "action": "done"}), qos=1
    ).wait_for_publish(5)
    assert wait(lambda: store.prompt(anns.id)["status"] == "done")
    assert answers == [("ann", {"id": anns.id, "action": "done", "minutes": None})]
    assert store.counter("mqtt.foreign_responses") == 1
    assert any(
        "stresswatch/bob/prompt/response" in r.getMessage() and "another person" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )
    phone.loop_stop()
    sink.stop()


def test_every_prompt_action_is_stored_including_not_stressed(broker, tmp_path):
    sink, store = make_sink(broker, tmp_path, discovery=False)
    assert sink.connected.wait(10)
    asked = {action: prompt("ann") for action in PromptAction}
    for p in asked.values():
        sink.publish_prompt(p)
    assert wait(lambda: {store.prompt(p.id)["status"] for p in asked.values()} == {"delivered"})
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.connect("127.0.0.1", broker.port)
    phone.loop_start()
    for action, p in asked.items():
        phone.publish(
            "stresswatch/ann/prompt/response", json.dumps({"id": p.id, "action": action}), qos=1
        ).wait_for_publish(5)
    assert wait(lambda: all(store.prompt(p.id)["status"] == a for a, p in asked.items()))
    assert store.prompt(asked[PromptAction.NOT_STRESSED].id)["response"] == {
        "id": asked[PromptAction.NOT_STRESSED].id,
        "action": "not_stressed",
        "minutes": None,
    }
    phone.loop_stop()
    sink.stop()


def test_without_announce_status_the_status_topic_is_never_touched(broker, tmp_path):
    """A demo run beside a real service must not mark it online or offline (nor leave a will)."""
    watcher = Listener(broker.port, ["stresswatch/#"]).connect()
    sink, _ = make_sink(broker, tmp_path, announce_status=False, discovery=False)
    assert sink.connected.wait(10)
    sink.publish_state(reading())
    got = watcher.collect(3, until=lambda ms: any(m.topic == "stresswatch/ann/state" for m in ms))
    sink.stop()
    proc = start_child_sink(broker, tmp_path, announce_status=False)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    got += watcher.collect(2)
    topics = [m.topic for m in got]
    assert "stresswatch/ann/state" in topics and "stresswatch/status" not in topics
    late = Listener(broker.port, ["stresswatch/status"]).connect()
    assert late.collect(1) == []
    late.close()
    watcher.close()


@pytest.mark.slow
def test_an_unreachable_broker_is_logged_with_the_reason_once_a_minute(tmp_path, caplog):
    port = servers.free_port()  # nothing listens there
    store = StateStore(tmp_path / "state.db")
    sink = MqttSink(store, MqttSettings(host="127.0.0.1", port=port, client_id="lonely"), ["ann"])
    sink.start()
    try:
        assert wait(lambda: store.counter("mqtt.connect_failures") >= 3, 15)  # paho retries after 1 s, 2 s
    finally:
        sink.client.loop_stop()
    assert REPORT_EVERY_S >= 60
    assert [r.getMessage() for r in caplog.records if r.name == "stresswatch.mqtt"] == [
        f"could not connect to MQTT broker 127.0.0.1:{port}: Connection refused (retrying)"
    ]
    assert sink.last_error == "Connection refused"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("untrusted CA", "TLS certificate not accepted: self-signed certificate in certificate chain"),
        ("no client certificate", "CERTIFICATE_REQUIRED"),
    ],
)
@pytest.mark.slow
def test_a_failed_tls_handshake_is_logged_with_the_reason(tmp_path, caplog, case, expected):
    (tmp_path / "ours").mkdir()
    (tmp_path / "other").mkdir()
    pki, other = make_pki(tmp_path / "ours", "IP:127.0.0.1"), make_pki(tmp_path / "other", "IP:127.0.0.1")
    tls = {**pki, "require_certificate": "1"} if case == "no client certificate" else pki
    broker = servers.mosquitto(tmp_path, tls=tls).start()
    try:
        ca = other["cafile"] if case == "untrusted CA" else pki["cafile"]
        sink, _ = make_sink(broker, tmp_path, tls=True, ca_file=ca)
        assert wait(lambda: sink.last_error, 10)
        sink.client.loop_stop()
    finally:
        broker.stop()
    assert not sink.connected.is_set() and expected in sink.last_error
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "stresswatch.mqtt" and r.levelno == logging.WARNING
    ]
    assert len(logged) == 1 and expected in logged[0] and f"127.0.0.1:{broker.port}" in logged[0]


@pytest.mark.parametrize(
    "host, extra, warns",
    [
        ("192.0.2.1", {}, True),
        ("broker.example", {}, True),
        ("192.0.2.1", {"username": "sw", "password": "pw"}, False),
        ("192.0.2.1", {"tls": True}, False),
        ("127.0.0.1", {}, False),
        ("localhost", {}, False),
        ("::1", {}, False),
    ],
)
def test_clear_text_to_a_remote_anonymous_broker_is_warned_about_at_start_up(caplog, host, extra, warns):
    # Only constructed, never started: nothing is contacted.
    MqttSink(StateStore(":memory:"), MqttSettings(host=host, port=1883, **extra), ["ann"])
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    warning = f"MQTT: readings go unencrypted and unauthenticated to {host}:1883 (set a password and use mqtts:// with TLS)"
    assert logged == ([warning] if warns else [])


def test_home_assistant_reading_sensors_render_none_when_null_and_expire():
    """MQTT sensors take a rendered `None` as unknown; the text `unknown` is an invalid number
    and logs an error in Home Assistant at every reading. `expire_after` outlasts the reading
    step (10 s by default), so only a strap taken off or a stopped service shows unavailable."""
    configs = dict(discovery_messages("ann", devices=["h10"]))
    numbers = {"heart_rate": ("hr_bpm", 0), "rmssd": ("rmssd_ms", 1), "stress_score": ("stress_score", 0)}
    for key, (field, digits) in numbers.items():
        template = configs[f"homeassistant/sensor/stresswatch_ann/{key}/config"]["value_template"]
        assert template == (
            f"{{{{ value_json.{field} | round({digits}) if value_json.{field} is defined "
            f"and value_json.{field} is not none else None }}}}"
        )
    readings = [*numbers, "stress_state"]
    for key in readings:
        assert configs[f"homeassistant/sensor/stresswatch_ann/{key}/config"]["expire_after"] == EXPIRE_AFTER_S
    assert 10 * 3 <= EXPIRE_AFTER_S
    others = [
        p
        for t, p in configs.items()
        if not any(f"/{k}/config" in t for k in readings) and "availability" not in p
    ]  # the strap health sensors expire on their own period
    # battery, prompt event, and the morning reading's button and sensors (one value a day: no expiry)
    assert len(others) == 9 and not any("expire_after" in p for p in others)
    assert not any("unknown" in p.get("value_template", "") for p in configs.values())


def test_discovery_ids_of_a_person_with_a_space_or_accent_are_what_home_assistant_accepts():
    import re

    for topic, payload in discovery_messages("Zoë Lee", devices=["A0:9E:1A:00:00:07"]):
        node, obj = topic.split("/")[2:4]
        assert re.fullmatch(r"[A-Za-z0-9_-]+", node) and re.fullmatch(r"[A-Za-z0-9_-]+", obj), topic
        assert re.fullmatch(r"[a-z0-9_]+", payload["unique_id"])
        topic_of = payload.get("state_topic") or payload["command_topic"]
        assert topic_of.startswith("stresswatch/Zoë Lee/")  # topics keep the name


def test_each_strap_has_diagnostic_health_sensors_that_go_unavailable_when_it_disconnects_or_goes_silent():
    configs = {t: p for t, p in discovery_messages("ann", devices=["h10", "A0:9E:1A:00:00:07"])}
    health = {t: p for t, p in configs.items() if "availability" in p}
    assert sorted(t.split("/")[3] for t in health) == [
        "beats_per_min_a0_9e_1a_00_00_07",
        "beats_per_min_h10",
        "last_beat_a0_9e_1a_00_00_07",
        "last_beat_h10",
    ]
    for topic, p in health.items():
        dev = "h10" if topic.endswith("h10/config") else "A0:9E:1A:00:00:07"
        assert p["state_topic"] == f"stresswatch/ann/device/{dev}" and p["name"].endswith(dev)
        assert p["entity_category"] == "diagnostic" and p["state_class"] == "measurement"
        # A status that stops coming (service gone) blanks the value after three 30 s periods.
        assert p["expire_after"] == 90
        strap = p["availability"][1]
        assert strap["topic"] == p["state_topic"] and strap["payload_available"] == "online"
    last_beat = health["homeassistant/sensor/stresswatch_ann/last_beat_h10/config"]
    assert last_beat["device_class"] == "duration" and last_beat["unit_of_measurement"] == "s"
    assert "last_beat_age_s" in last_beat["value_template"]
    bpm = health["homeassistant/sensor/stresswatch_ann/beats_per_min_h10/config"]
    assert bpm["value_template"] == (
        "{{ value_json.beats_last_min | round(0) if value_json.beats_last_min is defined "
        "and value_json.beats_last_min is not none else None }}"
    )
    assert (
        last_beat["availability"][1]["value_template"]
        == "{{ 'online' if value_json.connected else 'offline' }}"
    )


def test_device_status_with_health_fields_is_retained_as_json(broker, tmp_path):
    sink, store = make_sink(broker, tmp_path)
    assert sink.connected.wait(10)
    status = {
        "battery_pct": 87,
        "connected": True,
        "model": "Polar H10",
        "last_beat_age_s": 0.4,
        "beats_last_min": 63,
        "artifacts_last_min": 2,
    }
    sink.publish_device("ann", "h10", status)
    assert wait(lambda: store.pending("mqtt") == 0)
    late = Listener(broker.port, ["stresswatch/ann/device/#"]).connect()
    got = by_topic(late.collect(2))
    assert (
        got["stresswatch/ann/device/h10"].retain
        and json.loads(got["stresswatch/ann/device/h10"].payload) == status
    )
    late.close()
    sink.stop()


@pytest.mark.slow
def test_after_an_outage_the_newest_state_stays_retained_while_the_backlog_is_sent(tmp_path):
    """At reconnect the backlog (300 prompts, a state, 1200 prompts) is being sent while the
    service produces newer states, then falls silent. Rows reach paho in the order produced, so
    the backlog's old state never lands after a newer one: the broker keeps the newest as the
    retained value."""
    broker = servers.mosquitto(tmp_path).start()
    sink = None
    try:
        sink, store = make_sink(broker, tmp_path, discovery=False)
        assert sink.connected.wait(10)
        broker.stop()
        assert wait(lambda: not sink.connected.is_set())
        for k in range(1500):
            if k == 300:  # in the first batch the sender reads, behind prompts it sends first
                sink.publish_state(reading("ann", score=0.0))
            sink.publish_prompt(prompt("bob", pid=f"backlog-{k}"))
        broker.start()
        watcher = Listener(broker.port, ["stresswatch/ann/state"]).connect()
        assert sink.connected.wait(40)
        for k in range(1, 21):
            sink.publish_state(reading("ann", score=float(k)))
        assert store.pending("mqtt") > 1, "the backlog went out before the newer states were produced"
        assert wait(lambda: store.pending("mqtt") == 0, 30)
        seen = [json.loads(m.payload)["stress_score"] for m in watcher.collect(2)]
        assert seen == sorted(seen) and seen[-1] == 20.0
        late = Listener(broker.port, ["stresswatch/ann/state"]).connect()
        assert json.loads(late.collect(1)[0].payload)["stress_score"] == 20.0
        late.close()
        watcher.close()
    finally:
        if sink is not None:
            sink.stop()
        broker.stop()


def test_an_outbox_that_fails_for_a_while_delays_delivery_is_logged_once_and_heals(broker, tmp_path, caplog):
    """The sink's sender thread outlives a failing state store (a full disk): the prompt waits
    in the outbox, the failure is logged once, and the prompt goes out when the store works."""
    sink, store = make_sink(broker, tmp_path, discovery=False)
    assert sink.connected.wait(10)
    real_peek, failures = store.peek, []

    def peek_while_the_disk_is_full(*args, **kw):
        if len(failures) < 2:
            failures.append(time.monotonic())
            raise StoreFull(f"{tmp_path}/state.db: the disk is full")
        return real_peek(*args, **kw)

    store.peek = peek_while_the_disk_is_full
    try:
        p = prompt()
        sink.publish_prompt(p)
        assert wait(lambda: failures)
        assert store.prompt(p.id)["status"] == "pending"  # it waits in the outbox
        assert wait(lambda: store.prompt(p.id)["status"] == "delivered", 10)
        assert len(failures) == 2 and failures[1] - failures[0] >= 0.9  # tried again a second later
        logged = [r.getMessage() for r in caplog.records if "outbox" in r.getMessage()]
        assert logged == [
            f"MQTT: cannot read or update the outbox: {tmp_path}/state.db: the disk is full (retrying)"
        ]
    finally:
        sink.stop()


def test_a_session_taken_over_by_another_client_is_logged_as_such_and_taken_back_with_backoff(
    broker, tmp_path, caplog
):
    """Two clients with one client id (two copies of the service on one config) took the session
    from each other every second, logged as "Unspecified error". Mosquitto 2.0.11 says nothing
    (no DISCONNECT 0x8E), so the sink recognises the pattern: closed without a reason, accepted
    again at once with the session kept, closed again."""
    from sinks.mqtt import TAKEOVER_FIRST_WAIT_S

    caplog.set_level(logging.INFO, logger="stresswatch.mqtt")
    sink, store = make_sink(broker, tmp_path, discovery=False)
    assert sink.connected.wait(10)
    other = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=sink.s.client_id, protocol=mqtt.MQTTv5)
    other.reconnect_delay_set(1, 1)  # takes the session back at once, every time (paho's default behaviour)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    other.connect_async("127.0.0.1", broker.port, clean_start=False, properties=props)
    other.loop_start()

    def connects():
        return [r.created for r in caplog.records if r.getMessage().startswith("connected to MQTT broker")]

    def takeovers():
        return [r for r in caplog.records if "took over the MQTT session" in r.getMessage()]

    try:
        assert wait(takeovers, 30), [r.getMessage() for r in caplog.records]
        first = takeovers()[0]
        assert first.levelno == logging.WARNING
        assert first.getMessage().startswith(
            f"MQTT: another client with client id {sink.s.client_id!r} took over the MQTT session ("
        )
        assert f"Reconnecting in {TAKEOVER_FIRST_WAIT_S} s" in first.getMessage()
        # The sink waits before taking the session back, and longer after the next takeover.
        assert wait(lambda: [t for t in connects() if t > first.created], TAKEOVER_FIRST_WAIT_S + 15)
        back = min(t for t in connects() if t > first.created)
        assert back - first.created >= TAKEOVER_FIRST_WAIT_S - 0.5
        assert wait(lambda: len(takeovers()) >= 2, 30)
        assert f"Reconnecting in {2 * TAKEOVER_FIRST_WAIT_S} s" in takeovers()[1].getMessage()
        assert store.counter("mqtt.takeovers") >= 2
        print(
            f"\ntakeover: the sink connected {len(connects())} times in "
            f"{takeovers()[1].created - connects()[0]:.0f} s (every second before)"
        )
    finally:
        other.disconnect()
        other.loop_stop()
    # The other client gone, the sink takes the session back and keeps it.
    assert wait(sink.connected.is_set, 2 * TAKEOVER_FIRST_WAIT_S + 10)
    assert not any("Unspecified error" in r.getMessage() for r in caplog.records)
    sink.stop()


def test_a_disconnect_with_reason_session_taken_over_is_a_takeover_at_once(tmp_path, caplog):
    """A broker that says so (MQTT v5 DISCONNECT 0x8E: Mosquitto >= 2.0.15; the test broker is
    Debian's 2.0.11, which does not): the first takeover is logged and backed off. paho hands the
    sink exactly these arguments for a DISCONNECT packet from the broker."""
    from paho.mqtt.client import DisconnectFlags
    from paho.mqtt.reasoncodes import ReasonCode

    from sinks.mqtt import TAKEOVER_FIRST_WAIT_S

    store = StateStore(tmp_path / "state.db")
    sink = MqttSink(store, MqttSettings(port=servers.free_port(), client_id="twice"), ["ann"])
    sink.connected.set()  # as after a CONNACK
    sink._on_disconnect(
        sink.client,
        None,
        DisconnectFlags(is_disconnect_packet_from_server=True),
        ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E),
        None,
    )
    [line] = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
    assert line.startswith(
        "MQTT: another client with client id 'twice' took over the MQTT session "
        "(the broker said: Session taken over)"
    )
    assert f"Reconnecting in {TAKEOVER_FIRST_WAIT_S} s" in line and store.counter("mqtt.takeovers") == 1
    assert sink.client._reconnect_min_delay == TAKEOVER_FIRST_WAIT_S  # what paho waits before reconnecting


def test_a_retained_answer_is_applied_once_then_ignored_and_cleared_at_the_next_start(
    broker, tmp_path, caplog
):
    """A phone that answers with the retain flag: the broker keeps the answer and hands it over at
    every subscribe, so each start of the service applied it again."""
    answers = []
    store = StateStore(tmp_path / "state.db")
    sink, _ = make_sink(
        broker,
        tmp_path,
        store=store,
        discovery=False,
        on_response=lambda person, r: answers.append(r["action"]),
    )
    assert sink.connected.wait(10)
    p = prompt()
    sink.publish_prompt(p)
    assert wait(lambda: store.prompt(p.id)["status"] == "delivered")
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.connect("127.0.0.1", broker.port)
    phone.loop_start()
    topic = "stresswatch/ann/prompt/response"
    phone.publish(
        topic, json.dumps({"id": p.id, "action": "snooze", "minutes": 15}), qos=1, retain=True
    ).wait_for_publish(5)
    phone.loop_stop()
    assert wait(lambda: answers == ["snooze"])  # live, it is an answer
    sink.stop()
    restarted = MqttSink(store, sink.s, ["ann"], on_response=lambda person, r: answers.append(r["action"]))
    restarted.start()
    assert restarted.connected.wait(10)
    assert wait(lambda: store.counter("mqtt.retained_responses") == 1)
    assert [r.getMessage() for r in caplog.records if "retained answer" in r.getMessage()] == [
        (
            f"ignored a retained answer to prompt {p.id!r} on {topic} (the broker hands it over at every connect, "
            "so it is not a new answer); clearing it"
        )
    ]
    late = Listener(broker.port, [topic]).connect()
    assert late.collect(1) == []  # the broker keeps it no more
    late.close()
    restarted.stop()
    again = MqttSink(store, sink.s, ["ann"], on_response=lambda person, r: answers.append(r["action"]))
    again.start()
    assert again.connected.wait(10)
    time.sleep(1)  # a retained answer would have come with the subscription by now
    again.stop()
    assert answers == ["snooze"] and store.prompt(p.id)["status"] == "snooze"
    assert store.counter("mqtt.retained_responses") == 1 and store.counter("mqtt.bad_responses") == 0


def test_open_prompts_are_sent_again_when_home_assistant_comes_back_online(broker, tmp_path):
    """A prompt published while Home Assistant restarts never reaches its automation (HA's own
    session keeps nothing). When HA announces `online`, every prompt neither answered nor expired
    goes again, with the expiry left; a retained `online` (at the sink's own connect) is not HA
    coming back."""
    ahead = [0.0]  # how far the sink's clock runs ahead of the wall clock, in seconds
    sink, store = make_sink(broker, tmp_path, discovery=False, clock=lambda: time.time() + ahead[0])
    assert sink.connected.wait(10)
    answered, first, short, second = (
        prompt(pid="answered"),
        prompt(pid="first", expires_in=600),
        prompt(pid="short", expires_in=2),
        prompt(pid="second", expires_in=300),
    )
    for p in (answered, first, short, second):
        sink.publish_prompt(p)
    assert wait(
        lambda: {store.prompt(p.id)["status"] for p in (answered, first, short, second)} == {"delivered"}
    )
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.connect("127.0.0.1", broker.port)
    phone.loop_start()
    phone.publish(
        "stresswatch/ann/prompt/response", json.dumps({"id": "answered", "action": "done"}), qos=1
    ).wait_for_publish(5)
    assert wait(lambda: store.prompt("answered")["status"] == "done")
    ahead[0] = 2.5  # `short` expires
    ha = Listener(broker.port, ["stresswatch/+/prompt"]).connect()  # Home Assistant, back from its restart
    phone.publish("homeassistant/status", "online", qos=1, retain=True).wait_for_publish(5)
    got = ha.collect(5, until=lambda ms: len(ms) >= 2)
    got += ha.collect(0.5)  # anything else it sends comes within this
    assert [json.loads(m.payload)["id"] for m in got] == ["first", "second"]
    assert json.loads(got[0].payload) == json.loads(json.dumps(first.to_dict()))  # the prompt as first sent
    assert [
        0 < m.properties.MessageExpiryInterval <= left for m, left in zip(got, (600, 300), strict=True)
    ] == [True, True]
    assert wait(lambda: store.prompt("first")["status"] == "delivered" and store.pending("mqtt") == 0)
    sink.stop()
    restarted, _ = make_sink(broker, tmp_path, store=store, discovery=False)  # gets the retained `online`
    assert restarted.connected.wait(10)
    assert ha.collect(1.5) == []
    restarted.stop()
    phone.loop_stop()
    ha.close()
