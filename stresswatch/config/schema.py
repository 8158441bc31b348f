"""The configuration's schema: each section a dataclass of its keys (`setting`: kind, default,
bounds or choices, doc) with its rules across keys (`check`), and Config, the whole file.
[alerts] has the keys of alerts/settings.py `AlertSettings` (`alert_rules`)."""

from __future__ import annotations

import difflib
import os
import re
import typing
from dataclasses import dataclass, fields
from datetime import tzinfo
from pathlib import Path
from urllib.parse import urlsplit

from alerts.settings import AlertSettings
from alerts.timeofday import UTC, parse_hhmm, zone
from processing.baseline import Baseline
from processing.morning import Protocol as MorningProtocol
from processing.pipeline import Settings as PipelineSettings
from processing.stress import RR_GATE, StressModel
from stresswatch.config.rules import (
    Rule,
    check_client_files,
    check_secret,
    check_topic,
    check_url,
    read_secret,
    section,
    setting,
)

if typing.TYPE_CHECKING:
    from sinks.fanout import SinkSettings
    from sinks.influx import InfluxSettings
    from sinks.mqtt import MqttSettings


def alert_rules() -> dict[str, Rule]:
    """[alerts]: every field of AlertSettings but `timezone` ([service] sets it), of its default's
    kind; numbers >= 0 (the engine checks its other bounds and its rules across keys)."""
    rules = {}
    for f in fields(AlertSettings):
        if f.name != "timezone":
            kind = type(f.default)
            if kind is tuple:  # `extra_exercises` (default empty) is a list of exercise tables
                item = _alert_rule(type(f.default[0])) if f.default else Rule(dict)
                rules[f.name] = Rule(tuple, item=item)
            else:
                rules[f.name] = _alert_rule(kind)
    return rules


def _alert_rule(kind: type) -> Rule:
    return Rule(kind, min=0 if kind in (int, float) else None)


@dataclass
class ServiceConfig:
    timezone: str | None = setting(
        None, str, doc="IANA zone of quiet hours, days and the day/night baseline; unset = the machine's"
    )

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
        return PipelineSettings(
            self.window_s, self.rmssd_window_s, self.step_s, max(self.step_s, 10.0), self.artifact_correction
        )

    def check(self, key: str, problems: list[str]) -> None:
        if self.rmssd_window_s > self.window_s:
            problems.append(
                f"{key}.rmssd_window_s: must be <= {key}.window_s ({self.window_s:g} s), got "
                f"{self.rmssd_window_s:g}: RMSSD and HR come from the end of the long window"
            )
        if self.step_s > self.window_s:
            problems.append(
                f"{key}.step_s: must be <= {key}.window_s ({self.window_s:g} s), got {self.step_s:g}: "
                f"beats between two windows would never be analysed"
            )


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
    morning_posture: str = setting(
        "seated", choices=("seated", "lying"), doc="posture of every morning reading (the two do not compare)"
    )
    morning_auto: bool = setting(True, doc="a strap put on in the window starts a reading")
    morning_from: str = setting("05:00", doc="local HH:MM")
    morning_until: str = setting("11:00", doc="local HH:MM")

    def model(self, tz: tzinfo = UTC, baseline: Baseline | None = None, rr_gate: bool = True) -> StressModel:
        """This person's stress model in zone `tz` (local time of the day/night baseline): a fresh
        baseline, or one restored from the state store; `rr_gate` from [processing] rr_gate."""
        return StressModel(
            age=self.age,
            max_hr=self.max_hr_bpm,
            resting_hr=self.resting_hr_bpm,
            baseline=baseline,
            tz=tz,
            rr_gate=RR_GATE if rr_gate else None,
        )

    def check(self, key: str, problems: list[str]) -> None:
        check_topic(f"{key}.name", self.name, False, problems)
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
        return MorningProtocol(
            posture=posture,
            stabilise_s=self.stabilise_s,
            measure_s=self.measure_s,
            wait_s=self.wait_s,
            max_artifact_pct=self.max_artifact_pct,
            max_hr_change_bpm=self.max_hr_change_bpm,
        )


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
    role: str = setting(
        "strap",
        choices=("strap", "motion"),
        doc="strap: heart rate, and its motion sources; motion: motion only (a foot pod)",
    )

    def has_address(self) -> bool:
        return bool(self.address and re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", self.address))

    def check(self, key: str, problems: list[str]) -> None:
        if not self.address and not self.name:
            problems.append(f"{key}: give an address or a name pattern")
        if self.address and not self.has_address():
            problems.append(f"{key}.address: must look like AA:BB:CC:DD:EE:FF, got {self.address!r}")
        if self.name and not self.address:  # without an address the name is the device's label in topics
            check_topic(f"{key}.name", self.name, False, problems)
        check_topic(f"{key}.person", self.person, False, problems)


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
            u = check_url(
                f"{key}.url", self.url, ("mqtt", "mqtts"), "mqtt://host:1883 or mqtts://host:8883", problems
            )
            if u is not None and u.password:
                problems.append(
                    f"{key}.url: put the password in {key}.password or {key}.password_file, not in the URL"
                )
        check_topic(f"{key}.base_topic", self.base_topic, True, problems)
        check_topic(f"{key}.discovery_prefix", self.discovery_prefix, True, problems)
        check_secret(self, key, "password", problems)
        check_client_files(self, key, problems)


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
            url=self.url,
            bucket=self.bucket,
            org=self.org,
            token=read_secret(self.token, self.token_file, "influx.token_file"),
            api=self.api,
            username=self.username or "",
            password=self.password or "",
            batch_size=self.batch_size,
            flush_interval_s=self.flush_interval_s,
            write_beats=self.write_beats,
            outbox_max_points=self.outbox_max_points,
        )

    def check(self, key: str, problems: list[str]) -> None:
        if self.url is not None:
            check_url(f"{key}.url", self.url, ("http", "https"), "http://host:8086", problems)
        check_secret(self, key, "token", problems)


@dataclass
class KafkaConfig:
    """More than one machine (opt-in): `stresswatch collect` and `stresswatch worker` through Apache Kafka."""

    bootstrap_servers: str | None = setting(
        None, str, doc="host:9092,host2:9092; unset = one machine, no Kafka"
    )
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
        return {
            "beats": self.beats_topic,
            "devices": self.devices_topic,
            "readings": self.readings_topic,
            "prompts": self.prompts_topic,
            "daily": self.daily_topic,
        }

    def client_config(self) -> dict[str, str] | None:
        """librdkafka's settings for any client (secrets read from their files); None when off."""
        if self.bootstrap_servers is None:
            return None
        conf = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.security_protocol in ("ssl", "sasl_ssl"):
            for key, name in (
                ("ca_file", "ssl.ca.location"),
                ("certfile", "ssl.certificate.location"),
                ("keyfile", "ssl.key.location"),
            ):
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
                problems.append(
                    f"{key}.bootstrap_servers: each server must look like host:9092, got {server!r}"
                )
        check_client_files(self, key, problems)
        check_secret(self, key, "password", problems)
        if self.security_protocol.startswith("sasl") and not (
            self.username and (self.password or self.password_file)
        ):
            problems.append(
                f"{key}.username: security_protocol {self.security_protocol!r} needs {key}.username "
                f"and {key}.password (or {key}.password_file)"
            )
        topics = self.topics()
        for name, topic in topics.items():
            # Kafka's own rule for topic names (kafka.common.internals.Topic): at most 249 of these characters.
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic) or topic in (".", ".."):
                problems.append(
                    f"{key}.{name}_topic: a topic name is 1-249 letters, digits, '.', '_' or '-', "
                    f"got {topic!r}"
                )
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
    # The alert engine's settings as set in [alerts], converted; unset keys keep AlertSettings'
    # documented defaults.
    alerts: dict = section(dict, keys=alert_rules)

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
            mqtt=self.mqtt.settings(),
            influx=self.influx.settings(),
            people=tuple(p.name for p in self.people),
            devices=devices,
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
                problems.append(
                    f"{key}: {name!r} differs from {first_key} {first!r} only in letter case; "
                    f"use one spelling"
                )

        for k, name in enumerate(explicit):
            one_spelling(f"people[{k}].name", name)
        worn: dict[str, int] = {}
        addresses: dict[str, int] = {}
        for k, d in enumerate(self.devices):
            if d.has_address():
                first = addresses.setdefault(d.address.upper(), k)  # Bluetooth addresses ignore letter case
                if first != k:
                    problems.append(
                        f"devices[{k}].address: {d.address!r} is devices[{first}]'s strap (worn by "
                        f"{self.devices[first].person!r}; addresses are compared regardless of "
                        f"letter case): one strap, one wearer"
                    )
            if d.person not in explicit and _check_wearer(k, d.person, explicit, problems, warnings):
                one_spelling(f"devices[{k}].person", d.person)
            if d.role != "strap":
                continue  # a motion source: any number per person
            if d.person in worn:
                problems.append(
                    f"devices[{k}].person: {d.person!r} already wears devices[{worn[d.person]}]; one strap per "
                    f"person (two straps would merge into one beat series and halve RMSSD). For a second "
                    f"wearer add a [[people]] entry and set this device's person to its name"
                )
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
    warnings.append(
        f"devices[{k}].person: {person!r} has no [[people]] table{hint}; {person!r} is a wearer with "
        f"the default settings (age {PersonConfig.age:g})"
    )
    return True
