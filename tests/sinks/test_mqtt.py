"""MQTT sink against a real Mosquitto: topics, retained flags, QoS, expiry, last will, discovery,
responses, authentication and ACLs, and a broker outage."""

from __future__ import annotations

import json
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
import servers
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from servers import wait_for as wait

from alerts.prompt import Prompt
from processing.reading import Reading
from sinks.homeassistant import discovery_messages
from sinks.mqtt import MqttSettings, MqttSink
from sinks.store import StateStore

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A second MQTT client that records what it receives (topic, payload, retain, properties)."""

    def __init__(self, port, topics=("#",), client_id=None, persistent=False, username=None, password=None):
        self.messages: queue.Queue = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"l-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
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
    return Reading(person, t or time.time(), 300.0, 300, 900.0, 66.7, 42.0, 3.74, 50.0, 20.0, 45.0, 29.7, 60.0,
                   90.0, 9.5, 0.1, -0.2, 1.1, 0.0, "rest", score, state, 1.0)


def prompt(person="ann", expires_in=900.0, pid=None) -> Prompt:
    now = time.time()
    return Prompt(pid or uuid.uuid4().hex, person, now, "acute", "Your RMSSD has been low for 10 minutes.", 82.0,
                  now + expires_in)


def make_sink(broker, tmp_path, **kw):
    settings = MqttSettings(host="127.0.0.1", port=broker.port, client_id=f"sw-{uuid.uuid4().hex[:6]}",
                            **{k: v for k, v in kw.items() if k in MqttSettings.__dataclass_fields__})
    store = kw.get("store") or StateStore(tmp_path / f"state-{uuid.uuid4().hex[:6]}.db")
    sink = MqttSink(store, settings, people=kw.get("people", ["ann"]), devices=kw.get("devices", {"ann": ["h10"]}),
                    on_response=kw.get("on_response"))
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


def test_last_will_marks_a_killed_service_offline(broker, tmp_path):
    child = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(ROOT)!r}]
        from sinks.mqtt import MqttSettings, MqttSink
        from sinks.store import StateStore
        sink = MqttSink(StateStore({str(tmp_path / 'child.db')!r}),
                        MqttSettings(port={broker.port}, client_id="doomed", keepalive_s=5), ["ann"])
        sink.start()
        sink.connected.wait(10)
        print("up", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
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
        assert component in ("sensor", "event")
        assert p["state_topic"].startswith("stresswatch/ann/")
        assert p["availability_topic"] == "stresswatch/status"
        assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
        assert p["device"]["identifiers"] == ["stresswatch_ann"] and p["device"]["name"]
        if component == "sensor":
            dc = p.get("device_class")
            if dc is not None:
                assert p.get("unit_of_measurement") in SENSOR_DEVICE_CLASS_UNITS[dc]
            if dc == "enum":
                assert "state_class" not in p and set(p["options"]) >= {"calm", "neutral", "stressed"}
            else:
                assert p["state_class"] in STATE_CLASSES
        else:
            assert p["event_types"] == ["acute", "chronic", "scheduled"]
    ha = Listener(broker.port, ["homeassistant/#"]).connect()
    sink, _ = make_sink(broker, tmp_path)
    first = ha.collect(5, until=lambda ms: len(ms) >= len(configs))
    assert {m.topic for m in first} == {t for t, _ in configs}
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
    again = [m for m in ha.collect(5, until=lambda ms: len(ms) >= len(configs) + 1) if m.topic != "homeassistant/status"]
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
    phone.publish(topic, json.dumps({"id": p.id, "action": "snooze", "minutes": 15}), qos=1).wait_for_publish(5)
    assert wait(lambda: store.prompt(p.id)["status"] == "snooze")
    assert store.prompt(p.id)["response"] == {"id": p.id, "action": "snooze", "minutes": 15}
    assert answers == [("ann", {"id": p.id, "action": "snooze", "minutes": 15})]
    assert store.counter("mqtt.bad_responses") == 1 and store.counter("mqtt.unknown_responses") == 1
    phone.loop_stop()
    sink.stop()


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
        ann = Listener(broker.port, ["stresswatch/#"], username="ann", password="annpw").connect()
        sink, store = make_sink(broker, tmp_path, username="stresswatch", password="s3cret", people=["ann", "bob"])
        assert sink.connected.wait(10)
        sink.publish_state(reading("ann"))
        sink.publish_state(reading("bob"))
        bobs = prompt("bob")
        sink.publish_prompt(bobs)
        sink.publish_prompt(prompt("ann"))
        assert wait(lambda: store.prompt(bobs.id)["status"] == "delivered")  # the broker took it
        got = ann.collect(3, until=lambda ms: any(m.topic == "stresswatch/ann/prompt" for m in ms))
        topics = {m.topic for m in got}
        assert "stresswatch/ann/state" in topics and "stresswatch/ann/prompt" in topics
        assert not any("/bob/" in t for t in topics)
        ann.close()
        sink.stop()
    finally:
        broker.stop()


def test_broker_outage_delivers_state_and_live_prompts_later_and_drops_expired(tmp_path):
    broker = servers.mosquitto(tmp_path, persistence=True).start()
    try:
        phone = Listener(broker.port, ["stresswatch/ann/#"], client_id="phone", persistent=True).connect()
        phone.close()
        sink, store = make_sink(broker, tmp_path)
        assert sink.connected.wait(10)
        broker.stop()
        assert wait(lambda: not sink.connected.is_set())
        produced = [prompt(expires_in=3, pid=f"short-{i}") for i in range(3)]
        produced += [prompt(expires_in=600, pid=f"long-{i}") for i in range(4)]
        for k, p in enumerate(produced):
            sink.publish_prompt(p)
            sink.publish_state(reading(score=float(k)))
        assert store.pending("mqtt") >= len(produced)
        time.sleep(4)  # the short prompts expire while the broker is down
        broker.start()
        assert sink.connected.wait(40)
        assert wait(lambda: store.pending("mqtt") == 0, 15)
        phone = Listener(broker.port, ["stresswatch/ann/#"], client_id="phone", persistent=True).connect()
        got = phone.collect(3)
        prompts = sorted(json.loads(m.payload)["id"] for m in got if m.topic == "stresswatch/ann/prompt")
        states = [json.loads(m.payload)["stress_score"] for m in got if m.topic == "stresswatch/ann/state"]
        print(f"\nbroker outage: prompts produced {len(produced)}, delivered {len(prompts)}, "
              f"expired {store.counter('mqtt.expired')}; state messages received {len(states)} (newest {states[-1:]})")
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

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    for name, san in (("server", server_names), ("client", "DNS:phone")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    return {k: str(d / v) for k, v in {
        "cafile": "ca.crt", "certfile": "server.crt", "keyfile": "server.key",
        "client_cert": "client.crt", "client_key": "client.key"}.items()}


@pytest.mark.parametrize("names, verify, connects", [
    ("IP:127.0.0.1", True, True),           # certificate matches the host: verified
    ("DNS:elsewhere.example", True, False),  # wrong name, verification on: refused
    ("DNS:elsewhere.example", False, True),  # wrong name, verification off by config: accepted
])
def test_tls_with_ca_file_and_hostname_verification(tmp_path, names, verify, connects):
    pki = make_pki(tmp_path, names)
    broker = servers.mosquitto(tmp_path, tls=pki).start()
    try:
        sink, _ = make_sink(broker, tmp_path, tls=True, ca_file=pki["cafile"], verify_hostname=verify)
        assert sink.connected.wait(5 if connects else 3) is connects
        sink.client.loop_stop()
    finally:
        broker.stop()


def test_tls_with_a_client_certificate(tmp_path):
    pki = make_pki(tmp_path, "IP:127.0.0.1")
    broker = servers.mosquitto(tmp_path, tls={**pki, "require_certificate": "1"}).start()
    try:
        without, _ = make_sink(broker, tmp_path, tls=True, ca_file=pki["cafile"])
        assert not without.connected.wait(3)
        without.client.loop_stop()
        with_cert, _ = make_sink(broker, tmp_path, tls=True, ca_file=pki["cafile"],
                                 certfile=pki["client_cert"], keyfile=pki["client_key"])
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
