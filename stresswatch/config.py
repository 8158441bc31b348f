"""The one typed configuration model: a TOML file plus STRESSWATCH_* environment overrides.

Sections: [service], [processing], [[people]], [state], [bluetooth], [[devices]], [morning],
[mqtt], [influx], [kafka], [alerts].
The schema is declarative: each section is a dataclass whose fields are `setting(default, ...)`
(kind, bounds or choices, doc) and whose `check(key)` holds its rules across keys; [alerts] has
the keys of alerts/settings.py `AlertSettings` (their defaults and reasons live there, the
engine checks its own rules). One converter (`_table`) turns TOML values and environment strings
into every key.
Every problem is reported with the dotted key that has it (`processing.window_s: must be >= 30,
got -5`); all problems are collected, not just the first. Environment overrides use a double
underscore between levels: `STRESSWATCH_PROCESSING__STEP_S=5`; a problem with an overridden
value names the variable. URL credentials and secrets never appear in a problem.
Warnings (collected when `load` is given a list for them) are what is legal but probably not
meant: a `STRESSWATCH_` variable that names no setting (it is ignored), a device worn by someone
without a [[people]] table next to those who have one (they get the default settings).

Each section turns itself into the settings object of the stage it configures
(`ProcessingConfig.settings()`, `PersonConfig.model()`, `MqttConfig.settings()`, ...), so the
stages never import this module.

No schema library (ours, measured by benchmarks/config_startup.py): pydantic v2 would add ~10 MB
RSS and 0.2-0.4 s to every start, and its rules across keys do not run once a key is wrong, so
it could not report every problem in one go.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field, fields
from datetime import tzinfo
from pathlib import Path
from urllib.parse import urlsplit

from alerts.settings import AlertSettings
from alerts.timeofday import UTC, parse_hhmm, zone
from processing.baseline import Baseline
from processing.morning import Protocol as MorningProtocol
from processing.pipeline import Settings as PipelineSettings
from processing.stress import RR_GATE, StressModel
from sinks.redact import redact_url

if typing.TYPE_CHECKING:
    from sinks.fanout import SinkSettings
    from sinks.influx import InfluxSettings
    from sinks.mqtt import MqttSettings


class ConfigError(ValueError):
    """The configuration has problems; `problems` lists them, each naming its key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


# -- the schema: what a key may be --------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What one key accepts: `kind` bool, int, float, str, dict (a table) or tuple (a list of
    `item`s; a string is split at commas, as environment variables give lists)."""

    kind: type
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False  # None when unset ("", "none" or "null" in the environment)
    required: bool = False  # a table of its section must set it (`doc` says what it is)
    item: Rule | None = None
    doc: str = ""


def setting(default: typing.Any, kind: type | None = None, *, min: float | None = None, max: float | None = None,
            choices: tuple[str, ...] = (), required: bool = False, doc: str = "") -> typing.Any:
    """A key of a section: its default, its kind (that of the default unless given), bounds or
    choices, and what it is for."""
    rule = Rule(kind or type(default), min, max, choices, default is None, required, doc=doc)
    return field(default=default, metadata={"rule": rule})


def section(cls: type, many: bool = False) -> typing.Any:
    """A section of Config: a [table] of `cls`'s keys, or with `many` a list of [[tables]]."""
    return field(default_factory=list if many else cls, metadata={"section": cls, "many": many})


def alert_rules() -> dict[str, Rule]:
    """[alerts]: every field of AlertSettings but `timezone` ([service] sets it), of its default's
    kind; numbers >= 0 (the engine checks its other bounds and its rules across keys)."""
    rules = {}
    for f in fields(AlertSettings):
        if f.name != "timezone":
            kind = type(f.default)
            if kind is tuple:  # `extra_exercises` (default empty) is a list of exercise tables
                item = Rule(type(f.default[0]), min=0) if f.default else Rule(dict)
                rules[f.name] = Rule(tuple, item=item)
            else:
                rules[f.name] = Rule(kind, min=0 if kind in (int, float) else None)
    return rules


# -- the sections ---------------------------------------------------------------------------------


@dataclass
class ServiceConfig:
    timezone: str | None = setting(None, str, doc="IANA zone of quiet hours, days and the day/night baseline; "
                                                  "unset = the machine's")

    def zone_name(self) -> str:
        """`timezone`, else the machine's zone (TZ, /etc/timezone, the /etc/localtime link), else UTC."""
        return self.timezone or machine_zone()

    def check(self, key: str, problems: list[str]) -> None:
        try:
            zone(self.zone_name(), f"{key}.timezone")
        except ValueError as exc:
            problems.append(str(exc))


def machine_zone() -> str:
    """The IANA name of this machine's local zone, as libc finds it; "UTC" when it has none."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    link = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in link:
        candidates.append(link.split("/zoneinfo/", 1)[1])
    for name in candidates:
        try:
            if name:
                zone(name)
                return name
        except ValueError:  # a POSIX TZ rule such as "CET-1CEST" is no zone name: try the next
            continue
    return "UTC"


@dataclass
class ProcessingConfig:
    window_s: float = setting(300.0, min=30, doc="window of SDNN, SD1/SD2, SI, LF/HF")
    rmssd_window_s: float = setting(60.0, min=10, doc="window of RMSSD and HR")
    step_s: float = setting(10.0, min=0, doc="seconds between readings (0 = every beat)")
    artifact_correction: bool = setting(True, doc="Kubios-method correction")
    # The RR-only gate (processing/stress.py RR_GATE): without motion, a heart-rate rise is too
    # active to judge. Off (ours) only where wearers are seated whenever measured: a lab or desk
    # study, where the gate would hide the stress it is run to see.
    rr_gate: bool = setting(True, doc="without motion, HR rises are not judged")

    def settings(self) -> PipelineSettings:
        """The pipeline's settings; LF/HF is recomputed at most every 10 s (its cost)."""
        return PipelineSettings(self.window_s, self.rmssd_window_s, self.step_s, max(self.step_s, 10.0),
                                self.artifact_correction)

    def check(self, key: str, problems: list[str]) -> None:
        if self.rmssd_window_s > self.window_s:
            problems.append(f"{key}.rmssd_window_s: must be <= {key}.window_s ({self.window_s:g} s), got "
                            f"{self.rmssd_window_s:g}: RMSSD and HR come from the end of the long window")
        if self.step_s > self.window_s:
            problems.append(f"{key}.step_s: must be <= {key}.window_s ({self.window_s:g} s), got {self.step_s:g}: "
                            f"beats between two windows would never be analysed")


@dataclass
class PersonConfig:
    # Required in a [[people]] table (a second table without a name would be a wearer nobody
    # meant); "me" is the one wearer when there are neither tables nor devices.
    name: str = setting("me", required=True, doc="the wearer's name, used in MQTT topics and InfluxDB tags")
    age: float = setting(40.0, min=5, max=120, doc="years, for HRmax")
    max_hr_bpm: float | None = setting(None, float, min=100, max=240)
    resting_hr_bpm: float | None = setting(None, float, min=30, max=120)
    # The morning reading (processing/morning.py): one posture per person, and the local window in
    # which a strap that starts sending begins a reading on its own.
    morning_posture: str = setting("seated", choices=("seated", "lying"),
                                   doc="posture of every morning reading (the two do not compare)")
    morning_auto: bool = setting(True, doc="a strap put on in the window starts a reading")
    morning_from: str = setting("05:00", doc="local HH:MM")
    morning_until: str = setting("11:00", doc="local HH:MM")

    def model(self, tz: tzinfo = UTC, baseline: Baseline | None = None, rr_gate: bool = True) -> StressModel:
        """This person's stress model in zone `tz` (local time of the day/night baseline): a fresh
        baseline, or one restored from the state store; `rr_gate` from [processing] rr_gate."""
        return StressModel(age=self.age, max_hr=self.max_hr_bpm, resting_hr=self.resting_hr_bpm,
                           baseline=baseline, tz=tz, rr_gate=RR_GATE if rr_gate else None)

    def check(self, key: str, problems: list[str]) -> None:
        _check_topic(f"{key}.name", self.name, False, problems)
        for name in ("morning_from", "morning_until"):
            try:
                parse_hhmm(getattr(self, name), f"{key}.{name}")
            except ValueError as exc:
                problems.append(str(exc))


@dataclass
class MorningConfig:
    """The morning reading's protocol (processing/morning.py has the source of each default)."""

    stabilise_s: float = setting(60.0, min=0, max=600, doc="discarded first")
    measure_s: float = setting(60.0, min=30, max=600, doc="the measured window")
    wait_s: float = setting(120.0, min=10, max=3600, doc="for the first beat")
    max_artifact_pct: float = setting(5.0, min=0, max=50)
    max_hr_change_bpm: float = setting(25.0, min=5, max=100)

    def protocol(self, posture: str = "seated") -> MorningProtocol:
        return MorningProtocol(posture=posture, stabilise_s=self.stabilise_s, measure_s=self.measure_s,
                               wait_s=self.wait_s, max_artifact_pct=self.max_artifact_pct,
                               max_hr_change_bpm=self.max_hr_change_bpm)


@dataclass
class StateConfig:
    directory: str = setting("~/.local/share/stresswatch", doc="SQLite state")


@dataclass
class BluetoothConfig:
    adapter: str | None = setting(None, str, doc="e.g. hci1; unset = BlueZ default")
    watchdog_s: float = setting(5.0, min=2, max=120, doc="no data this long = reconnect")
    battery_every_s: float = setting(300.0, min=10)


@dataclass
class DeviceConfig:
    person: str = setting("me", doc="who wears it ([[people]] name)")
    address: str | None = setting(None, str, doc="AA:BB:CC:DD:EE:FF")
    name: str | None = setting(None, str, doc="name pattern, e.g. 'Polar H10*'")
    role: str = setting("strap", choices=("strap", "motion"),
                        doc="strap: heart rate, and its motion sources; motion: motion only (a foot pod)")

    def has_address(self) -> bool:
        return bool(self.address and re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", self.address))

    def check(self, key: str, problems: list[str]) -> None:
        if not self.address and not self.name:
            problems.append(f"{key}: give an address or a name pattern")
        if self.address and not self.has_address():
            problems.append(f"{key}.address: must look like AA:BB:CC:DD:EE:FF, got {self.address!r}")
        if self.name and not self.address:  # without an address the name is the device's label in topics
            _check_topic(f"{key}.name", self.name, False, problems)
        _check_topic(f"{key}.person", self.person, False, problems)


@dataclass
class MqttConfig:
    url: str | None = setting(None, str, doc="mqtt://host:1883 or mqtts://host:8883; unset = off")
    username: str | None = setting(None, str)
    password: str | None = setting(None, str, doc="or password_file")
    password_file: str | None = setting(None, str)
    base_topic: str = setting("stresswatch")
    client_id: str = setting("stresswatch")
    ca_file: str | None = setting(None, str, doc="CA bundle for mqtts://")
    certfile: str | None = setting(None, str, doc="client certificate (optional)")
    keyfile: str | None = setting(None, str)
    verify_hostname: bool = setting(True)
    keepalive_s: int = setting(30, min=5, max=3600)
    session_expiry_s: int = setting(3600, min=0, max=604800)
    discovery: bool = setting(True, doc="Home Assistant MQTT discovery")
    discovery_prefix: str = setting("homeassistant")
    outbox_max_messages: int = setting(100000, min=100, doc="undelivered messages kept")

    def settings(self) -> MqttSettings | None:
        """The MQTT sink's settings (secrets read from their files), None when MQTT is off."""
        if self.url is None:
            return None
        from sinks.mqtt import MqttSettings  # here: paho is not needed to analyse a file

        u = urlsplit(self.url)
        tls = u.scheme == "mqtts"
        return MqttSettings(
            host=u.hostname or "127.0.0.1",
            port=u.port or (8883 if tls else 1883),
            base_topic=self.base_topic,
            client_id=self.client_id,
            username=self.username or u.username or "",
            password=read_secret(self.password, self.password_file, "mqtt.password_file"),
            tls=tls,
            ca_file=self.ca_file or "",
            certfile=self.certfile or "",
            keyfile=self.keyfile or "",
            verify_hostname=self.verify_hostname,
            keepalive_s=self.keepalive_s,
            session_expiry_s=self.session_expiry_s,
            discovery=self.discovery,
            discovery_prefix=self.discovery_prefix,
        )

    def check(self, key: str, problems: list[str]) -> None:
        if self.url is not None:
            u = _check_url(f"{key}.url", self.url, ("mqtt", "mqtts"), "mqtt://host:1883 or mqtts://host:8883",
                           problems)
            if u is not None and u.password:
                problems.append(f"{key}.url: put the password in {key}.password or {key}.password_file, not in the URL")
        _check_topic(f"{key}.base_topic", self.base_topic, True, problems)
        _check_topic(f"{key}.discovery_prefix", self.discovery_prefix, True, problems)
        _check_secret(self, key, "password", problems)
        _check_client_files(self, key, problems)


@dataclass
class InfluxConfig:
    url: str | None = setting(None, str, doc="http://host:8086; unset = off")
    api: str = setting("v2", choices=("v2", "v1"))
    org: str = setting("-")
    bucket: str = setting("stresswatch", doc="v1: the database")
    token: str | None = setting(None, str, doc="or token_file; 1.8+: user:password")
    token_file: str | None = setting(None, str)
    username: str | None = setting(None, str, doc="v1 only")
    password: str | None = setting(None, str, doc="v1 only")
    batch_size: int = setting(5000, min=1, max=100000)
    flush_interval_s: float = setting(5.0, min=0.1, max=3600)
    write_beats: bool = setting(True, doc="store every beat, not only readings")
    outbox_max_points: int = setting(2000000, min=1000)

    def settings(self) -> InfluxSettings | None:
        """The InfluxDB sink's settings (token read from its file), None when InfluxDB is off."""
        if self.url is None:
            return None
        from sinks.influx import InfluxSettings  # here: as MqttSettings

        return InfluxSettings(
            url=self.url, bucket=self.bucket, org=self.org, token=read_secret(self.token, self.token_file, "influx.token_file"),
            api=self.api, username=self.username or "", password=self.password or "",
            batch_size=self.batch_size, flush_interval_s=self.flush_interval_s, write_beats=self.write_beats,
            outbox_max_points=self.outbox_max_points,
        )

    def check(self, key: str, problems: list[str]) -> None:
        if self.url is not None:
            _check_url(f"{key}.url", self.url, ("http", "https"), "http://host:8086", problems)
        _check_secret(self, key, "token", problems)


@dataclass
class KafkaConfig:
    """More than one machine (opt-in): `stresswatch collect` and `stresswatch worker` through Apache Kafka."""

    bootstrap_servers: str | None = setting(None, str, doc="host:9092,host2:9092; unset = one machine, no Kafka")
    security_protocol: str = setting("plaintext", choices=("plaintext", "ssl", "sasl_plaintext", "sasl_ssl"))
    ca_file: str | None = setting(None, str, doc="CA bundle for ssl / sasl_ssl")
    certfile: str | None = setting(None, str, doc="client certificate (optional)")
    keyfile: str | None = setting(None, str)
    sasl_mechanism: str = setting("SCRAM-SHA-512", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    username: str | None = setting(None, str, doc="SASL")
    password: str | None = setting(None, str, doc="or password_file")
    password_file: str | None = setting(None, str)
    beats_topic: str = setting("beats", doc="collectors -> workers, key = person")
    devices_topic: str = setting("devices", doc="collectors' device status, key = person")
    readings_topic: str = setting("readings")
    prompts_topic: str = setting("prompts", doc="prompt intents, with their ids")
    daily_topic: str = setting("daily")
    # People map to partitions by their key's hash: a later change moves people between
    # partitions (and their state with them), so the count is chosen generously up front.
    partitions: int = setting(48, min=1, max=10000, doc="of every topic; fixed for good")
    replication: int = setting(3, min=1, max=7, doc="copies of every message")
    worker_group: str = setting("stresswatch-workers", doc="consumer group of the workers")
    batch_s: float = setting(3.0, min=2, max=5, doc="a message per person this often")

    def topics(self) -> dict[str, str]:
        return {"beats": self.beats_topic, "devices": self.devices_topic, "readings": self.readings_topic,
                "prompts": self.prompts_topic, "daily": self.daily_topic}

    def client_config(self) -> dict[str, str] | None:
        """librdkafka's settings for any client (secrets read from their files); None when off."""
        if self.bootstrap_servers is None:
            return None
        conf = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.security_protocol in ("ssl", "sasl_ssl"):
            for key, name in (("ca_file", "ssl.ca.location"), ("certfile", "ssl.certificate.location"),
                              ("keyfile", "ssl.key.location")):
                if getattr(self, key):
                    conf[name] = str(Path(getattr(self, key)).expanduser())
        if self.security_protocol.startswith("sasl"):
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.username or ""
            conf["sasl.password"] = read_secret(self.password, self.password_file, "kafka.password_file")
        return conf

    def check(self, key: str, problems: list[str]) -> None:
        """Servers as host:port, TLS files, SASL credentials, topic names."""
        servers = self.bootstrap_servers.split(",") if self.bootstrap_servers is not None else []
        for server in (s.strip() for s in servers):
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                problems.append(f"{key}.bootstrap_servers: each server must look like host:9092, got {server!r}")
        _check_client_files(self, key, problems)
        _check_secret(self, key, "password", problems)
        if self.security_protocol.startswith("sasl") and not (self.username and (self.password or self.password_file)):
            problems.append(f"{key}.username: security_protocol {self.security_protocol!r} needs {key}.username "
                            f"and {key}.password (or {key}.password_file)")
        topics = self.topics()
        for name, topic in topics.items():
            # Kafka's own rule for topic names (kafka.common.internals.Topic): at most 249 of these characters.
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic) or topic in (".", ".."):
                problems.append(f"{key}.{name}_topic: a topic name is 1-249 letters, digits, '.', '_' or '-', "
                                f"got {topic!r}")
        for dup in sorted({t for t in topics.values() if list(topics.values()).count(t) > 1}):
            problems.append(f"{key}: topic {dup!r} is used for more than one stream; give each its own")


@dataclass
class Config:
    service: ServiceConfig = section(ServiceConfig)
    processing: ProcessingConfig = section(ProcessingConfig)
    people: list[PersonConfig] = section(PersonConfig, many=True)
    state: StateConfig = section(StateConfig)
    mqtt: MqttConfig = section(MqttConfig)
    influx: InfluxConfig = section(InfluxConfig)
    kafka: KafkaConfig = section(KafkaConfig)
    bluetooth: BluetoothConfig = section(BluetoothConfig)
    devices: list[DeviceConfig] = section(DeviceConfig, many=True)
    morning: MorningConfig = section(MorningConfig)
    # The alert engine's settings as set in [alerts], converted (`alert_rules`); unset keys keep
    # AlertSettings' documented defaults.
    alerts: dict = section(dict)

    def alert_settings(self) -> AlertSettings:
        """The [alerts] table as the engine's settings, in the zone of [service]; ValueError naming
        the key when it is wrong."""
        return AlertSettings(timezone=self.service.zone_name(), **self.alerts)

    def __post_init__(self) -> None:
        # The wearers are the [[people]] entries plus each device's wearer (default settings);
        # with neither, one default person `me` (demo, analyze). A default `me` next to the
        # devices' wearers would be a pipeline and a Home Assistant device nobody wears.
        known = {p.name for p in self.people}
        for d in self.devices:
            if d.person not in known:
                self.people.append(PersonConfig(name=d.person))
                known.add(d.person)
        if not self.people:
            self.people.append(PersonConfig())

    def person(self, name: str) -> PersonConfig:
        return next((p for p in self.people if p.name == name), PersonConfig(name=name))

    @property
    def state_path(self) -> Path:
        """The state database, `<state.directory>/state.db`."""
        return Path(self.state.directory).expanduser() / "state.db"

    def sink_settings(self) -> SinkSettings:
        """What the sinks need: their sections, the wearers, each wearer's device labels."""
        from sinks.fanout import SinkSettings  # here: as MqttSettings

        devices: dict[str, list[str]] = {}
        for d in self.devices:
            devices.setdefault(d.person, []).append(d.address or d.name or "strap")
        return SinkSettings(
            state_path=self.state_path,
            mqtt=self.mqtt.settings(), influx=self.influx.settings(),
            people=tuple(p.name for p in self.people), devices=devices,
            mqtt_outbox_max_messages=self.mqtt.outbox_max_messages,
        )

    def check(self, listed: int, problems: list[str], warnings: list[str]) -> None:
        """Every section's rules, who wears what, and the alert engine's own rules; the first
        `listed` people have a [[people]] table (the wearers the devices add come after them)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["many"]:
                for k, item in enumerate(value[:listed] if f.name == "people" else value):
                    item.check(f"{f.name}[{k}]", problems)
            elif hasattr(value, "check"):
                value.check(f.name, problems)
        self._check_wearers(listed, problems, warnings)
        timezone = self.service.zone_name()
        try:
            zone(timezone)
        except ValueError:  # [service] reports it
            timezone = "UTC"
        try:
            AlertSettings(timezone=timezone, **self.alerts)
        except (ValueError, TypeError) as exc:  # the engine's messages start with the key
            problems.append(f"alerts.{exc}")

    def _check_wearers(self, listed: int, problems: list[str], warnings: list[str]) -> None:
        """One name per wearer (in one spelling), one strap per wearer, one wearer per strap."""
        names = [p.name for p in self.people]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"people: name {dup!r} is used more than once")
        explicit = names[:listed]
        # Wearers whose names differ only in letter case would be one Home Assistant device (its ids
        # are lower case) and two of everything else: one spelling each. casefold -> (key, name).
        spelt: dict[str, tuple[str, str]] = {}

        def one_spelling(key: str, name: str) -> None:
            first_key, first = spelt.setdefault(name.casefold(), (key, name))
            if first != name:
                problems.append(f"{key}: {name!r} differs from {first_key} {first!r} only in letter case; "
                                f"use one spelling")

        for k, name in enumerate(explicit):
            one_spelling(f"people[{k}].name", name)
        worn: dict[str, int] = {}
        addresses: dict[str, int] = {}
        for k, d in enumerate(self.devices):
            if d.has_address():
                first = addresses.setdefault(d.address.upper(), k)  # Bluetooth addresses ignore letter case
                if first != k:
                    problems.append(f"devices[{k}].address: {d.address!r} is devices[{first}]'s strap (worn by "
                                    f"{self.devices[first].person!r}; addresses are compared regardless of "
                                    f"letter case): one strap, one wearer")
            if d.person not in explicit and _check_wearer(k, d.person, explicit, problems, warnings):
                one_spelling(f"devices[{k}].person", d.person)
            if d.role != "strap":
                continue  # a motion source: any number per person
            if d.person in worn:
                problems.append(
                    f"devices[{k}].person: {d.person!r} already wears devices[{worn[d.person]}]; one strap per "
                    f"person (two straps would merge into one beat series and halve RMSSD). For a second "
                    f"wearer add a [[people]] entry and set this device's person to its name")
            worn.setdefault(d.person, k)


def _check_wearer(k: int, person: str, people: list[str], problems: list[str], warnings: list[str]) -> bool:
    """devices[k] names a wearer who has no [[people]] table; `people` are those who have one.
    True when `person` is a wearer of their own.

    A name that matches one of `people` but for letter case is a mistake (refused: it would be a
    second wearer with default settings, and one Home Assistant device for both). Any other name
    is a wearer of their own with the default settings, as always without [[people]] tables; next
    to [[people]] tables a warning says so (and names a close one, in case it is a typo)."""
    same = next((p for p in people if p.casefold() == person.casefold()), None)
    if same is not None:
        problems.append(f"devices[{k}].person: {person!r} is not a [[people]] name (did you mean {same!r}?)")
        return False
    if not people:
        return True
    close = difflib.get_close_matches(person, people, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    warnings.append(f"devices[{k}].person: {person!r} has no [[people]] table{hint}; {person!r} is a wearer with "
                    f"the default settings (age {PersonConfig.age:g})")
    return True


# -- rules shared by sections ---------------------------------------------------------------------

_TOPIC_RESERVED = {"+": "'+' (an MQTT wildcard)", "#": "'#' (an MQTT wildcard)", "\0": "a NUL character"}


def _check_topic(key: str, value: str, levels: bool, problems: list[str]) -> None:
    """`value` is used in MQTT topics: no wildcards, no NUL, and (unless `levels`) no `/`."""
    why = [text for c, text in _TOPIC_RESERVED.items() if c in value]
    if not levels and "/" in value:
        why.append("'/' (it would add a topic level)")
    if levels and "" in value.split("/"):
        why.append("an empty topic level (a leading, trailing or double '/')")
    if levels and value.startswith("$"):
        why.append("a leading '$' (reserved for the broker's own topics)")
    if why:
        problems.append(f"{key}: cannot be used in MQTT topics: it contains {' and '.join(why)}, got {value!r}")


def _check_client_files(section: typing.Any, key: str, problems: list[str]) -> None:
    """TLS files that exist, and a client certificate with its key."""
    for name in ("ca_file", "certfile", "keyfile"):
        path = getattr(section, name)
        if path and not Path(path).expanduser().exists():
            problems.append(f"{key}.{name}: file {path!r} does not exist")
    if bool(section.certfile) != bool(section.keyfile):
        problems.append(f"{key}.keyfile: a client certificate needs both {key}.certfile and {key}.keyfile")


def _check_secret(section: typing.Any, key: str, inline: str, problems: list[str]) -> None:
    """A secret given inline (`inline`) or in a readable file (`inline`_file), not both."""
    file = f"{inline}_file"
    path = getattr(section, file)
    if getattr(section, inline) and path:
        problems.append(f"{key}.{file}: set either {key}.{inline} or {key}.{file}, not both")
    if path and not Path(path).expanduser().exists():
        problems.append(f"{key}.{file}: file {path!r} does not exist")
    elif path:
        _secret(path, f"{key}.{file}", problems)


def _check_url(key: str, url: str, schemes: tuple[str, ...], example: str, problems: list[str]):
    """The split URL when it has a scheme of `schemes`, a host and a valid port; else None."""
    shown = redact_url(url)  # never echo credentials
    try:
        u = urlsplit(url)
    except ValueError:
        problems.append(f"{key}: not a valid URL, got {shown!r}")
        return None
    if u.scheme not in schemes or not u.hostname:
        problems.append(f"{key}: must look like {example}, got {shown!r}")
        return None
    try:
        port = u.port  # raises for a non-numeric or out-of-range port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"{key}: the port must be a number from 1 to 65535, got {shown!r}")
        return None
    return u


def _secret(path: str, key: str, problems: list[str] | None = None) -> str:
    """The text of a secret file, surrounding whitespace stripped; a problem names `key` and the file
    (never the content). Appends to `problems` when given, else raises ConfigError."""
    try:
        return Path(path).expanduser().read_bytes().decode("utf-8").strip()
    except OSError as exc:
        problem = f"{key}: cannot read {path!r}: {exc.strerror or exc}"
    except UnicodeDecodeError:
        problem = f"{key}: {path!r} is not UTF-8 text"
    if problems is None:  # read after load (the file changed since): still one line naming the key
        raise ConfigError("configuration", [problem])
    problems.append(problem)
    return ""


def read_secret(value: str | None, path: str | None, key: str = "secret file") -> str:
    """A secret given inline or in a file (the file's text, surrounding whitespace stripped).

    Raises ConfigError naming `key` and the file when the file cannot be read as UTF-8 text."""
    if path:
        return _secret(path, key)
    return value or ""


# -- loading: the file, the environment, the one converter ---------------------------------------

ENV_PREFIX = "STRESSWATCH_"
# Variables with our prefix that are not settings (no warning for them): the reference recordings
# of the tests and benchmarks, CI's no-skip switch, the Docker image's build argument.
ENV_NOT_SETTINGS = frozenset({"STRESSWATCH_REFERENCE_DATA", "STRESSWATCH_FORBID_SKIPS", "STRESSWATCH_UID"})


def load(path: str | Path | None = None, environ: typing.Mapping[str, str] | None = None,
         warnings: list[str] | None = None) -> Config:
    """Load `path` (or defaults when None), apply environment overrides, validate everything.

    Problems raise ConfigError; warnings (see the module docstring) are appended to `warnings`
    when it is given, each naming its key or variable."""
    environ = os.environ if environ is None else environ
    warnings = [] if warnings is None else warnings
    source = str(path) if path else "<defaults>"
    data: dict = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(source, ["file not found"]) from None
        except OSError as exc:
            raise ConfigError(source, [f"cannot read: {exc.strerror or exc}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    overridden = _apply_env(data, environ, problems, warnings)
    values = _table(_schema(Config), data, "", problems)
    listed = len(values.get("people", []))  # before Config adds the devices' wearers
    cfg = Config(**values)
    cfg.check(listed, problems, warnings)
    if problems:
        problems = [_blame(p, overridden) for p in problems]
        if all(p.startswith(ENV_PREFIX) for p in problems):
            source = "environment"
        raise ConfigError(source, problems)
    return cfg


def _schema(cls: type) -> dict[str, typing.Any]:
    """Each key of `cls` (a section of Config, or Config itself) and its Rule, or the Field of a section."""
    if cls is dict:
        return alert_rules()
    return {f.name: f.metadata.get("rule", f) for f in fields(cls)}


def _table(schema: dict[str, typing.Any], data: typing.Any, prefix: str, problems: list[str]) -> dict:
    """The converted values of the keys `data` sets (each checked against its Rule, or built as a
    section); unknown keys, and values that are wrong, are problems."""
    if not isinstance(data, dict):
        problems.append(f"{prefix.rstrip('.') or '<root>'}: must be a table, got {type(data).__name__}")
        return {}
    for name in data:
        if name not in schema:
            problems.append(f"{prefix}{name}: unknown key (known: {', '.join(sorted(schema))})")
    values = {}
    for name, rule in schema.items():
        key = prefix + name
        if isinstance(rule, Rule):
            if name in data:
                value = _value(rule, data[name], key, problems)
                if value is not _WRONG:
                    values[name] = value
            elif rule.required:
                problems.append(f"{key}: required ({rule.doc})")
        elif name in data:
            values[name] = _section(rule, data[name], key, problems)
    return values


def _section(f, data: typing.Any, key: str, problems: list[str]):
    cls = f.metadata["section"]
    if not f.metadata["many"]:
        values = _table(_schema(cls), data, key + ".", problems)
        return values if cls is dict else cls(**values)
    if not isinstance(data, list):
        problems.append(f"{key}: must be a list (in TOML, [[{key}]] tables)")
        return []
    return [cls(**_table(_schema(cls), item, f"{key}[{k}].", problems)) for k, item in enumerate(data)]


_WRONG = object()  # a value that is not what its key accepts (a problem says why)


def _value(rule: Rule, value: typing.Any, key: str, problems: list[str]) -> typing.Any:
    """`value` (from TOML, or a string from the environment) as `rule` accepts it, else _WRONG."""
    if rule.optional and value in ("", "none", "null"):
        return None
    kind = rule.kind
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        problems.append(f"{key}: must be true or false, got {value!r}")
    elif kind in (int, float):
        number = _number(value, kind is int, key, problems)
        if number is None:
            return _WRONG
        if rule.min is not None and number < rule.min:
            problems.append(f"{key}: must be >= {rule.min:g}, got {number:g}")
        elif rule.max is not None and number > rule.max:
            problems.append(f"{key}: must be <= {rule.max:g}, got {number:g}")
        else:
            return number
    elif kind is str:
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key}: must be a non-empty string, got {value!r}")
        elif rule.choices and value not in rule.choices:
            problems.append(f"{key}: must be one of {', '.join(rule.choices)}, got {value!r}")
        else:
            return value
    elif kind is dict:
        if isinstance(value, dict):
            return value
        problems.append(f"{key}: must be a table, got {value!r}")
    elif kind is tuple:
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, list):
            problems.append(f"{key}: must be a list, got {value!r}")
            return _WRONG
        assert rule.item is not None
        converted = []
        for item in items:  # the first wrong item is the problem
            converted.append(_value(rule.item, item, key, problems))
            if converted[-1] is _WRONG:
                return _WRONG
        return tuple(converted)
    else:
        raise TypeError(f"unsupported kind {kind!r} of {key}")  # a bug in the schema, not user input
    return _WRONG


def _number(value: typing.Any, whole: bool, key: str, problems: list[str]) -> float | int | None:
    """`value` as a finite number (a whole one when `whole`), else None with the problem appended."""
    try:
        if isinstance(value, bool):
            raise TypeError  # float(True) would be 1.0
        number = float(value)
    except (TypeError, ValueError):
        problems.append(f"{key}: must be a number, got {value!r}")
        return None
    if not math.isfinite(number):
        problems.append(f"{key}: must be finite, got {value!r}")
        return None
    if not whole:
        return number
    if number != int(number):  # int() would silently truncate 2.5 to 2
        problems.append(f"{key}: must be a whole number, got {value!r}")
        return None
    return int(value) if isinstance(value, int) else int(number)


def _apply_env(data: dict, environ: typing.Mapping[str, str], problems: list[str],
               warnings: list[str]) -> dict[str, str]:
    """Merge STRESSWATCH_A__B=value into `data`; returns which dotted key each variable set.

    A variable with our prefix but no `__` names no setting: it is ignored with a warning that
    names the closest setting (a single underscore where two belong is the usual slip)."""
    overridden: dict[str, str] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in ENV_NOT_SETTINGS:
            continue
        if "__" not in key:
            warnings.append(f"{key}: matches no setting, ignored ({_closest_variable(key)})")
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = data
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                problems.append(f"{key}: {'.'.join(parts[:-1])} is not a table")
                break
            node = nxt
        else:
            node[parts[-1]] = value  # a string; converted and checked like file values
            overridden[".".join(parts)] = key
    return overridden


def env_variables() -> list[str]:
    """Every setting that an environment variable can set, as that variable's name."""
    return [f"{ENV_PREFIX}{f.name}__{name}".upper() for f in fields(Config) if not f.metadata["many"]
            for name in _schema(f.metadata["section"])]


def _closest_variable(key: str) -> str:
    """A hint for an unknown variable: the setting it most resembles (compared without the prefix
    all share, which would make anything look close), or how settings are named."""
    n = len(ENV_PREFIX)
    by_key = {name[n:]: name for name in env_variables()}
    close = difflib.get_close_matches(key[n:].upper(), list(by_key), n=1, cutoff=0.6)
    if close:
        return f"did you mean {by_key[close[0]]}?"
    return f"settings are {ENV_PREFIX}<SECTION>__<KEY>, with two underscores, e.g. {ENV_PREFIX}PROCESSING__STEP_S"


def _blame(problem: str, overridden: dict[str, str]) -> str:
    """`problem`, prefixed with the environment variable that set its key (if one did)."""
    key = problem.partition(":")[0]
    names = [var for dotted, var in overridden.items() if dotted == key or dotted.startswith(key + ".")]
    return f"{', '.join(names)}: {problem}" if names else problem


EXAMPLE = """\
# stresswatch configuration. Every key is optional; shown values are the defaults.
# Environment overrides: STRESSWATCH_<SECTION>__<KEY>, e.g. STRESSWATCH_PROCESSING__STEP_S=5

# [service]
# timezone = "Europe/Berlin"      # quiet hours, days, day/night baseline; unset = the machine's zone

[processing]
window_s = 300            # SDNN, SD1/SD2, Baevsky SI, PNS/SNS, LF/HF window (s)
rmssd_window_s = 60       # RMSSD, lnRMSSD, HR and pNNxx window (s)
step_s = 10               # one reading every step_s seconds
artifact_correction = true

[[people]]
name = "me"               # used in MQTT topics and InfluxDB tags
age = 40                  # for HRmax = 208 - 0.7 age (Tanaka 2001), unless max_hr_bpm is set
# max_hr_bpm = 180
# resting_hr_bpm = 60     # otherwise learned from rest

[state]
directory = "~/.local/share/stresswatch"

# [bluetooth]
# adapter = "hci0"                # unset = BlueZ's default adapter
# watchdog_s = 5                  # no data this long = reconnect
# battery_every_s = 300

# [[devices]]                     # one table per strap, one strap per person; `stresswatch scan` lists them
# person = "me"
# address = "A0:9E:1A:12:34:56"   # and/or a name pattern:
# name = "Polar H10*"
# role = "strap"                  # or "motion": a foot pod (Stryd, Polar Stride), motion only, any number

# [morning]                       # the morning reading (README "Morning reading")
# stabilise_s = 60                # discarded first
# measure_s = 60                  # the measured window
# (per person, in [[people]]: morning_posture = "seated" or "lying"; morning_auto = true starts a
#  reading when the strap is put on between morning_from = "05:00" and morning_until = "11:00")

# [mqtt]                          # off unless url is set
# url = "mqtt://127.0.0.1:1883"   # mqtts://host:8883 for TLS
# username = "stresswatch"
# password_file = "/etc/stresswatch/mqtt-password"
# base_topic = "stresswatch"
# ca_file = "/etc/ssl/certs/ca-certificates.crt"
# certfile = ""                   # client certificate, optional (with keyfile)
# verify_hostname = true
# session_expiry_s = 3600
# discovery = true                # Home Assistant MQTT discovery
# discovery_prefix = "homeassistant"
# outbox_max_messages = 100000    # undelivered messages kept while the broker is away (min 100)

# [alerts]                       # when breathing prompts are sent; the defaults (README "Alerts")
# cooldown_min = 90               # between two prompts
# daily_cap = 3                   # prompts a day at most
# quiet_hours = ["22:00", "07:30"]
# sleep_window = ["23:00", "07:00"]
# acute_n_min = 10                # stressed for >= 10 of the last 15 minutes at rest
# acute_m_min = 15
# session_time = "18:30"          # the daily session when a chronic pattern is found
# acute_exercises = ["cyclic sighing", "resonance breathing", "box breathing"]

# [influx]                        # off unless url is set
# url = "http://127.0.0.1:8086"
# api = "v2"                      # InfluxDB 2.x/3.x, or 1.8+ with token = "user:password"; "v1" for 1.x < 1.8
# org = "home"
# bucket = "stresswatch"          # v1: the database name
# token_file = "/etc/stresswatch/influx-token"
# batch_size = 5000
# flush_interval_s = 5

# [kafka]                         # more than one machine (`stresswatch collect` / `worker`); off unless set
# bootstrap_servers = "kafka1:9092,kafka2:9092,kafka3:9092"
# security_protocol = "plaintext" # ssl, sasl_plaintext, sasl_ssl
# ca_file = "/etc/stresswatch/kafka-ca.pem"
# sasl_mechanism = "SCRAM-SHA-512"
# username = "stresswatch"
# password_file = "/etc/stresswatch/kafka-password"
# partitions = 48                 # of every topic; people are spread over them by name, so fixed for good
# replication = 3
# batch_s = 3                     # a collector sends each person's beats this often (2-5 s)
"""
