"""MQTT sink: state, prompts, device status and Home Assistant discovery, via paho-mqtt v2 / MQTT v5.

Topics (contract; base topic configurable, default `stresswatch`):
| topic | retained | QoS | payload |
| `<base>/status` | yes | 1 | `online` / `offline` (last will) |
| `<base>/<person>/state` | yes | 0 | JSON summary of the latest Reading |
| `<base>/<person>/prompt` | no | 1 | JSON Prompt; MQTT v5 message expiry = time left to `expires_at` |
| `<base>/<person>/prompt/response` | no | 1 | subscribed: `{"id", "action": done/snooze/dismiss, "minutes"}` |
| `<base>/<person>/device/<device>` | yes | 0 | battery, connection, model |
| `homeassistant/...` | yes | 1 | discovery configs, re-sent when HA announces `online` |

Delivery: every outgoing message is written to the SQLite outbox first (sink "mqtt"; state and
device status keyed by topic so only the newest waits, prompts by id), then published when
connected; a QoS 1 row is deleted on PUBACK, a QoS 0 row once handed to the socket. A prompt
whose `expires_at` passed while it waited is dropped and counted (`mqtt.expired`), never sent
late. The session is persistent (`clean_start=False`, session expiry interval) so QoS 1
traffic in flight survives a broker blip; paho reconnects with backoff (1 s to 30 s).
Passwords are never logged.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass

from alerts.prompt import Prompt, parse_response
from processing.reading import Reading
from sinks.homeassistant import discovery_messages
from sinks.store import StateStore

log = logging.getLogger("stresswatch.mqtt")
SINK = "mqtt"


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    base_topic: str = "stresswatch"
    client_id: str = "stresswatch"
    username: str = ""
    password: str = ""
    tls: bool = False
    ca_file: str = ""
    certfile: str = ""
    keyfile: str = ""
    verify_hostname: bool = True
    keepalive_s: int = 30
    session_expiry_s: int = 3600
    discovery: bool = True
    discovery_prefix: str = "homeassistant"


def state_payload(r: Reading) -> dict:
    """The retained state message: the Reading's fields, rounded for humans and dashboards."""
    return r.to_dict(digits=3)


class MqttSink:
    """Publishes through the outbox; calls `on_response(person, response)` for phone answers."""

    def __init__(
        self,
        store: StateStore,
        settings: MqttSettings,
        people: list[str],
        devices: dict[str, list[str]] | None = None,
        on_response=None,
        clock=time.time,
    ):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.store, self.s, self.people = store, settings, list(people)
        self.devices = devices or {}
        self.on_response = on_response
        self.clock = clock
        self.connected = threading.Event()
        self._lock = threading.RLock()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._sending: set[int] = set()  # outbox row ids handed to paho
        self._mqtt = mqtt
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5)
        if settings.username:
            c.username_pw_set(settings.username, settings.password or None)
        if settings.tls:
            c.tls_set(
                ca_certs=settings.ca_file or None,
                certfile=settings.certfile or None,
                keyfile=settings.keyfile or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            c.tls_insecure_set(not settings.verify_hostname)
        c.will_set(self.status_topic, "offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        self.client = c
        # paho's lock around its table of outgoing QoS > 0 messages (an RLock; see `pump`).
        self._paho_out_mutex = c._out_message_mutex

    @property
    def status_topic(self) -> str:
        return f"{self.s.base_topic}/status"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.s.session_expiry_s
        self.client.connect_async(
            self.s.host, self.s.port, keepalive=self.s.keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Clean shutdown: retained `offline`, then disconnect (the will is for crashes)."""
        if self.connected.is_set():
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            info.wait_for_publish(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()

    # -- producing -----------------------------------------------------------------------------

    def publish_state(self, reading: Reading) -> None:
        topic = f"{self.s.base_topic}/{reading.person}/state"
        self._enqueue(topic, json.dumps(state_payload(reading)), qos=0, retain=True, key=topic)

    def publish_prompt(self, prompt: Prompt) -> None:
        body = prompt.to_dict()
        self.store.record_prompt(body)
        topic = f"{self.s.base_topic}/{prompt.person}/prompt"
        self._enqueue(topic, json.dumps(body), qos=1, retain=False, key=f"prompt/{prompt.id}",
                      expires=prompt.expires_at, prompt_id=prompt.id)

    def publish_device(self, person: str, device: str, status: dict) -> None:
        topic = f"{self.s.base_topic}/{person}/device/{device}"
        self._enqueue(topic, json.dumps(status), qos=0, retain=True, key=topic)

    def publish_discovery(self) -> None:
        if not self.s.discovery:
            return
        for person in self.people:
            for topic, payload in discovery_messages(
                person, self.s.base_topic, self.s.discovery_prefix, self.devices.get(person, [])
            ):
                self._enqueue(topic, json.dumps(payload), qos=1, retain=True, key=topic)

    def _enqueue(self, topic, payload, qos, retain, key, expires=None, prompt_id=None) -> None:
        row = json.dumps({"topic": topic, "payload": payload, "qos": qos, "retain": retain, "prompt": prompt_id})
        # A newer retained message replaces an undelivered older one on the same topic.
        self.store.enqueue(SINK, [(key, row, expires)], replace=retain)
        self.pump()

    # -- delivery ------------------------------------------------------------------------------

    def pump(self) -> int:
        """Publish what the outbox holds (when connected); returns the number handed to paho.

        Never calls paho while holding `self._lock`: paho's network thread holds its own
        message mutex while it runs `_on_publish`, which takes `self._lock`, so the opposite
        order would deadlock (it did: a thread publishing QoS 1 prompts hung after three).
        Rows are claimed under the lock, published without it."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        if not self.connected.is_set():
            return 0
        with self._lock:
            rows = [r for r in self.store.peek(SINK, 10_000) if r.id not in self._sending]
            self._sending.update(r.id for r in rows)
        handed = 0
        try:
            for k, row in enumerate(rows):
                msg = json.loads(row.payload)
                props = None
                if row.expires is not None:
                    left = row.expires - self.clock()
                    if left <= 0:
                        self._expire(row, msg)
                        continue
                    props = Properties(PacketTypes.PUBLISH)
                    props.MessageExpiryInterval = max(1, int(left))
                if msg["qos"] == 0:
                    info = self.client.publish(msg["topic"], msg["payload"], qos=0, retain=msg["retain"],
                                               properties=props)
                    if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                        break  # connection dropped meanwhile; the row stays for the next connect
                    self.store.delete([row.id])
                    with self._lock:
                        self._sending.discard(row.id)
                else:
                    # paho's message mutex (taken before ours, the order its network thread uses)
                    # keeps the PUBACK from being handled before the mid is registered here.
                    with self._paho_out_mutex:
                        info = self.client.publish(msg["topic"], msg["payload"], qos=msg["qos"],
                                                   retain=msg["retain"], properties=props)
                        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                            break
                        with self._lock:
                            self._inflight[info.mid] = row.id
                    if msg.get("prompt"):
                        self.store.set_prompt_status(msg["prompt"], "sent")
                handed += 1
        finally:
            with self._lock:  # rows not handed over (connection dropped) are free for the next pump
                waiting = set(self._inflight.values())
                self._sending.difference_update(r.id for r in rows if r.id not in waiting)
        return handed

    def _expire(self, row, msg: dict) -> None:
        self.store.delete([row.id])
        self.store.bump(f"{SINK}.expired")
        if msg.get("prompt"):
            self.store.set_prompt_status(msg["prompt"], "expired")
        with self._lock:
            self._sending.discard(row.id)

    # -- paho callbacks (network thread) ----------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self.s.host, self.s.port, reason_code)
            return
        log.info("connected to MQTT broker %s:%s (session present: %s)", self.s.host, self.s.port,
                 flags.session_present)
        client.publish(self.status_topic, "online", qos=1, retain=True)
        client.subscribe([(f"{self.s.base_topic}/+/prompt/response", 1), (f"{self.s.discovery_prefix}/status", 1)])
        self.connected.set()
        self.publish_discovery()
        self.pump()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        log.info("disconnected from MQTT broker (%s); %d messages wait in the outbox",
                 reason_code, self.store.pending(SINK))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            row_id = self._inflight.pop(mid, None)
            if row_id is None:
                return
            self._sending.discard(row_id)
            prompt_row = self.store.peek_id(SINK, row_id)
            self.store.delete([row_id])
        if prompt_row is not None:
            pid = json.loads(prompt_row.payload).get("prompt")
            if pid:
                self.store.set_prompt_status(pid, "delivered")

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == f"{self.s.discovery_prefix}/status":
            if msg.payload == b"online":
                self.publish_discovery()
            return
        parts = msg.topic.split("/")
        person = parts[-3] if len(parts) >= 3 else ""
        try:
            response = parse_response(msg.payload)
        except ValueError as exc:
            self.store.bump(f"{SINK}.bad_responses")
            log.warning("ignored a malformed prompt response on %s: %s", msg.topic, exc)
            return
        if not self.store.set_prompt_status(response["id"], response["action"], response):
            self.store.bump(f"{SINK}.unknown_responses")
            log.warning("response for unknown prompt id %r on %s", response["id"], msg.topic)
            return
        if self.on_response:
            self.on_response(person, response)
