"""Home Assistant MQTT discovery: one device per wearer with sensors and a prompt `event` entity.

Follows the MQTT discovery documentation of Home Assistant (home-assistant.io/integrations/
mqtt/#mqtt-discovery, sensor.mqtt, event.mqtt): config topics
`<prefix>/<component>/<node_id>/<object_id>/config`, retained; `unique_id` per entity, a shared
`device` block, availability tied to our retained `<base>/status` (last will `offline`).
A value that is null in the Reading renders as `None`, which an MQTT sensor takes as "unknown"
(any other text, e.g. `unknown`, is an invalid number and logs an error in Home Assistant);
the reading sensors have `expire_after`, so a strap taken off shows "unavailable" rather than
its last value.
Pure: builds (topic, payload) pairs; the MQTT adapter publishes them.
"""

from __future__ import annotations

from alerts.prompt import PromptKind
from processing.reading import StressState
from sinks.version import VERSION

STATES = [s.value for s in StressState]
PROMPT_KINDS = [k.value for k in PromptKind]
# Ours: readings come every `step_s` (10 s by default); two minutes without one means the
# strap is off or the service stopped, while a few lost messages do not blank the sensors.
EXPIRE_AFTER_S = 120
# The device status is republished every 30 s (stresswatch/device_health.py): three periods
# without one means the service is gone, so the strap's health sensors go unavailable.
DEVICE_EXPIRE_AFTER_S = 90


def _number(field: str, digits: int) -> str:
    """A value template that rounds `field`, or renders `None` (unknown) when it is null or absent
    (a device status sent before any beat has no health fields)."""
    return (
        f"{{{{ value_json.{field} | round({digits}) if value_json.{field} is defined "
        f"and value_json.{field} is not none else None }}}}"
    )


def _device(person: str) -> dict:
    return {
        "identifiers": [f"stresswatch_{_slug(person)}"],
        "name": f"stresswatch {person}",
        "manufacturer": "stresswatch",
        "model": "HRV stress monitor",
        "sw_version": VERSION,
    }


def discovery_messages(
    person: str, base: str = "stresswatch", prefix: str = "homeassistant", devices: list[str] = ()
) -> list[tuple[str, dict]]:
    """The discovery configs for `person` (and the battery of each of their `devices`)."""
    node = f"stresswatch_{_slug(person)}"  # Home Assistant allows [A-Za-z0-9_-] in node ids
    state_topic = f"{base}/{person}/state"
    common = {
        "availability_topic": f"{base}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": _device(person),
        "origin": {"name": "stresswatch", "sw_version": VERSION},
    }

    def sensor(key: str, name: str, template: str, **extra) -> tuple[str, dict]:
        payload = {
            "name": name,
            "unique_id": f"{node}_{key}",
            "object_id": f"{node}_{key}",
            "state_topic": extra.pop("state_topic", state_topic),
            "value_template": template,
            **extra,
            **common,
        }
        return f"{prefix}/sensor/{node}/{key}/config", payload

    out = [
        sensor(
            "heart_rate",
            "Heart rate",
            _number("hr_bpm", 0),
            unit_of_measurement="bpm",
            state_class="measurement",
            icon="mdi:heart-pulse",
            expire_after=EXPIRE_AFTER_S,
        ),
        sensor(
            "rmssd",
            "RMSSD",
            _number("rmssd_ms", 1),
            unit_of_measurement="ms",
            device_class="duration",
            state_class="measurement",
            icon="mdi:pulse",
            expire_after=EXPIRE_AFTER_S,
        ),
        sensor(
            "stress_score",
            "Stress score",
            _number("stress_score", 0),
            state_class="measurement",
            icon="mdi:gauge",
            expire_after=EXPIRE_AFTER_S,
        ),
        sensor(
            "stress_state",
            "Stress state",
            "{{ value_json.state }}",
            device_class="enum",
            options=STATES,
            icon="mdi:head-heart",
            expire_after=EXPIRE_AFTER_S,
        ),
    ]
    for dev in devices:
        topic, payload = sensor(
            f"battery_{_slug(dev)}",
            f"Battery {dev}",
            "{{ value_json.battery_pct }}",
            state_topic=f"{base}/{person}/device/{dev}",
            unit_of_measurement="%",
            device_class="battery",
            state_class="measurement",
            entity_category="diagnostic",
        )
        out.append((topic, payload))
        out += _strap_health(node, dev, f"{base}/{person}/device/{dev}", common, prefix)
    out += _morning(node, base, person, common, prefix, sensor)
    out.append(
        (
            f"{prefix}/event/{node}/prompt/config",
            {
                "name": "Breathing prompt",
                "unique_id": f"{node}_prompt",
                "object_id": f"{node}_prompt",
                "state_topic": f"{base}/{person}/prompt",
                "event_types": PROMPT_KINDS,
                # The event entity needs JSON with `event_type`; the Prompt calls it `kind`.
                "value_template": '{ "event_type": "{{ value_json.kind }}", "reason": {{ value_json.reason | tojson }} }',
                "icon": "mdi:meditation",
                **common,
            },
        )
    )
    return out


MEASUREMENT_STATES = ["idle", "waiting", "stabilising", "measuring", "done", "failed", "stopped", "refused"]


def _morning(node: str, base: str, person: str, common: dict, prefix: str, sensor) -> list[tuple[str, dict]]:
    """The morning reading: a button that starts one (`<base>/<person>/measure`), where it stands
    (`<base>/<person>/measurement`: status, seconds left, and why it failed as attributes), and the
    last valid reading with its trend (`<base>/<person>/morning`; no expiry: one a day)."""
    progress, result = f"{base}/{person}/measurement", f"{base}/{person}/morning"
    button = (
        f"{prefix}/button/{node}/measure/config",
        {
            "name": "Start morning reading",
            "unique_id": f"{node}_measure",
            "object_id": f"{node}_measure",
            "command_topic": f"{base}/{person}/measure",
            "payload_press": "start",
            "qos": 1,
            "retain": False,
            "icon": "mdi:heart-cog",
            **common,
        },
    )
    return [
        button,
        sensor(
            "morning_status",
            "Morning reading",
            "{{ value_json.status }}",
            state_topic=progress,
            device_class="enum",
            options=MEASUREMENT_STATES,
            json_attributes_topic=progress,
            icon="mdi:timer-outline",
        ),
        sensor(
            "morning_seconds_left",
            "Morning reading seconds left",
            _number("seconds_left", 0),
            state_topic=progress,
            unit_of_measurement="s",
            device_class="duration",
            state_class="measurement",
            icon="mdi:timer-sand",
        ),
        sensor(
            "morning_ln_rmssd",
            "Morning lnRMSSD",
            _number("ln_rmssd", 2),
            state_topic=result,
            state_class="measurement",
            json_attributes_topic=result,
            icon="mdi:heart-pulse",
        ),
        sensor(
            "morning_heart_rate",
            "Morning heart rate",
            _number("hr_bpm", 0),
            state_topic=result,
            unit_of_measurement="bpm",
            state_class="measurement",
            icon="mdi:heart",
        ),
        sensor(
            "morning_ln_rmssd_7d",
            "Morning lnRMSSD 7-day mean",
            _number("ln_rmssd_7d", 2),
            state_topic=result,
            state_class="measurement",
            icon="mdi:chart-bell-curve",
        ),
        sensor(
            "morning_cv_7d",
            "Morning lnRMSSD 7-day CV",
            _number("cv_7d", 1),
            state_topic=result,
            unit_of_measurement="%",
            state_class="measurement",
            icon="mdi:chart-line-variant",
        ),
    ]


def _strap_health(node: str, dev: str, topic: str, common: dict, prefix: str) -> list[tuple[str, dict]]:
    """Diagnostic sensors of one strap: seconds since its last beat and beats in the last minute.
    Available only while the service is online and the strap connected (`availability_mode: all`);
    `expire_after` blanks them when the status stops coming, so a strap taken off or a stopped
    service never leaves a frozen value."""
    shared = {k: v for k, v in common.items() if not k.startswith(("availability", "payload_"))}
    availability = [
        {
            "topic": common["availability_topic"],
            "payload_available": "online",
            "payload_not_available": "offline",
        },
        {
            "topic": topic,
            "value_template": "{{ 'online' if value_json.connected else 'offline' }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        },
    ]
    out = []
    for key, name, template, extra in (
        (
            "last_beat",
            "Last beat",
            _number("last_beat_age_s", 0),
            {"unit_of_measurement": "s", "device_class": "duration", "icon": "mdi:timer-sand"},
        ),
        (
            "beats_per_min",
            "Beats per minute",
            _number("beats_last_min", 0),
            {"unit_of_measurement": "beats/min", "icon": "mdi:heart-flash"},
        ),
    ):
        uid = f"{node}_{key}_{_slug(dev)}"
        out.append(
            (
                f"{prefix}/sensor/{node}/{key}_{_slug(dev)}/config",
                {
                    "name": f"{name} {dev}",
                    "unique_id": uid,
                    "object_id": uid,
                    "state_topic": topic,
                    "value_template": template,
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                    "expire_after": DEVICE_EXPIRE_AFTER_S,
                    "availability": availability,
                    "availability_mode": "all",
                    **extra,
                    **shared,
                },
            )
        )
    return out


def _slug(s: str) -> str:
    """`s` as Home Assistant accepts in node and object ids: ASCII letters and digits, `_` for the rest."""
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in s.lower())
