"""A real Home Assistant (2024.3.3, the oldest we support) against a real Mosquitto: stresswatch's MQTT
discovery makes the expected entities, a prompt fires the event entity, and the blueprint
deploy/homeassistant/stresswatch_prompt.yaml turns prompts into phone notifications and taps into
answers that stresswatch's own MqttSink accepts.

The phone is the `rest` notify platform posting to a receiver in this test: it gets exactly the
message, title and `data` the Companion app would get. Home Assistant is installed into its own
cached venv on first use (tests/homeassistant_server.py); later runs start it in seconds.
Last, the README's recipe for a phone without Home Assistant, run with mosquitto_sub/pub."""

from __future__ import annotations

import json
import queue
import shlex
import shutil
import subprocess
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import homeassistant_server
import paho.mqtt.client as mqtt
import pytest
import sample
import servers
from paho.mqtt.enums import CallbackAPIVersion
from servers import wait_for as wait

from alerts.prompt import Exercise, Prompt, PromptAction
from collector.events import MotionKind
from collector.phone_activity import motion_from_phone
from processing.reading import Reading, StressState
from sinks.mqtt import MqttSettings, MqttSink
from sinks.store import StateStore
from sinks.version import VERSION

yaml = pytest.importorskip("yaml", reason="PyYAML reads the blueprint: add pyyaml to the test extras")

BLUEPRINT = Path(__file__).resolve().parents[2] / "deploy" / "homeassistant" / "stresswatch_prompt.yaml"
ACTIVITY_BLUEPRINT = BLUEPRINT.with_name("stresswatch_activity.yaml")
ACTIVITY_SENSOR = "sensor.pixel_8_detected_activity"  # what the Android companion app names it
PEOPLE = ["ann", "Zoë Lee"]  # the second: a name Home Assistant must slug for its ids


class Phone:
    """Receives what the `rest` notify platform posts: one dict per notification."""

    def __init__(self):
        self.notifications: queue.Queue = queue.Queue()
        self.log = lambda: "(Home Assistant not started)"
        inbox = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                body["data"] = json.loads(body["data"])  # rendered `{{ data | tojson }}`
                inbox.put(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"

    def notification_for(self, p: Prompt, timeout: float = 15.0) -> tuple[dict, list[dict]]:
        """The notification of prompt `p`, and those that came before it (other tests' prompts run late)."""
        before, deadline = [], time.monotonic() + timeout
        while True:
            try:
                note = self.notifications.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"no notification for {p.id}; Home Assistant log:\n{self.log()}"
                ) from None
            if note["data"]["actions"][0]["action"].endswith("/" + p.id):
                return note, before
            before.append(note)


class Subscriber:
    """A plain MQTT client recording (topic, JSON payload) of what it receives."""

    def __init__(self, port: int, topic: str):
        self.messages: queue.Queue = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "subscription not acknowledged"

    def next(self, timeout: float = 15.0) -> tuple[str, dict]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    server = servers.mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def phone():
    p = Phone()
    yield p
    p.server.shutdown()


@pytest.fixture(scope="module")
def hass(tmp_path_factory, mosquitto, phone):
    """Home Assistant with MQTT on the test broker and one blueprint automation per person."""
    config = tmp_path_factory.mktemp("homeassistant")
    ha = homeassistant_server.start(config, mosquitto.port, phone.url)
    phone.log = ha.log_tail
    try:
        # Where Home Assistant keeps imported blueprints: blueprints/automation/<author>/.
        target = config / "blueprints" / "automation" / "stresswatch"
        target.mkdir(parents=True)
        shutil.copy(BLUEPRINT, target / BLUEPRINT.name)
        shutil.copy(ACTIVITY_BLUEPRINT, target / ACTIVITY_BLUEPRINT.name)
        automations = [
            {
                "id": "stresswatch_activity_ann",
                "alias": "stresswatch activity ann",
                "use_blueprint": {
                    "path": f"stresswatch/{ACTIVITY_BLUEPRINT.name}",
                    "input": {"person": "ann", "activity_sensor": ACTIVITY_SENSOR},
                },
            },
        ] + [
            {
                "id": f"stresswatch_prompt_{i}",
                "alias": f"stresswatch prompt {person}",
                "use_blueprint": {
                    "path": f"stresswatch/{BLUEPRINT.name}",
                    "input": {"person": person, "notify_service": "notify.phone"},
                },
            }
            for i, person in enumerate(PEOPLE)
        ]
        (config / "automations.yaml").write_text(yaml.safe_dump(automations, allow_unicode=True))
        # MQTT was set up after the start, so the automations (MQTT triggers) are loaded now.
        ha.call("automation", "reload")
        # Home Assistant subscribes in batches after a short delay: a prompt published right
        # after the reload could go unseen, so wait until each person's automation answers one.
        for person in PEOPLE:
            _until_shown(mosquitto.port, phone, prompt(person))
        yield ha
    finally:
        ha.stop()


@pytest.fixture(scope="module")
def sink(tmp_path_factory, mosquitto, hass):
    """stresswatch's own MQTT sink: discovery, status, readings, prompts; records the answers it accepts."""
    answers: queue.Queue = queue.Queue()
    activity: queue.Queue = queue.Queue()
    store = StateStore(tmp_path_factory.mktemp("state") / "state.db")
    settings = MqttSettings(host="127.0.0.1", port=mosquitto.port, client_id="stresswatch-test")
    s = MqttSink(
        store,
        settings,
        people=PEOPLE,
        devices={"ann": ["H10"]},
        on_response=lambda person, response: answers.put((person, response)),
        on_activity=lambda person, payload: activity.put((person, payload)),
    )
    s.answers, s.activity = answers, activity
    s.start()
    assert s.connected.wait(10)
    yield s
    s.stop()
    store.close()


def publish(port: int, topic: str, payload: str, retain: bool = False) -> None:
    """One QoS 1 message from a plain client (what a broker holding messages back, or a test, sends)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _until_shown(port: int, phone: Phone, p: Prompt, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        publish(port, f"stresswatch/{p.person}/prompt", json.dumps(p.to_dict()))
        try:
            phone.notification_for(p, timeout=0.5)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def reading(person: str, score: float = 72.0, state: str = "stressed") -> Reading:
    return sample.reading(person=person, time=time.time(), stress_score=score, state=state)


def prompt(person: str = "ann", expires_in: float = 600.0, kind: str = "acute") -> Prompt:
    now = time.time()
    return Prompt(
        f"{person}-{int(now)}-{uuid.uuid4().hex[:6]}",
        person,
        now,
        kind,
        "Your RMSSD has stayed 40% below your usual for 10 minutes.",
        81.0,
        now + expires_in,
    )


def entity(hass, friendly_name: str) -> dict | None:
    return next(
        (s for s in hass.states().values() if s["attributes"].get("friendly_name") == friendly_name), None
    )


def test_discovery_makes_sensors_with_units_and_classes(hass, sink):
    sink.publish_state(reading("ann"))
    sink.publish_device("ann", "H10", {"battery_pct": 87, "connected": True, "model": "Polar H10"})
    wanted = {
        "sensor.stresswatch_ann_heart_rate": (
            "67",
            {"unit_of_measurement": "bpm", "state_class": "measurement"},
        ),
        "sensor.stresswatch_ann_rmssd": (
            "42.0",
            {"unit_of_measurement": "ms", "device_class": "duration", "state_class": "measurement"},
        ),
        "sensor.stresswatch_ann_stress_score": ("72", {"state_class": "measurement"}),
        "sensor.stresswatch_ann_stress_state": ("stressed", {"device_class": "enum"}),
        "sensor.stresswatch_ann_battery_h10": (
            "87",
            {"unit_of_measurement": "%", "device_class": "battery", "state_class": "measurement"},
        ),
    }
    states = (
        wait(
            lambda: (
                (s := hass.states())
                and all(s.get(e, {}).get("state") == v[0] for e, v in wanted.items())
                and s
            ),
            timeout=30,
        )
        or hass.states()
    )
    for entity_id, (value, attributes) in wanted.items():
        assert entity_id in states, f"{entity_id} missing; Home Assistant log:\n{hass.log_tail()}"
        got = states[entity_id]
        assert got["state"] == value, (entity_id, got)
        assert {k: got["attributes"].get(k) for k in attributes} == attributes, (entity_id, got["attributes"])
    assert (
        states["sensor.stresswatch_ann_heart_rate"]["attributes"]["friendly_name"]
        == "stresswatch ann Heart rate"
    )


def test_the_sensors_and_the_prompt_event_share_one_device_per_wearer(hass, sink):
    sink.publish_device("ann", "H10", {"battery_pct": 87, "connected": True, "model": "Polar H10"})
    assert wait(lambda: hass.value("sensor.stresswatch_ann_battery_h10") is not None)
    device = "device_id('sensor.stresswatch_ann_heart_rate')"
    attrs = json.loads(
        hass.render(
            f"{{{{ {{'entities': device_entities({device}) | sort, 'name': device_attr({device}, 'name'),"
            f" 'manufacturer': device_attr({device}, 'manufacturer'), 'model': device_attr({device}, 'model'),"
            f" 'sw_version': device_attr({device}, 'sw_version')}} | tojson }}}}"
        )
    )
    assert attrs == {
        "entities": [
            "button.stresswatch_ann_measure",
            "event.stresswatch_ann_prompt",
            "sensor.stresswatch_ann_battery_h10",
            "sensor.stresswatch_ann_beats_per_min_h10",
            "sensor.stresswatch_ann_heart_rate",
            "sensor.stresswatch_ann_last_beat_h10",
            "sensor.stresswatch_ann_morning_cv_7d",
            "sensor.stresswatch_ann_morning_heart_rate",
            "sensor.stresswatch_ann_morning_ln_rmssd",
            "sensor.stresswatch_ann_morning_ln_rmssd_7d",
            "sensor.stresswatch_ann_morning_seconds_left",
            "sensor.stresswatch_ann_morning_status",
            "sensor.stresswatch_ann_rmssd",
            "sensor.stresswatch_ann_stress_score",
            "sensor.stresswatch_ann_stress_state",
        ],
        "name": "stresswatch ann",
        "manufacturer": "stresswatch",
        "model": "HRV stress monitor",
        "sw_version": VERSION,
    }


def test_a_name_with_a_space_and_an_accent_gets_its_entities(hass, sink):
    sink.publish_state(reading("Zoë Lee", score=30.0, state="calm"))
    state = wait(
        lambda: (e := entity(hass, "stresswatch Zoë Lee Stress state")) and e["state"] == "calm" and e
    )
    assert state, f"no stress state for Zoë Lee; Home Assistant log:\n{hass.log_tail()}"
    assert state["entity_id"].startswith("sensor.stresswatch_zo")


def test_every_stress_state_is_a_value_the_enum_sensor_takes(hass, sink):
    for s in StressState:
        sink.publish_state(reading("ann", state=s.value))
        got = wait(lambda s=s: hass.value("sensor.stresswatch_ann_stress_state") == s.value)
        assert got, (s, hass.state("sensor.stresswatch_ann_stress_state"))


def test_a_prompt_fires_the_event_entity_with_its_kind_and_reason(hass, sink):
    before = time.time()
    for kind in ("acute", "chronic", "scheduled"):
        p = prompt(kind=kind)
        sink.publish_prompt(p)
        event = wait(
            lambda kind=kind: (
                (e := hass.state("event.stresswatch_ann_prompt"))
                and e["attributes"].get("event_type") == kind
                and e
            )
        )
        assert event, hass.state("event.stresswatch_ann_prompt")
        assert datetime.fromisoformat(event["state"]).timestamp() >= before - 1
        assert event["attributes"]["reason"] == p.reason
        assert event["attributes"]["event_types"] == ["acute", "chronic", "scheduled"]


def test_the_blueprints_load_as_one_automation_per_person_and_phone(hass):
    automations = {
        s["attributes"].get("id"): s
        for s in hass.states().values()
        if s["entity_id"].startswith("automation.")
    }
    assert set(automations) == {"stresswatch_prompt_0", "stresswatch_prompt_1", "stresswatch_activity_ann"}, (
        hass.log_tail()
    )
    assert all(a["state"] == "on" for a in automations.values()), automations


def test_a_prompt_becomes_a_phone_notification_with_three_actions(hass, sink, phone):
    p = prompt(expires_in=437.0)
    sink.publish_prompt(p)
    note, _ = phone.notification_for(p)
    assert note["title"] == "Breathe: resonance breathing"
    assert note["message"] == f"{p.reason}\n5 min: {Exercise().instructions}"
    data = note["data"]
    assert data["actions"] == [
        {"action": f"STRESSWATCH_DONE_ann/{p.id}", "title": "Start"},
        {"action": f"STRESSWATCH_SNOOZE_ann/{p.id}", "title": "Snooze 30 min"},
        {"action": f"STRESSWATCH_NOT_STRESSED_ann/{p.id}", "title": "Not stressed"},
    ]
    assert data["tag"] == "stresswatch_ann"  # the next prompt replaces this notification
    assert 400 <= data["timeout"] <= 437  # seconds left until expires_at
    assert data["push"] == {"interruption-level": "time-sensitive"}


def test_an_expired_prompt_shows_nothing(hass, mosquitto, sink, phone):
    old = prompt(expires_in=-5.0)  # the sink would drop it; a broker holding it back would not
    fresh = prompt()
    for p in (old, fresh):
        publish(mosquitto.port, "stresswatch/ann/prompt", json.dumps(p.to_dict()))
    _, before = phone.notification_for(fresh)
    assert [n for n in before if old.id in n["data"]["actions"][0]["action"]] == []


@pytest.mark.parametrize(
    "button, answer",
    [
        ("DONE", {"action": "done"}),
        ("SNOOZE", {"action": "snooze", "minutes": 30}),
        ("NOT_STRESSED", {"action": "not_stressed"}),
    ],
)
def test_a_tap_is_answered_on_the_response_topic_and_accepted_by_stresswatch(
    hass, mosquitto, sink, phone, button, answer
):
    p = prompt()
    sink.publish_prompt(p)
    phone.notification_for(p)
    responses = Subscriber(mosquitto.port, "stresswatch/+/prompt/response")
    try:
        hass.fire("mobile_app_notification_action", action=f"STRESSWATCH_{button}_ann/{p.id}")
        assert responses.next() == ("stresswatch/ann/prompt/response", {"id": p.id, **answer})
        person, response = sink.answers.get(timeout=10)
        assert (person, response["id"], response["action"]) == ("ann", p.id, PromptAction(answer["action"]))
        assert response["minutes"] == answer.get("minutes")
    finally:
        responses.close()


def test_a_tap_answers_only_for_its_own_person(hass, mosquitto, sink, phone):
    p = prompt("Zoë Lee")
    sink.publish_prompt(p)
    note, _ = phone.notification_for(p)
    assert note["data"]["tag"] == "stresswatch_Zoë Lee"
    responses = Subscriber(mosquitto.port, "stresswatch/+/prompt/response")
    try:
        hass.fire("mobile_app_notification_action", action="SOME_OTHER_APP_ACTION")
        hass.fire("mobile_app_notification_action", action=f"STRESSWATCH_DONE_Zoë Lee/{p.id}")
        assert responses.next() == ("stresswatch/Zoë Lee/prompt/response", {"id": p.id, "action": "done"})
        time.sleep(1.0)  # ann's automation saw the same taps: it must have published nothing
        assert responses.messages.empty()
    finally:
        responses.close()


def test_the_morning_reading_button_asks_stresswatch_and_the_sensors_show_progress_and_result(hass, sink):
    requests: queue.Queue = queue.Queue()
    sink.on_measure = lambda person, request: requests.put((person, request))
    try:
        assert wait(lambda: hass.state("button.stresswatch_ann_measure") is not None, timeout=30), (
            hass.log_tail()
        )
        hass.call("button", "press", entity_id="button.stresswatch_ann_measure")
        assert requests.get(timeout=15) == ("ann", {"action": "start", "trigger": "mqtt", "request": None})
    finally:
        sink.on_measure = None
    sink.publish_measurement(
        "ann", {"person": "ann", "status": "measuring", "seconds_left": 42, "trigger": "mqtt"}
    )
    assert wait(
        lambda: (
            hass.value("sensor.stresswatch_ann_morning_status") == "measuring"
            and hass.value("sensor.stresswatch_ann_morning_seconds_left") == "42"
        )
    ), hass.log_tail()
    assert (
        hass.state("sensor.stresswatch_ann_morning_seconds_left")["attributes"]["unit_of_measurement"] == "s"
    )
    sink.publish_measurement(
        "ann",
        {
            "person": "ann",
            "status": "failed",
            "seconds_left": 0,
            "failure": "movement",
            "reason": "You moved.",
            "retry": True,
        },
    )
    assert wait(lambda: hass.value("sensor.stresswatch_ann_morning_status") == "failed")
    assert hass.state("sensor.stresswatch_ann_morning_status")["attributes"]["reason"] == "You moved."
    result = {
        "person": "ann",
        "date": "2026-01-15",
        "valid": True,
        "ln_rmssd": 4.0123,
        "rmssd_ms": 55.3,
        "hr_bpm": 58.4,
        "ln_rmssd_7d": 3.9871,
        "cv_7d": 3.21,
        "normal_low": 3.95,
        "normal_high": 4.05,
    }
    sink.publish_morning("ann", result)
    wanted = {
        "sensor.stresswatch_ann_morning_ln_rmssd": "4.01",
        "sensor.stresswatch_ann_morning_heart_rate": "58",
        "sensor.stresswatch_ann_morning_ln_rmssd_7d": "3.99",
        "sensor.stresswatch_ann_morning_cv_7d": "3.2",
    }
    assert wait(lambda: all(hass.value(e) == v for e, v in wanted.items())), {
        e: hass.value(e) for e in wanted
    }
    assert hass.state("sensor.stresswatch_ann_morning_ln_rmssd")["attributes"]["normal_low"] == 3.95


def test_entities_turn_unavailable_when_stresswatch_goes_offline(hass, mosquitto, sink):
    sink.publish_state(reading("ann"))
    assert wait(lambda: hass.value("sensor.stresswatch_ann_stress_score") == "72")
    publish(mosquitto.port, "stresswatch/status", "offline", retain=True)
    ids = [
        "sensor.stresswatch_ann_stress_score",
        "sensor.stresswatch_ann_battery_h10",
        "event.stresswatch_ann_prompt",
    ]
    assert wait(lambda: all(hass.value(e) == "unavailable" for e in ids)), [hass.state(e) for e in ids]
    publish(mosquitto.port, "stresswatch/status", "online", retain=True)
    assert wait(lambda: hass.value("sensor.stresswatch_ann_stress_score") == "72")


def test_home_assistant_logged_nothing_wrong_with_any_of_the_above(hass):
    """Run last among the Home Assistant tests: a template, discovery or MQTT problem in any of them
    is logged by Home Assistant even where the entity or the answer still looked right."""
    expected = ("Skipping pip installation", "Support for the running Python version")
    problems = [
        ln
        for ln in hass.log.read_text(errors="replace").splitlines()
        if (" WARNING " in ln or " ERROR " in ln or " CRITICAL " in ln) and not any(e in ln for e in expected)
    ]
    assert problems == []


def test_a_prompt_made_while_home_assistant_restarts_reaches_the_phone_once_it_is_back(hass, sink, phone):
    """Home Assistant's MQTT session keeps nothing while it restarts: the prompt reaches the broker
    but no automation. stresswatch sends it again when Home Assistant announces `online`. (After
    the log check above: a restart starts a new log.)"""
    hass.stop()
    p = prompt(expires_in=900.0)
    sink.publish_prompt(p)
    assert wait(lambda: sink.store.prompt(p.id)["status"] == "delivered")  # the broker has taken it
    hass.restart()
    note, _ = phone.notification_for(p, timeout=120)
    assert note["data"]["actions"][0]["action"] == f"STRESSWATCH_DONE_ann/{p.id}"


# -- README "Phone prompts through Home Assistant": the recipe for a phone without it ------------------------


def _readme_block(starts: str) -> str:
    """The README's fenced block whose first line starts with `starts`."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = text.split("```\n")[1::2]
    return next(b for b in blocks if b.startswith(starts))


@pytest.mark.slow
def test_a_plain_mqtt_phone_gets_a_prompt_sent_while_away_and_answers_it(tmp_path):
    acl = _readme_block("user stresswatch")
    broker = servers.mosquitto(tmp_path, users={"stresswatch": "s3cret", "ann": "annpw"}, acl=acl).start()
    answers: queue.Queue = queue.Queue()
    store = StateStore(tmp_path / "state.db")
    sink = MqttSink(
        store,
        MqttSettings(
            host="127.0.0.1",
            port=broker.port,
            client_id="stresswatch",
            username="stresswatch",
            password="s3cret",
        ),
        people=["ann"],
        on_response=lambda person, response: answers.put((person, response)),
    )
    recipe = _readme_block("mosquitto_sub").replace("\\\n", " ").splitlines()
    sub, pub = (
        [servers.need(line.split()[0]), "-p", str(broker.port), *shlex.split(line)[1:]] for line in recipe
    )
    for argv in (sub, pub):
        argv[argv.index("BROKER")], argv[argv.index("PASSWORD")] = "127.0.0.1", "annpw"
    try:
        sink.start()
        assert sink.connected.wait(10)
        # The phone's first connection makes its session; then it goes away.
        away = subprocess.run([*sub, "-W", "1"], check=False, capture_output=True, text=True)
        assert "Connection error" not in away.stderr, away.stderr
        p = prompt()
        sink.publish_prompt(p)
        # The broker has it (acknowledged), queued in the phone's session.
        assert wait(lambda: store.prompt(p.id)["status"] == "delivered", 10)
        back = subprocess.run(
            [*sub, "-C", "1", "-W", "10"], check=False, capture_output=True, text=True, timeout=20
        )
        assert back.stdout, f"the prompt sent while the phone was away did not arrive: {back.stderr}"
        assert json.loads(back.stdout) == json.loads(json.dumps(p.to_dict())), back.stderr
        reply = json.loads(pub[pub.index("-m") + 1])
        pub[pub.index("-m") + 1] = json.dumps({**reply, "id": p.id})
        subprocess.run(pub, check=True, timeout=20)
        person, response = answers.get(timeout=10)
        assert (person, response) == ("ann", {"id": p.id, "action": PromptAction.SNOOZE, "minutes": 30})
    finally:
        sink.stop()
        store.close()
        broker.stop()


@pytest.mark.parametrize(
    "state,attributes,kind",
    [
        ("walking", {"confidence": 88}, MotionKind.WALKING),  # Android
        ("Stationary", {"Confidence": "High"}, MotionKind.STILL),  # iOS
        ("in_vehicle", {"confidence": 30}, MotionKind.UNKNOWN),  # too unsure to say anything
    ],
)
def test_the_phone_s_activity_sensor_reaches_stresswatch_through_the_blueprint(
    hass, sink, state, attributes, kind
):
    """deploy/homeassistant/stresswatch_activity.yaml: the companion app's activity sensor, set
    through Home Assistant's REST API as the app sets it, arrives on stresswatch/ann/activity as
    what collector/phone_activity.py reads."""
    hass.request("POST", f"/api/states/{ACTIVITY_SENSOR}", {"state": state, "attributes": attributes})
    deadline = time.monotonic() + 30
    while True:  # the blueprint also repeats the state once a minute: take the one for this state
        try:
            person, payload = sink.activity.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError(f"no activity message; Home Assistant log:\n{hass.log_tail()}") from None
        if json.loads(payload)["activity"] == state:
            break
    assert person == "ann"
    motion = motion_from_phone(person, payload, time.time())
    assert motion.kind == kind
