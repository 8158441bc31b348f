"""MQTT sink: state, prompts, device status and Home Assistant discovery, via paho-mqtt v2 / MQTT v5.

Topics (contract; base topic configurable, default `stresswatch`):
| topic | retained | QoS | payload |
| `<base>/status` | yes | 1 | `online` / `offline` (last will); none with `announce_status=False` |
| `<base>/<person>/state` | yes | 0 | JSON summary of the latest Reading |
| `<base>/<person>/prompt` | no | 1 | JSON Prompt; MQTT v5 message expiry = time left to `expires_at`; sent again when HA announces `online` while unanswered and unexpired |
| `<base>/<person>/prompt/response` | no | 1 | subscribed: `{"id", "action": done/snooze/dismiss/not_stressed, "minutes"}` (minutes: 1-240, optional); only for a prompt of that person; the first answer stands; a retained one is ignored and cleared |
| `<base>/<person>/device/<device>` | yes | 0 | battery, connection, model, whether it sends RR intervals |
| `<base>/outbox` | yes | 0 | what waits in the outbox and what its bounds dropped (`Sinks.publish_outbox`); none with `announce_status=False` |
| `<base>/<person>/activity` | no | 1 | subscribed: the phone's activity (collector/phone_activity.py), handed to `on_activity`; a retained one is stale and ignored |
| `<base>/<person>/measure` | no | 1 | subscribed: `start` (or `{"action": "start"}`) begins a morning reading, `stop` ends it; retained ones are ignored |
| `<base>/<person>/measurement` | yes | 0 | where a morning reading stands: status, seconds left, or why it failed |
| `<base>/<person>/morning` | yes | 1 | the last valid morning reading and its trend |
| `homeassistant/...` | yes | 1 | discovery configs, re-sent when HA announces `online` |

Concurrency: paho runs on an asyncio event loop (sinks/paho_loop.py, as Home Assistant's MQTT
client runs it): the loop's thread reads and writes the socket, pings, reconnects (the attempt
itself in the loop's executor), hands the outbox over and runs every callback, so nothing here
takes a lock around paho. `start()` on a running loop (the service's: `stresswatch run` builds its
sinks there) puts MQTT on that loop; a synchronous caller (`deliver mqtt`, a script, a test)
gets a loop of the sink's own in a background thread ("mqtt-loop"). The `publish_*` methods
may be called from any thread; `on_response`, `on_activity` and `on_measure` are called on the
loop's thread. `stop()` (from another thread) or `await aclose()` (on the loop) publishes the
retained `offline` and disconnects.

Delivery: outgoing messages are written to the SQLite outbox first (sink "mqtt"; state and
device status keyed by topic so only the newest waits, prompts by id), then published when
connected, from the loop, to paho in the order produced (see `pump`; a row the broker asks to
get again goes after later ones, a second later); a QoS 1 row is deleted on a successful PUBACK,
a QoS 0 row once handed to paho.
A retained QoS 0 message (state, device status) produced on the loop's thread while connected
with an empty outbox goes to paho directly, with no row: its row would be deleted within the
same call (see `_retained`). A row that can never be sent (an invalid topic) or that the broker refuses for
good (a PUBACK reason code >= 0x80 such as "Not authorized") is set aside in the store with the reason
(`mqtt.rejected`), logged, and never blocks the others. A prompt whose `expires_at` passed (or
has less than a second left) while it waited is dropped and counted (`mqtt.expired`), never
sent late: on every (re)connect the messages paho still holds unacknowledged are dropped and
their outbox rows published afresh, so the expiry is checked and the MQTT expiry interval
recomputed. The session is persistent (`clean_start=False`, session expiry interval); the
connection is retried with backoff (1 s doubling to 30 s). Connection failures are logged with
their reason once per minute per reason and kept in `last_error`. Passwords are never logged.

Another client with the same client id takes the session over (the broker drops the older
connection): two copies with one config did so every second. It is logged as such and the
reconnect waits TAKEOVER_FIRST_WAIT_S, doubling with each takeover up to TAKEOVER_MAX_WAIT_S
(counted as `mqtt.takeovers`). A broker says so with DISCONNECT reason code 0x8E (Mosquitto >=
2.0.15); an older one (Debian's 2.0.11) just closes the connection, so there a takeover is the
second time in a row that the broker closes the connection without a reason (no DISCONNECT, no
socket error) and accepts the next one at the first attempt with the session still present.

Home Assistant's own MQTT session keeps nothing while it restarts, so when it announces `online`
the discovery configs and every prompt neither answered nor expired are queued again (its
blueprint shows one notification per person and replaces it: the phone sees no duplicate).
A retained answer (a phone publishing with the retain flag) would come back at every connect
and be applied again: one that arrives retained is ignored, logged, counted
(`mqtt.retained_responses`) and cleared with an empty retained message on its topic.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import ssl
import sys
import threading
import time
from dataclasses import dataclass

from alerts.prompt import Prompt, parse_response
from collector.log_limit import LogLimit
from collector.retry import backoff_s
from processing.reading import Reading
from sinks.homeassistant import discovery_messages
from sinks.mqtt_topic import topic_problem
from sinks.paho_loop import loop_client
from sinks.store import OverflowLog, StateStore, StoreError

log = logging.getLogger("stresswatch.mqtt")
SINK = "mqtt"
REPORT_EVERY_S = 60.0  # a failure that repeats (paho retries every 1-30 s) is logged once a minute
# PUBACK reason codes worth retrying (MQTT v5 section 3.4.2.1): 0x91 packet identifier in use,
# 0x97 quota exceeded. Every other failure code (not authorized, topic name invalid, payload
# format invalid, ...) will not fix itself, so that row is set aside.
RETRY_REASONS = frozenset({0x91, 0x97})
RETRY_AFTER_S = 1.0  # a refused row goes again this long after (not at once: quota exceeded)
# People whose Home Assistant discovery configs are queued in one transaction.
DISCOVERY_BATCH = 50
# Outbox rows handed over per turn of the event loop (bounds memory after an outage, and the
# time the loop spends in one turn: ~100 rows cost ~10-20 ms on a Pi-class core).
PUMP_ROWS = 100
STOP_WAIT_S = 5.0  # at `stop`, how long the retained `offline` may take to be acknowledged
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30  # the reconnect backoff
# MQTT v5 DISCONNECT reason code 0x8E (section 3.14.2.1): another connection with this client id.
SESSION_TAKEN_OVER = 0x8E
# Ours: after a takeover the reconnect waits 5 s, doubling to 5 min while takeovers go on (two
# copies then swap the session a few times an hour, not every second), forgotten after an hour.
TAKEOVER_FIRST_WAIT_S, TAKEOVER_MAX_WAIT_S, TAKEOVER_FORGET_S = 5, 300, 3600.0
# What a full outbox drops first (ours): the retained messages (state, device status, discovery;
# one per topic waits, and a newer one follows within seconds or at the next connect), then prompts.
RETAINED, PROMPT = 0, 1


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
    # False: never touch `<base>/status` (no last will, no `online`, no `offline`), so a demo
    # run next to a real service does not mark that service offline.
    announce_status: bool = True


def authenticate(client, settings: MqttSettings) -> None:
    """The credentials and TLS of `settings` on a paho client (the sink's, doctor's, `measure`'s):
    the CA (or the system's), an optional client certificate, hostname checking unless turned off."""
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    if settings.tls:
        client.tls_set(
            ca_certs=settings.ca_file or None,
            certfile=settings.certfile or None,
            keyfile=settings.keyfile or None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(not settings.verify_hostname)


def exposure_warning(s: MqttSettings) -> str | None:
    """A warning when readings would cross a network in clear text to an anonymous broker."""
    if s.tls or s.password:
        return None
    host = s.host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.lower() == "localhost"
    if loopback:
        return None
    return (
        f"MQTT: readings go unencrypted and unauthenticated to {s.host}:{s.port} "
        "(set a password and use mqtts:// with TLS)"
    )


def _describe(exc: BaseException | None) -> str:
    """A one-line reason for a failed connection attempt."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if exc is not None:
        return str(exc) or type(exc).__name__
    return "connection failed"


def parse_measure(payload: bytes) -> dict:
    """A morning reading request: `start` / `stop` (what a Home Assistant button sends), or JSON
    `{"action": "start" | "stop", "trigger": ..., "request": ...}` (the command line sends its own
    id as `request`, to know the answers to it). ValueError says what is wrong."""
    text = payload.decode("utf-8", "replace").strip()
    if text in ("", "start", "stop"):
        return {"action": text or "start", "trigger": "mqtt", "request": None}
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"expected start, stop or JSON, got {text[:40]!r}") from None
    if not isinstance(data, dict) or data.get("action", "start") not in ("start", "stop"):
        raise ValueError(f'expected {{"action": "start" or "stop"}}, got {text[:80]!r}')
    trigger = data.get("trigger", "mqtt")
    request = data.get("request")
    if trigger not in ("mqtt", "cli") or not (
        request is None or (isinstance(request, str) and len(request) <= 64)
    ):
        raise ValueError(f"trigger must be mqtt or cli and request a short string, got {text[:80]!r}")
    return {"action": data.get("action", "start"), "trigger": trigger, "request": request}


def state_payload(r: Reading, status: dict | None = None) -> dict:
    """The retained state message: the Reading's fields, rounded for humans and dashboards, and
    with the alert engine's `status` under "alerts" (baseline calibrating or personal, today's
    stress load, the chronic bands)."""
    out = r.to_dict(digits=3)
    if status is not None:
        out["alerts"] = status
    return out


class MqttSink:
    """Publishes through the outbox; calls `on_response(person, response)` for phone answers,
    `on_activity(person, payload)` for the phone's activity and `on_measure(person, request)` for
    morning reading requests (all on the event loop's thread, see the module docstring)."""

    def __init__(
        self,
        store: StateStore,
        settings: MqttSettings,
        people: list[str],
        devices: dict[str, list[str]] | None = None,
        on_response=None,
        clock=time.time,
        on_activity=None,
    ):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.store, self.s, self.people = store, settings, list(people)
        self.devices = devices or {}
        self.on_response = on_response
        self.on_activity = on_activity
        self.on_measure = None  # (person, request dict) for `<base>/<person>/measure`
        self.clock = clock
        # Set and cleared on the loop's thread; a threading.Event so that any thread may wait for it.
        self.connected = threading.Event()
        self.last_error: str | None = None  # why the last connection attempt failed; None once connected
        self._connect_log = LogLimit(log, REPORT_EVERY_S)  # a failed connection: a line per reason a minute
        self._paho_error: str | None = None  # paho's last socket error message (see `_on_log`)
        self._attempt_failed = False  # the current connection attempt's failure is already reported
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._cursor = 0  # highest outbox row id this connection has dealt with
        # A row the broker asked to get again (RETRY_REASONS): the cursor goes back to it at the
        # next pass a second later.
        self._retry_after = math.inf
        self._sending: set[int] = set()  # outbox row ids handed to paho, PUBACK not yet in
        self._pump_due = False  # a pass is scheduled on the loop (see `pump`)
        self._pump_failed = False  # the last pass failed: the next comes a second later, not sooner
        self._stopping = False
        self._send_log = LogLimit(log, REPORT_EVERY_S)  # a pass of the outbox that failed: a line a minute
        # Session takeovers (see the module docstring): the last connection ended in a close by
        # the broker without a reason; how many such closes in a row were followed by a connection
        # accepted at once with the session present; takeovers in a row and when the last was.
        self._quiet_close = False
        self._quiet_cycles = 0
        self._takeovers = 0
        self._last_takeover = -math.inf
        self._clearing: dict[int, str] = {}  # paho mid -> topic of a retained answer being cleared
        self._offline_mid: int | None = None  # the retained `offline` of `stop`, until its PUBACK
        self._offline_acked: asyncio.Event | None = None
        self.overflow = OverflowLog(
            store, SINK, "MQTT", "messages", {RETAINED: "retained", PROMPT: "prompts"}
        )
        self._mqtt = mqtt
        c = loop_client(CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5)
        authenticate(c, settings)
        if settings.announce_status:
            c.will_set(self.status_topic, "offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_pre_connect = self._on_pre_connect
        c.on_disconnect = self._on_disconnect
        c.on_log = self._on_log
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        self.client = c
        if (warning := exposure_warning(settings)) is not None:
            log.warning(warning)

    @property
    def status_topic(self) -> str:
        return f"{self.s.base_topic}/status"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Connect and keep connected, on `loop`, else on the running loop of the calling thread
        (the service's), else on a loop of the sink's own in a background thread."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.s.session_expiry_s
        self.client.connect_async(
            self.s.host, self.s.port, keepalive=self.s.keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start(loop)
        self.pump()  # what an earlier run left in the outbox goes once connected

    def stop(self) -> None:
        """Clean shutdown from any thread but the loop's (there: `await aclose()`): retained
        `offline`, then disconnect (the will is for crashes). What was not handed over stays in
        the outbox (`Sinks.close` waits for it first)."""
        if self.client.loop is None:
            return
        if self.client.on_loop_thread():
            raise RuntimeError("MqttSink.stop() on its event loop's thread: use `await sink.aclose()`")
        try:
            self.client.run(self.aclose, timeout=STOP_WAIT_S + 5)
        except Exception as exc:  # the loop is gone or hung: nothing more to say to the broker
            log.warning("MQTT: could not disconnect cleanly: %s", exc)
        self.client.loop_stop()

    async def aclose(self) -> None:
        """`stop` on the loop's thread: `offline` (waiting up to STOP_WAIT_S for its PUBACK), then
        DISCONNECT; the client stays attached to the loop until `client.loop_stop()`."""
        self._stopping = True
        if self.connected.is_set() and self.s.announce_status:
            self._offline_acked = asyncio.Event()
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                self._offline_mid = info.mid
                try:
                    await asyncio.wait_for(self._offline_acked.wait(), STOP_WAIT_S)
                except TimeoutError:
                    log.warning("MQTT: the broker did not acknowledge `offline` within %g s", STOP_WAIT_S)
        self.client.disconnect()
        for _ in range(100):  # paho closes the socket once DISCONNECT is written (a turn or two of the loop)
            if self.client.socket() is None:
                break
            await asyncio.sleep(0.01)

    # -- producing (any thread) ------------------------------------------------------------------

    def publish_state(self, reading: Reading, status: dict | None = None) -> None:
        topic = f"{self.s.base_topic}/{reading.person}/state"
        self._retained(topic, json.dumps(state_payload(reading, status)))

    def publish_prompt(self, prompt: Prompt) -> None:
        self.publish_prompt_body(prompt.to_dict())

    def publish_prompt_body(self, body: dict) -> None:
        """A prompt as `Prompt.to_dict` made it (here, or on a worker: stresswatch/deliver.py)."""
        self.store.record_prompt(body)
        topic = f"{self.s.base_topic}/{body['person']}/prompt"
        self._enqueue(
            topic,
            json.dumps(body),
            qos=1,
            retain=False,
            key=f"prompt/{body['id']}",
            expires=body["expires_at"],
            prompt_id=body["id"],
        )

    def publish_device(self, person: str, device: str, status: dict) -> None:
        topic = f"{self.s.base_topic}/{person}/device/{device}"
        self._retained(topic, json.dumps(status))

    def publish_outbox(self, status: dict) -> None:
        """The outbox's figures (see `Sinks.outbox_status`), retained, for whoever watches the service."""
        if self.s.announce_status:
            self._retained(f"{self.s.base_topic}/outbox", json.dumps(status))

    def publish_morning(self, person: str, data: dict) -> None:
        """The last valid morning reading (retained, QoS 1: a phone or Home Assistant that connects
        later still gets it)."""
        topic = f"{self.s.base_topic}/{person}/morning"
        self._enqueue(topic, json.dumps(data), qos=1, retain=True, key=topic)

    def publish_measurement(self, person: str, progress: dict) -> None:
        self._retained(f"{self.s.base_topic}/{person}/measurement", json.dumps(progress))

    def publish_discovery(self) -> None:
        if not self.s.discovery:
            return
        # The configs of DISCOVERY_BATCH people per transaction: one per message cost ~1.1 s of
        # CPU at each connect with 1000 people; all at once held ~5000 rows in memory (~+15 MB
        # peak RSS). `pump` reads them back PUMP_ROWS at a time.
        for k in range(0, len(self.people), DISCOVERY_BATCH):
            rows = [
                (topic, self._row(topic, json.dumps(payload), qos=1, retain=True), None)
                for person in self.people[k : k + DISCOVERY_BATCH]
                for topic, payload in discovery_messages(
                    person, self.s.base_topic, self.s.discovery_prefix, self.devices.get(person, [])
                )
            ]
            self._dropped(self.store.enqueue(SINK, rows, replace=True))
        self.pump()

    def resend_open_prompts(self) -> int:
        """Queue again every prompt neither answered nor expired (nor within a second of it), in
        the order produced; returns how many. One still waiting in the outbox keeps its row."""
        rows = []
        for pid, body, expires in self.store.open_prompts(self.clock() + 1):
            topic = f"{self.s.base_topic}/{json.loads(body)['person']}/prompt"
            rows.append(
                (f"prompt/{pid}", self._row(topic, body, qos=1, retain=False, prompt_id=pid), expires)
            )
        self.store.enqueue(SINK, rows)
        self.pump()
        return len(rows)

    def _retained(self, topic: str, payload: str) -> None:
        """A retained QoS 0 message (state, device status): straight to paho when produced on the
        loop's thread while connected and nothing waits in the outbox, else through the outbox
        like every other message.

        Same delivery as the outbox path: there a QoS 0 row is deleted as soon as paho has it, so
        either way paho holds the message in memory until its socket write, and a crash loses the
        same. The outbox must be empty, not just free of this topic's rows, only because that
        check is one lookup; an older row of this topic waiting would otherwise be published after
        this newer message and become the retained one. Skipping the row's insert, read and delete
        (two SQLite transactions and a JSON round trip) cut the cost of a state message on the
        service's loop thread from ~270 us to ~150 us (benchmarks/service.py with 1000 wearers
        publishes 100 states a second)."""
        if (
            self.connected.is_set()
            and self.client.on_loop_thread()
            and topic_problem(topic) is None
            and not self.store.pending(SINK)
        ):
            try:
                info = self.client.publish(topic, payload, qos=0, retain=True)
            except ValueError:  # paho refuses it (payload too large): the outbox path sets it aside
                info = None
            if info is not None and info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                return
        self._enqueue(topic, payload, qos=0, retain=True, key=topic)

    def _enqueue(self, topic, payload, qos, retain, key, expires=None, prompt_id=None) -> None:
        # A newer retained message replaces an undelivered older one on the same topic.
        row = (
            key,
            self._row(topic, payload, qos, retain, prompt_id),
            expires,
            PROMPT if prompt_id else RETAINED,
        )
        self._dropped(self.store.enqueue(SINK, [row], replace=retain))
        self.pump()

    def _dropped(self, dropped) -> None:
        if dropped:
            self.overflow.add(dropped)

    @staticmethod
    def _row(topic, payload, qos, retain, prompt_id=None) -> str:
        """An outbox row's payload: the message and how to publish it."""
        return json.dumps(
            {"topic": topic, "payload": payload, "qos": qos, "retain": retain, "prompt": prompt_id}
        )

    # -- delivery (on the loop's thread) ---------------------------------------------------------

    def pump(self) -> None:
        """Have the loop hand the outbox's new rows to paho; returns at once, from any thread.

        Only the loop's thread hands rows over, in the order they were produced, PUMP_ROWS per
        turn of the loop (so a backlog never holds the loop for long). Producing costs an outbox
        row (or a direct publish, see `_retained`) and never waits for the network."""
        if self._pump_due or self._pump_failed:
            return  # a pass is scheduled and has not started (or comes after a failure): it will see the new rows
        self._pump_due = True  # before the call: the pass may start (and clear it) before call_soon returns
        if not self.client.call_soon(self._pass):
            self._pump_due = False  # no loop (not started, or stopped): the next start pumps

    def _pass(self) -> None:
        """One pass of the outbox; another on the next turn when more rows wait. A failure (the
        state store, full or locked) leaves the rows in the outbox; it is logged once a minute
        and tried again a second later."""
        self._pump_due = self._pump_failed = False
        try:
            more = self._pump_once()
        except Exception as exc:  # the rows stay in the outbox
            if self._send_log.allow():
                if isinstance(exc, StoreError):
                    log.error("MQTT: cannot read or update the outbox: %s (retrying)", exc)
                else:
                    log.exception("MQTT: handing the outbox to paho failed (retrying)")
            self._pump_failed = True
            self.client.call_later(1.0, self._retry_pass)
            return
        if more:
            self.pump()

    def _retry_pass(self) -> None:
        self._pump_failed = False
        self.pump()

    def _pump_once(self) -> bool:
        """Hand the next PUMP_ROWS outbox rows this connection has not handed over yet to paho;
        true when it took a full batch and more rows may wait."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        if not self.connected.is_set() or self._stopping:
            return False
        # Only rows this connection has not handed over yet (ids grow): each pass costs what
        # is new, not the whole outbox (which made n messages cost O(n^2) during an outage).
        if self._retry_after < self._cursor:
            self._cursor = int(self._retry_after)
        self._retry_after = math.inf
        peeked = self.store.peek(SINK, PUMP_ROWS, after_id=self._cursor)
        for row in peeked:
            # A row still waiting for its PUBACK was handed over on this connection already (it
            # comes up again after a retry lowered the cursor): passed over, not re-sent.
            if row.id in self._sending:
                self._cursor = row.id
                continue
            msg = json.loads(row.payload)
            problem = topic_problem(msg["topic"])
            if problem is not None:
                self._reject(row, msg, problem)
                self._cursor = row.id
                continue
            props = None
            if row.expires is not None:
                left = int(
                    row.expires - self.clock()
                )  # whole seconds: the broker's expiry never outlives expires_at
                if left < 1:
                    self._expire(row, msg)
                    self._cursor = row.id
                    continue
                props = Properties(PacketTypes.PUBLISH)
                props.MessageExpiryInterval = left
            try:
                info = self.client.publish(
                    msg["topic"], msg["payload"], qos=msg["qos"], retain=msg["retain"], properties=props
                )
            except ValueError as exc:  # paho refuses it (payload too large, ...): it never will send it
                self._reject(row, msg, str(exc))
                self._cursor = row.id
                continue
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                return False  # the connection dropped: the row stays for the next connect
            if msg["qos"] == 0:
                self.store.delete([row.id])
            else:
                self._inflight[info.mid] = row.id
                self._sending.add(row.id)
                if msg.get("prompt"):  # before the PUBACK can make it `delivered`
                    self.store.set_prompt_status(msg["prompt"], "sent")
            self._cursor = row.id
        return len(peeked) == PUMP_ROWS

    def _expire(self, row, msg: dict) -> None:
        self.store.delete([row.id])
        self.store.bump(f"{SINK}.expired")
        if msg.get("prompt"):
            self.store.set_prompt_status(msg["prompt"], "expired")

    def _reject(self, row, msg: dict, reason: str) -> None:
        """Set aside a row that will never be delivered (counted as `mqtt.rejected`)."""
        self.store.set_aside(SINK, row, reason)
        log.warning("MQTT: set aside a message for %s: %s", msg["topic"], reason)
        if msg.get("prompt"):
            self.store.set_prompt_status(msg["prompt"], "rejected")

    def _connect_failed(self, reason: str) -> None:
        """Remember and log (once a minute for the same reason) a failed connection."""
        self.last_error = reason
        self._attempt_failed = True
        if not self._connect_log.allow(reason):
            return
        log.warning("could not connect to MQTT broker %s:%s: %s (retrying)", self.s.host, self.s.port, reason)

    def _measure_request(self, msg) -> None:
        """`<base>/<person>/measure`: start or stop a morning reading. A retained request is ignored
        (it would start a reading at every reconnect), as is anything but start or stop."""
        person = msg.topic[len(self.s.base_topic) + 1 : -len("/measure")]
        if msg.retain:
            log.warning(
                "ignored a retained morning reading request on %s (publish it without retain)", msg.topic
            )
            return
        try:
            request = parse_measure(msg.payload)
        except ValueError as exc:
            self.store.bump(f"{SINK}.bad_requests")
            log.warning("ignored a morning reading request on %s: %s", msg.topic, exc)
            return
        if self.on_measure:
            self.on_measure(person, request)

    # -- paho callbacks (on the loop's thread) ---------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_failed(f"the broker refused the connection: {reason_code}")
            return
        # `last_error` is still None when no attempt failed since the last connection ended.
        at_once = self.last_error is None
        self._quiet_cycles = (
            self._quiet_cycles + 1 if self._quiet_close and at_once and flags.session_present else 0
        )
        self._quiet_close = False
        self.last_error = self._paho_error = None
        self._connect_log.clear()
        log.info(
            "connected to MQTT broker %s:%s (session present: %s)",
            self.s.host,
            self.s.port,
            flags.session_present,
        )
        # paho would now re-send every QoS 1 message the last connection left unacknowledged,
        # as it was, with no look at its expiry: a prompt frozen in a dead connection would reach
        # the phone after `expires_at`. Their outbox rows are still there (deleted only on
        # PUBACK), so drop paho's copies and publish the rows afresh: expired prompts are
        # dropped, the others carry the time left. For QoS 1 a broker does not de-duplicate by
        # packet id, so a new id gives the same at-least-once delivery.
        client.drop_out_messages()
        self._sending.clear()
        self._inflight.clear()
        self._clearing.clear()  # a retained answer not cleared yet comes again and is cleared then
        self._cursor = 0  # a new connection starts from the oldest row
        self._retry_after = math.inf
        if self.s.announce_status:
            client.publish(self.status_topic, "online", qos=1, retain=True)
        client.subscribe(
            [
                (f"{self.s.base_topic}/+/prompt/response", 1),
                (f"{self.s.base_topic}/+/activity", 1),
                (f"{self.s.base_topic}/+/measure", 1),
                (f"{self.s.discovery_prefix}/status", 1),
            ]
        )
        self.connected.set()
        self.publish_discovery()
        self.pump()

    def _on_pre_connect(self, client, userdata) -> None:
        self._attempt_failed = False
        self._paho_error = None

    def _on_connect_fail(self, client, userdata) -> None:
        # No reason is passed, but the loop client (sinks/paho_loop.py) calls this from inside
        # its `except` around the connection attempt, as paho's own loop does, so the exception
        # being handled is the reason (refused, timed out, TLS certificate not trusted, ...).
        # tests/sinks/test_mqtt.py checks the reason still shows up in the log.
        self.store.bump(f"{SINK}.connect_failures")
        self._connect_failed(_describe(sys.exc_info()[1]))

    def _on_log(self, client, userdata, level, buf) -> None:
        # Keeps paho's socket errors: a TLS handshake the broker rejects after the fact (it
        # wants a client certificate) shows up only here, followed by a bare disconnect.
        if level == self._mqtt.MQTT_LOG_ERR and buf.startswith(
            ("failed to receive", "failed to send", "timeout")
        ):
            self._paho_error = buf

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if self._offline_acked is not None:
            self._offline_acked.set()  # `aclose` waits no longer: the connection is gone
        if not was_connected:
            # The attempt ended before the broker accepted it; a refusal in CONNACK is reported already.
            if reason_code.is_failure and not self._attempt_failed:
                detail = self._paho_error or str(reason_code)
                self._connect_failed(f"connection closed before the broker accepted it: {detail}")
            return
        from_server = flags.is_disconnect_packet_from_server
        # paho's "Unspecified error" for a connection the broker closed: no DISCONNECT, no socket error
        quiet = not from_server and reason_code.value == 0x80 and self._paho_error is None
        self._quiet_close = quiet
        if from_server and reason_code.value == SESSION_TAKEN_OVER:
            self._taken_over("the broker said: Session taken over")
            return
        if quiet and self._quiet_cycles >= 1:
            self._taken_over(
                "the broker closed the connection without a reason again, and accepted the last one "
                "at once with the session kept"
            )
            return
        if self._takeovers:  # an ordinary disconnect: the ordinary reconnect backoff
            client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        cause = "the broker closed the connection without a reason" if quiet else str(reason_code)
        log.info(
            "disconnected from MQTT broker (%s); %d messages wait in the outbox",
            cause,
            self.store.pending(SINK),
        )

    def _taken_over(self, evidence: str) -> None:
        """Another client with our client id has the session: log it, and wait longer and longer
        before taking it back (the reconnect waits `reconnect_delay_set`'s minimum)."""
        now = time.monotonic()
        if now - self._last_takeover > TAKEOVER_FORGET_S:
            self._takeovers = 0
        self._takeovers += 1
        self._last_takeover = now
        wait = backoff_s(self._takeovers, TAKEOVER_FIRST_WAIT_S, TAKEOVER_MAX_WAIT_S)
        self.client.reconnect_delay_set(min_delay=wait, max_delay=max(wait, RECONNECT_MAX_S))
        self.store.bump(f"{SINK}.takeovers")
        log.warning(
            "MQTT: another client with client id %r took over the MQTT session (%s): a second copy of "
            "stresswatch or another program uses this client id; give each its own mqtt.client_id. "
            "Reconnecting in %d s; %d messages wait in the outbox",
            self.s.client_id,
            evidence,
            wait,
            self.store.pending(SINK),
        )

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if mid == self._offline_mid and self._offline_acked is not None:
            self._offline_acked.set()
            return
        cleared = self._clearing.pop(mid, None)
        if cleared is not None:
            if reason_code.is_failure:
                log.warning(
                    "MQTT broker refused to clear the retained answer on %s (%s): it is ignored at "
                    "every connect",
                    cleared,
                    reason_code,
                )
            return
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            return
        self._sending.discard(row_id)
        row = self.store.peek_id(SINK, row_id)
        if row is None:
            return
        refused = reason_code.is_failure
        if not refused:
            self.store.delete([row_id])
        elif reason_code.value not in RETRY_REASONS:
            self.store.set_aside(SINK, row, f"broker refused: {reason_code}")
        else:  # the row stays and goes again with the pass a second from now
            self._retry_after = min(self._retry_after, row_id - 1)
            self.client.call_later(RETRY_AFTER_S, self.pump)
        msg = json.loads(row.payload)
        pid = msg.get("prompt")
        if not refused:
            if pid:
                self.store.set_prompt_status(pid, "delivered")
        elif reason_code.value in RETRY_REASONS:
            self.store.bump(f"{SINK}.refused_retry")
            log.warning("MQTT broker refused %s for now (%s); will retry", msg["topic"], reason_code)
        else:
            log.warning("MQTT broker refused %s: %s; set aside (mqtt.rejected)", msg["topic"], reason_code)
            if pid:
                self.store.set_prompt_status(pid, "rejected")

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == f"{self.s.discovery_prefix}/status":
            # Only a live `online` says Home Assistant (re)started: a retained one comes with each
            # subscribe, at our own connect, where the discovery configs go out anyway.
            if msg.payload == b"online" and not msg.retain:
                self.publish_discovery()
                n = self.resend_open_prompts()
                log.info(
                    "Home Assistant is online: %s%d open prompt(s) queued again",
                    "discovery configs and " if self.s.discovery else "",
                    n,
                )
            return
        if msg.topic.endswith("/activity"):
            self._activity(msg)
            return
        if msg.topic.endswith("/measure"):  # before the answers' checks: its own warnings for retained/empty
            self._measure_request(msg)
            return
        if not msg.payload:  # how a retained answer is cleared (see below): nothing to answer
            return
        if msg.retain:
            self._clear_retained_answer(msg)
            return
        parts = msg.topic.split("/")
        person = parts[-3] if len(parts) >= 3 else ""
        try:
            response = parse_response(msg.payload)
        except ValueError as exc:
            self.store.bump(f"{SINK}.bad_responses")
            log.warning("ignored a malformed prompt response on %s: %s", msg.topic, exc)
            return
        known = self.store.prompt(response["id"])
        if known is None:
            self.store.bump(f"{SINK}.unknown_responses")
            log.warning("response for unknown prompt id %r on %s", response["id"], msg.topic)
            return
        if known["prompt"]["person"] != person:  # one person's phone must not answer another's prompt
            self.store.bump(f"{SINK}.foreign_responses")
            log.warning("ignored a response on %s for prompt %r of another person", msg.topic, response["id"])
            return
        # The first answer stands in the prompt history; a later one still goes on, for the
        # engine to log and count (it keeps its first answer too).
        self.store.answer_prompt(response["id"], response)
        if self.on_response:
            self.on_response(person, response)

    def _activity(self, msg) -> None:
        """The phone's activity, for a configured person and as it happens: a retained one (left
        by a client that published with the retain flag) tells what was true some time ago."""
        person = msg.topic.split("/")[-2]
        if msg.retain or person not in self.people:
            self.store.bump(f"{SINK}.ignored_activity")
            log.debug(
                "ignored %s activity on %s", "a retained" if msg.retain else "an unknown person's", msg.topic
            )
            return
        if self.on_activity:
            self.on_activity(person, bytes(msg.payload))

    def _clear_retained_answer(self, msg) -> None:
        """An answer the broker kept (published with the retain flag) comes at every subscribe,
        long after it was given: never applied; cleared by an empty retained message."""
        self.store.bump(f"{SINK}.retained_responses")
        try:
            which = f" to prompt {parse_response(msg.payload)['id']!r}"
        except ValueError:
            which = ""
        log.warning(
            "ignored a retained answer%s on %s (the broker hands it over at every connect, so it is "
            "not a new answer); clearing it",
            which,
            msg.topic,
        )
        info = self.client.publish(msg.topic, b"", qos=1, retain=True)
        if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
            self._clearing[info.mid] = msg.topic
