"""The one typed configuration model: a TOML file plus STRESSWATCH_* environment overrides.

Sections: [service], [processing], [[people]], [state], [bluetooth], [[devices]], [mqtt], [influx],
[kafka], [alerts].
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
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from datetime import tzinfo
from pathlib import Path
from urllib.parse import urlsplit

from alerts.settings import AlertSettings
from alerts.timeofday import UTC, parse_hhmm, zone
from processing.baseline import Baseline
from processing.morning import Protocol as MorningProtocol
from processing.pipeline import Settings as PipelineSettings
from processing.stress import RR_GATE, StressModel
from sinks.mqtt_topic import topic_faults
from sinks.redact import redact_url
from stresswatch.number import finite_number

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


def _rule(*, min: float | None = None, max: float | None = None, choices: tuple = (), doc: str = ""):
    return {"min": min, "max": max, "choices": choices, "doc": doc}


@dataclass
class ServiceConfig:
    timezone: str | None = field(default=None, metadata=_rule(
        doc="IANA zone of quiet hours, days and the day/night baseline; unset = the machine's"))

    def zone_name(self) -> str:
        """`timezone`, else the machine's zone (TZ, /etc/timezone, the /etc/localtime link), else UTC."""
        return self.timezone or machine_zone()


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
    window_s: float = field(default=300.0, metadata=_rule(min=30, doc="window of SDNN, SD1/SD2, SI, LF/HF"))
    rmssd_window_s: float = field(default=60.0, metadata=_rule(min=10, doc="window of RMSSD and HR"))
    step_s: float = field(default=10.0, metadata=_rule(min=0, doc="seconds between readings (0 = every beat)"))
    artifact_correction: bool = field(default=True, metadata=_rule(doc="Kubios-method correction"))
    # The RR-only gate (processing/stress.py RR_GATE): without motion, a heart-rate rise is too
    # active to judge. Off (ours) only where wearers are seated whenever measured: a lab or desk
    # study, where the gate would hide the stress it is run to see.
    rr_gate: bool = field(default=True, metadata=_rule(doc="without motion, HR rises are not judged"))

    def settings(self) -> PipelineSettings:
        """The pipeline's settings; LF/HF is recomputed at most every 10 s (its cost)."""
        return PipelineSettings(self.window_s, self.rmssd_window_s, self.step_s, max(self.step_s, 10.0),
                                self.artifact_correction)


@dataclass
class PersonConfig:
    name: str = field(default="me", metadata=_rule(doc="id used in MQTT topics and Influx tags"))
    age: float = field(default=40.0, metadata=_rule(min=5, max=120, doc="years, for HRmax"))
    max_hr_bpm: float | None = field(default=None, metadata=_rule(min=100, max=240))
    resting_hr_bpm: float | None = field(default=None, metadata=_rule(min=30, max=120))
    # The morning reading (processing/morning.py): one posture per person, and the local window in
    # which a strap that starts sending begins a reading on its own.
    morning_posture: str = field(default="seated", metadata=_rule(
        choices=("seated", "lying"), doc="posture of every morning reading (the two do not compare)"))
    morning_auto: bool = field(default=True, metadata=_rule(doc="a strap put on in the window starts a reading"))
    morning_from: str = field(default="05:00", metadata=_rule(doc="local HH:MM"))
    morning_until: str = field(default="11:00", metadata=_rule(doc="local HH:MM"))

    def model(self, tz: tzinfo = UTC, baseline: Baseline | None = None, rr_gate: bool = True) -> StressModel:
        """This person's stress model in zone `tz` (local time of the day/night baseline): a fresh
        baseline, or one restored from the state store; `rr_gate` from [processing] rr_gate."""
        return StressModel(age=self.age, max_hr=self.max_hr_bpm, resting_hr=self.resting_hr_bpm,
                           baseline=baseline, tz=tz, rr_gate=RR_GATE if rr_gate else None)


@dataclass
class MorningConfig:
    """The morning reading's protocol (processing/morning.py has the source of each default)."""

    stabilise_s: float = field(default=60.0, metadata=_rule(min=0, max=600, doc="discarded first"))
    measure_s: float = field(default=60.0, metadata=_rule(min=30, max=600, doc="the measured window"))
    wait_s: float = field(default=120.0, metadata=_rule(min=10, max=3600, doc="for the first beat"))
    max_artifact_pct: float = field(default=5.0, metadata=_rule(min=0, max=50))
    max_hr_change_bpm: float = field(default=25.0, metadata=_rule(min=5, max=100))

    def protocol(self, posture: str = "seated") -> MorningProtocol:
        return MorningProtocol(posture=posture, stabilise_s=self.stabilise_s, measure_s=self.measure_s,
                               wait_s=self.wait_s, max_artifact_pct=self.max_artifact_pct,
                               max_hr_change_bpm=self.max_hr_change_bpm)


@dataclass
class StateConfig:
    directory: str = field(default="~/.local/share/stresswatch", metadata=_rule(doc="SQLite state"))


@dataclass
class BluetoothConfig:
    adapter: str | None = field(default=None, metadata=_rule(doc="e.g. hci1; unset = BlueZ default"))
    watchdog_s: float = field(default=5.0, metadata=_rule(min=2, max=120, doc="no data this long = reconnect"))
    battery_every_s: float = field(default=300.0, metadata=_rule(min=10))


@dataclass
class DeviceConfig:
    person: str = field(default="me", metadata=_rule(doc="who wears it ([[people]] name)"))
    address: str | None = field(default=None, metadata=_rule(doc="AA:BB:CC:DD:EE:FF"))
    name: str | None = field(default=None, metadata=_rule(doc="name pattern, e.g. 'Polar H10*'"))
    role: str = field(default="strap", metadata=_rule(
        choices=("strap", "motion"), doc="strap: heart rate, and its motion sources; motion: motion only (a foot pod)"))


@dataclass
class MqttConfig:
    url: str | None = field(default=None, metadata=_rule(doc="mqtt://host:1883 or mqtts://host:8883; unset = off"))
    username: str | None = field(default=None, metadata=_rule())
    password: str | None = field(default=None, metadata=_rule(doc="or password_file"))
    password_file: str | None = field(default=None, metadata=_rule())
    base_topic: str = field(default="stresswatch", metadata=_rule())
    client_id: str = field(default="stresswatch", metadata=_rule())
    ca_file: str | None = field(default=None, metadata=_rule(doc="CA bundle for mqtts://"))
    certfile: str | None = field(default=None, metadata=_rule(doc="client certificate (optional)"))
    keyfile: str | None = field(default=None, metadata=_rule())
    verify_hostname: bool = field(default=True, metadata=_rule())
    keepalive_s: int = field(default=30, metadata=_rule(min=5, max=3600))
    session_expiry_s: int = field(default=3600, metadata=_rule(min=0, max=604800))
    discovery: bool = field(default=True, metadata=_rule(doc="Home Assistant MQTT discovery"))
    discovery_prefix: str = field(default="homeassistant", metadata=_rule())
    outbox_max_messages: int = field(default=100000, metadata=_rule(min=100, doc="undelivered messages kept"))

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


@dataclass
class InfluxConfig:
    url: str | None = field(default=None, metadata=_rule(doc="http://host:8086; unset = off"))
    api: str = field(default="v2", metadata=_rule(choices=("v2", "v1")))
    org: str = field(default="-", metadata=_rule())
    bucket: str = field(default="stresswatch", metadata=_rule(doc="v1: the database"))
    token: str | None = field(default=None, metadata=_rule(doc="or token_file; 1.8+: user:password"))
    token_file: str | None = field(default=None, metadata=_rule())
    username: str | None = field(default=None, metadata=_rule(doc="v1 only"))
    password: str | None = field(default=None, metadata=_rule(doc="v1 only"))
    batch_size: int = field(default=5000, metadata=_rule(min=1, max=100000))
    flush_interval_s: float = field(default=5.0, metadata=_rule(min=0.1, max=3600))
    write_beats: bool = field(default=True, metadata=_rule(doc="store every beat, not only readings"))
    outbox_max_points: int = field(default=2000000, metadata=_rule(min=1000))

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


@dataclass
class KafkaConfig:
    """More than one machine (opt-in): `stresswatch collect` and `stresswatch worker` through Apache Kafka."""

    bootstrap_servers: str | None = field(default=None, metadata=_rule(
        doc="host:9092,host2:9092; unset = one machine, no Kafka"))
    security_protocol: str = field(default="plaintext", metadata=_rule(
        choices=("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")))
    ca_file: str | None = field(default=None, metadata=_rule(doc="CA bundle for ssl / sasl_ssl"))
    certfile: str | None = field(default=None, metadata=_rule(doc="client certificate (optional)"))
    keyfile: str | None = field(default=None, metadata=_rule())
    sasl_mechanism: str = field(default="SCRAM-SHA-512", metadata=_rule(
        choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")))
    username: str | None = field(default=None, metadata=_rule(doc="SASL"))
    password: str | None = field(default=None, metadata=_rule(doc="or password_file"))
    password_file: str | None = field(default=None, metadata=_rule())
    beats_topic: str = field(default="beats", metadata=_rule(doc="collectors -> workers, key = person"))
    devices_topic: str = field(default="devices", metadata=_rule(doc="collectors' device status, key = person"))
    readings_topic: str = field(default="readings", metadata=_rule())
    prompts_topic: str = field(default="prompts", metadata=_rule(doc="prompt intents, with their ids"))
    daily_topic: str = field(default="daily", metadata=_rule())
    # People map to partitions by their key's hash: a later change moves people between
    # partitions (and their state with them), so the count is chosen generously up front.
    partitions: int = field(default=48, metadata=_rule(min=1, max=10000, doc="of every topic; fixed for good"))
    replication: int = field(default=3, metadata=_rule(min=1, max=7, doc="copies of every message"))
    worker_group: str = field(default="stresswatch-workers", metadata=_rule(doc="consumer group of the workers"))
    batch_s: float = field(default=3.0, metadata=_rule(min=2, max=5, doc="a message per person this often"))

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


@dataclass
class Config:
    service: ServiceConfig = field(default_factory=ServiceConfig)
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    people: list[PersonConfig] = field(default_factory=list)
    state: StateConfig = field(default_factory=StateConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    influx: InfluxConfig = field(default_factory=InfluxConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    bluetooth: BluetoothConfig = field(default_factory=BluetoothConfig)
    devices: list[DeviceConfig] = field(default_factory=list)
    morning: MorningConfig = field(default_factory=MorningConfig)
    # The alert engine's settings: any field of alerts/settings.py AlertSettings (checked by
    # `alert_settings`); unset keys keep the documented defaults.
    alerts: dict = field(default_factory=dict)

    def alert_settings(self) -> AlertSettings:
        """The [alerts] table as the engine's settings, in the zone of [service]; ValueError naming
        the key when it is wrong."""
        problems: list[str] = []
        settings = _alert_settings(self.alerts, problems, self.service.zone_name())
        if problems:
            raise ValueError("; ".join(problems))
        return settings

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
    cfg = _build(Config, data, "", problems)
    people = data.get("people")
    _check(cfg, people if isinstance(people, list) else [], problems, warnings)
    try:
        timezone = cfg.service.zone_name()
        zone(timezone, "service.timezone")
    except ValueError as exc:
        problems.append(str(exc))
        timezone = "UTC"
    _alert_settings(cfg.alerts, problems, timezone)
    if problems:
        problems = [_blame(p, overridden) for p in problems]
        if all(p.startswith(ENV_PREFIX) for p in problems):
            source = "environment"
        raise ConfigError(source, problems)
    return cfg


def _alert_settings(table: dict, problems: list[str], timezone: str) -> AlertSettings:
    """[alerts] as AlertSettings in `timezone`: each value converted to its field's type (TOML or an
    environment string such as "22:00,07:30"), then the engine's own cross-checks; every problem
    names its `alerts.<key>`. Falls back to the defaults when something is wrong (the caller reports)."""
    defaults = AlertSettings(timezone=timezone)
    known = {f.name for f in fields(AlertSettings)} - {"timezone"}  # [service] timezone sets it
    clean = {"timezone": timezone}
    for name, value in table.items():
        if name not in known:
            problems.append(f"alerts.{name}: unknown key (known: {', '.join(sorted(known))})")
            continue
        try:
            clean[name] = _alert_value(getattr(defaults, name), value)
        except ValueError as exc:
            problems.append(f"alerts.{name}: {exc}")
    try:
        return AlertSettings.from_dict(clean)
    except (ValueError, TypeError) as exc:  # the engine's messages start with the key
        problems.append(f"alerts.{exc}")
        return defaults


def _alert_value(default, value):
    if isinstance(default, bool):
        raise ValueError("not settable")
    if isinstance(default, int | float) and not isinstance(value, bool):
        number = finite_number(value)
        if number < 0:
            raise ValueError(f"must be a finite number >= 0, got {value!r}")
        if isinstance(default, int):
            if number != int(number):
                raise ValueError(f"must be a whole number, got {value!r}")
            return int(number)
        return number
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError(f"must be a list, got {value!r}")
        if default and isinstance(default[0], int):
            return tuple(_alert_value(0, v) for v in items)
        return tuple(items)
    raise ValueError(f"cannot be set to {value!r}")


def _blame(problem: str, overridden: dict[str, str]) -> str:
    """`problem`, prefixed with the environment variable that set its key (if one did)."""
    key = problem.partition(":")[0]
    names = [var for dotted, var in overridden.items() if dotted == key or dotted.startswith(key + ".")]
    return f"{', '.join(names)}: {problem}" if names else problem


def _check(cfg: Config, people_tables: list, problems: list[str], warnings: list[str]) -> None:
    """Checks across keys: window lengths, names used in MQTT topics, who wears which strap, sinks.
    `people_tables` are the [[people]] tables as written (the wearers the devices add come after
    them in `cfg.people`)."""
    n_people = len(people_tables)
    p = cfg.processing
    if p.rmssd_window_s > p.window_s:
        problems.append(f"processing.rmssd_window_s: must be <= processing.window_s ({p.window_s:g} s), "
                        f"got {p.rmssd_window_s:g}: RMSSD and HR come from the end of the long window")
    if p.step_s > p.window_s:
        problems.append(f"processing.step_s: must be <= processing.window_s ({p.window_s:g} s), got "
                        f"{p.step_s:g}: beats between two windows would never be analysed")
    for k, table in enumerate(people_tables):
        if isinstance(table, dict) and "name" not in table:
            # Not the default `me`: a second table without a name would be a wearer nobody meant.
            problems.append(f"people[{k}].name: required (the wearer's name, used in MQTT topics and InfluxDB tags)")
    for k, person in enumerate(cfg.people[:n_people]):
        _check_topic(f"people[{k}].name", person.name, False, problems)
    for k, person in enumerate(cfg.people[:n_people]):
        for key in ("morning_from", "morning_until"):
            try:
                parse_hhmm(getattr(person, key), f"people[{k}].{key}")
            except ValueError as exc:
                problems.append(str(exc))
    names = [person.name for person in cfg.people]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"people: name {dup!r} is used more than once")
    explicit = names[:n_people]
    # Wearers whose names differ only in letter case would be one Home Assistant device (its ids
    # are lower case) and two of everything else: one spelling each. casefold -> (key, name).
    spelt: dict[str, tuple[str, str]] = {}

    def one_spelling(key: str, name: str) -> None:
        first_key, first = spelt.setdefault(name.casefold(), (key, name))
        if first != name:
            problems.append(f"{key}: {name!r} differs from {first_key} {first!r} only in letter case; use one spelling")

    for k, name in enumerate(explicit):
        one_spelling(f"people[{k}].name", name)
    worn: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for k, d in enumerate(cfg.devices):
        if not d.address and not d.name:
            problems.append(f"devices[{k}]: give an address or a name pattern")
        if d.address and not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", d.address):
            problems.append(f"devices[{k}].address: must look like AA:BB:CC:DD:EE:FF, got {d.address!r}")
        elif d.address:
            first = addresses.setdefault(d.address.upper(), k)  # Bluetooth addresses ignore letter case
            if first != k:
                problems.append(f"devices[{k}].address: {d.address!r} is devices[{first}]'s strap (worn by "
                                f"{cfg.devices[first].person!r}; addresses are compared regardless of letter "
                                f"case): one strap, one wearer")
        if d.person not in explicit and _check_wearer(k, d.person, explicit, problems, warnings):
            one_spelling(f"devices[{k}].person", d.person)
        if d.name and not d.address:  # without an address the name is the device's label in topics
            _check_topic(f"devices[{k}].name", d.name, False, problems)
        _check_topic(f"devices[{k}].person", d.person, False, problems)
        if d.role != "strap":
            continue  # a motion source: any number per person
        if d.person in worn:
            problems.append(
                f"devices[{k}].person: {d.person!r} already wears devices[{worn[d.person]}]; one strap per "
                f"person (two straps would merge into one beat series and halve RMSSD). For a second "
                f"wearer add a [[people]] entry and set this device's person to its name")
        worn.setdefault(d.person, k)
    _check_sinks(cfg, problems)


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


def _check_topic(key: str, value: str, levels: bool, problems: list[str]) -> None:
    """`value` is used in MQTT topics (sinks/mqtt_topic.py): spanning levels or inside one."""
    why = topic_faults(value, "levels" if levels else "level")
    if why:
        problems.append(f"{key}: cannot be used in MQTT topics: it contains {' and '.join(why)}, got {value!r}")


def _check_sinks(cfg: Config, problems: list[str]) -> None:
    """Cross-field checks of the [mqtt] and [influx] sections (URLs, topics, secret files)."""
    m = cfg.mqtt
    if m.url is not None:
        u = _check_url("mqtt.url", m.url, ("mqtt", "mqtts"), "mqtt://host:1883 or mqtts://host:8883", problems)
        if u is not None and u.password:
            problems.append("mqtt.url: put the password in mqtt.password or mqtt.password_file, not in the URL")
    _check_topic("mqtt.base_topic", m.base_topic, True, problems)
    _check_topic("mqtt.discovery_prefix", m.discovery_prefix, True, problems)
    if m.password and m.password_file:
        problems.append("mqtt.password_file: set either mqtt.password or mqtt.password_file, not both")
    for key in ("password_file", "ca_file", "certfile", "keyfile"):
        path = getattr(m, key)
        if path and not Path(path).expanduser().exists():
            problems.append(f"mqtt.{key}: file {path!r} does not exist")
        elif path and key == "password_file":
            _secret(path, "mqtt.password_file", problems)
    if bool(m.certfile) != bool(m.keyfile):
        problems.append("mqtt.keyfile: a client certificate needs both mqtt.certfile and mqtt.keyfile")
    i = cfg.influx
    if i.url is not None:
        _check_url("influx.url", i.url, ("http", "https"), "http://host:8086", problems)
    if i.token and i.token_file:
        problems.append("influx.token_file: set either influx.token or influx.token_file, not both")
    if i.token_file and not Path(i.token_file).expanduser().exists():
        problems.append(f"influx.token_file: file {i.token_file!r} does not exist")
    elif i.token_file:
        _secret(i.token_file, "influx.token_file", problems)
    _check_kafka(cfg.kafka, problems)


def _check_kafka(k: KafkaConfig, problems: list[str]) -> None:
    """Cross-field checks of [kafka]: servers as host:port, TLS files, SASL credentials, topic names."""
    if k.bootstrap_servers is not None:
        servers = [s.strip() for s in k.bootstrap_servers.split(",")]
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                problems.append(f"kafka.bootstrap_servers: each server must look like host:9092, got {server!r}")
    for key in ("ca_file", "certfile", "keyfile", "password_file"):
        path = getattr(k, key)
        if path and not Path(path).expanduser().exists():
            problems.append(f"kafka.{key}: file {path!r} does not exist")
        elif path and key == "password_file":
            _secret(path, "kafka.password_file", problems)
    if bool(k.certfile) != bool(k.keyfile):
        problems.append("kafka.keyfile: a client certificate needs both kafka.certfile and kafka.keyfile")
    if k.password and k.password_file:
        problems.append("kafka.password_file: set either kafka.password or kafka.password_file, not both")
    if k.security_protocol.startswith("sasl") and not (k.username and (k.password or k.password_file)):
        problems.append(f"kafka.username: security_protocol {k.security_protocol!r} needs kafka.username and "
                        f"kafka.password (or kafka.password_file)")
    topics = k.topics()
    for name, topic in topics.items():
        # Kafka's own rule for topic names (kafka.common.internals.Topic): at most 249 of these characters.
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic) or topic in (".", ".."):
            problems.append(f"kafka.{name}_topic: a topic name is 1-249 letters, digits, '.', '_' or '-', got {topic!r}")
    for dup in sorted({t for t in topics.values() if list(topics.values()).count(t) > 1}):
        problems.append(f"kafka: topic {dup!r} is used for more than one stream; give each its own")


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
    names = []
    for f in fields(Config):
        section = typing.get_type_hints(Config)[f.name]
        if is_dataclass(section):
            names += [f"{ENV_PREFIX}{f.name}__{g.name}".upper() for g in fields(section)]
    names += [f"{ENV_PREFIX}ALERTS__{g.name}".upper() for g in fields(AlertSettings) if g.name != "timezone"]
    return names


def _closest_variable(key: str) -> str:
    """A hint for an unknown variable: the setting it most resembles (compared without the prefix
    all share, which would make anything look close), or how settings are named."""
    n = len(ENV_PREFIX)
    by_key = {name[n:]: name for name in env_variables()}
    close = difflib.get_close_matches(key[n:].upper(), list(by_key), n=1, cutoff=0.6)
    if close:
        return f"did you mean {by_key[close[0]]}?"
    return f"settings are {ENV_PREFIX}<SECTION>__<KEY>, with two underscores, e.g. {ENV_PREFIX}PROCESSING__STEP_S"


def _build(cls: type, data: typing.Any, prefix: str, problems: list[str]):
    if not isinstance(data, dict):
        problems.append(f"{prefix.rstrip('.') or '<root>'}: must be a table, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown key (known: {', '.join(sorted(known))})")
    kwargs = {}
    for f in fields(cls):
        key = prefix + f.name
        if f.name not in data:
            continue
        value = _convert(hints[f.name], data[f.name], key, problems, f.metadata)
        if value is not MISSING:
            kwargs[f.name] = value
    return cls(**kwargs)


def _convert(tp, value, key: str, problems: list[str], rule) -> typing.Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        if value in (None, "", "none", "null"):
            return None
        return _convert(inner, value, key, problems, rule)
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{key}: must be a list (in TOML, [[{key}]] tables)")
            return MISSING
        return [_build(args[0], v, f"{key}[{i}].", problems) for i, v in enumerate(value)]
    if is_dataclass(tp):
        return _build(tp, value, key + ".", problems)
    if tp is dict:
        if not isinstance(value, dict):
            problems.append(f"{key}: must be a table ([{key}] in TOML), got {value!r}")
            return MISSING
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        problems.append(f"{key}: must be true or false, got {value!r}")
        return MISSING
    if tp in (int, float):
        try:
            number = finite_number(value)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            return MISSING
        if tp is int:
            if number != int(number):  # int() would silently truncate 2.5 to 2
                problems.append(f"{key}: must be a whole number, got {value!r}")
                return MISSING
            number = int(value) if isinstance(value, int) else int(number)
        lo, hi = rule.get("min"), rule.get("max")
        if lo is not None and number < lo:
            problems.append(f"{key}: must be >= {lo:g}, got {number:g}")
            return MISSING
        if hi is not None and number > hi:
            problems.append(f"{key}: must be <= {hi:g}, got {number:g}")
            return MISSING
        return number
    if tp is str:
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key}: must be a non-empty string, got {value!r}")
            return MISSING
        choices = rule.get("choices")
        if choices and value not in choices:
            problems.append(f"{key}: must be one of {', '.join(choices)}, got {value!r}")
            return MISSING
        return value
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module, not user input


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
