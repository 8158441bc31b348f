"""The one typed configuration model: a TOML file plus STRESSWATCH_* environment overrides.

Every problem is reported with the dotted key that has it (`processing.window_s: must be > 0,
got -5`); all problems are collected, not just the first. Environment overrides use a double
underscore between levels: `STRESSWATCH_PROCESSING__STEP_S=5`. Later issues add sections
(devices, mqtt, influx) by adding dataclasses here.

Each section turns itself into the settings object of the stage it configures
(`ProcessingConfig.settings()`, `PersonConfig.model()`, `MqttConfig.settings()`, ...), so the
stages never import this module.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from urllib.parse import urlsplit

from processing.pipeline import Settings as PipelineSettings
from processing.baseline import Baseline
from processing.stress import StressModel
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
class ProcessingConfig:
    window_s: float = field(default=300.0, metadata=_rule(min=30, doc="window of SDNN, SD1/SD2, SI, LF/HF"))
    rmssd_window_s: float = field(default=60.0, metadata=_rule(min=10, doc="window of RMSSD and HR"))
    step_s: float = field(default=10.0, metadata=_rule(min=0, doc="seconds between readings"))
    artifact_correction: bool = field(default=True, metadata=_rule(doc="Kubios-method correction"))

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

    def model(self, baseline: Baseline | None = None, utc_offset_s: float = 0.0) -> StressModel:
        """This person's stress model: a fresh baseline, or one restored from the state store."""
        return StressModel(age=self.age, max_hr=self.max_hr_bpm, resting_hr=self.resting_hr_bpm,
                           baseline=baseline, utc_offset_s=utc_offset_s)


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

    def settings(self) -> MqttSettings | None:
        """The MQTT sink's settings (secrets read from their files), None when MQTT is off."""
        if self.url is None:
            return None
        u = urlsplit(self.url)
        tls = u.scheme == "mqtts"
        return MqttSettings(
            host=u.hostname or "127.0.0.1",
            port=u.port or (8883 if tls else 1883),
            base_topic=self.base_topic,
            client_id=self.client_id,
            username=self.username or u.username or "",
            password=read_secret(self.password, self.password_file),
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
        return InfluxSettings(
            url=self.url, bucket=self.bucket, org=self.org, token=read_secret(self.token, self.token_file),
            api=self.api, username=self.username or "", password=self.password or "",
            batch_size=self.batch_size, flush_interval_s=self.flush_interval_s, write_beats=self.write_beats,
            outbox_max_points=self.outbox_max_points,
        )


@dataclass
class Config:
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    people: list[PersonConfig] = field(default_factory=lambda: [PersonConfig()])
    state: StateConfig = field(default_factory=StateConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    influx: InfluxConfig = field(default_factory=InfluxConfig)
    bluetooth: BluetoothConfig = field(default_factory=BluetoothConfig)
    devices: list[DeviceConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A device's wearer without a [[people]] entry gets the default settings.
        known = {p.name for p in self.people}
        for d in self.devices:
            if d.person not in known:
                self.people.append(PersonConfig(name=d.person))
                known.add(d.person)

    def person(self, name: str) -> PersonConfig:
        return next((p for p in self.people if p.name == name), PersonConfig(name=name))

    def sink_settings(self) -> SinkSettings:
        """What the sinks need: their sections, the wearers, each wearer's device labels."""
        devices: dict[str, list[str]] = {}
        for d in self.devices:
            devices.setdefault(d.person, []).append(d.address or d.name or "strap")
        return SinkSettings(
            state_path=Path(self.state.directory).expanduser() / "state.db",
            mqtt=self.mqtt.settings(), influx=self.influx.settings(),
            people=tuple(p.name for p in self.people), devices=devices,
        )


ENV_PREFIX = "STRESSWATCH_"


def load(path: str | Path | None = None, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Load `path` (or defaults when None), apply environment overrides, validate everything."""
    environ = os.environ if environ is None else environ
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
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    _apply_env(data, environ, problems)
    cfg = _build(Config, data, "", problems)
    _check_sinks(cfg, problems)
    names = [p.name for p in cfg.people]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"people: name {dup!r} is used more than once")
    if problems:
        raise ConfigError(source, problems)
    return cfg


def _check_sinks(cfg: Config, problems: list[str]) -> None:
    """Cross-field checks of the [mqtt] and [influx] sections (URLs, secret files)."""
    m = cfg.mqtt
    if m.url is not None:
        u = urlsplit(m.url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            shown = u._replace(netloc=u.hostname or "").geturl()  # never echo credentials
            problems.append(f"mqtt.url: must look like mqtt://host:1883 or mqtts://host:8883, got {shown!r}")
        if u.password:
            problems.append("mqtt.url: put the password in mqtt.password or mqtt.password_file, not in the URL")
    if m.password and m.password_file:
        problems.append("mqtt.password_file: set either mqtt.password or mqtt.password_file, not both")
    for key in ("password_file", "ca_file", "certfile", "keyfile"):
        path = getattr(m, key)
        if path and not Path(path).expanduser().is_file():
            problems.append(f"mqtt.{key}: file {path!r} does not exist")
    if bool(m.certfile) != bool(m.keyfile):
        problems.append("mqtt.keyfile: a client certificate needs both mqtt.certfile and mqtt.keyfile")
    for k, d in enumerate(cfg.devices):
        if not d.address and not d.name:
            problems.append(f"devices[{k}]: give an address or a name pattern")
        if d.address and not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", d.address):
            problems.append(f"devices[{k}].address: must look like AA:BB:CC:DD:EE:FF, got {d.address!r}")
    i = cfg.influx
    if i.url is not None:
        u = urlsplit(i.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            problems.append(f"influx.url: must look like http://host:8086, got {i.url!r}")
    if i.token and i.token_file:
        problems.append("influx.token_file: set either influx.token or influx.token_file, not both")
    if i.token_file and not Path(i.token_file).expanduser().is_file():
        problems.append(f"influx.token_file: file {i.token_file!r} does not exist")


def read_secret(value: str | None, path: str | None) -> str:
    """A secret given inline or in a file (first line, whitespace stripped)."""
    if path:
        return Path(path).expanduser().read_text().strip()
    return value or ""


def _apply_env(data: dict, environ: typing.Mapping[str, str], problems: list[str]) -> None:
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
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
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        problems.append(f"{key}: must be true or false, got {value!r}")
        return MISSING
    if tp in (int, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = tp(value)
        except (TypeError, ValueError):
            problems.append(f"{key}: must be a number, got {value!r}")
            return MISSING
        if not math.isfinite(number):
            problems.append(f"{key}: must be finite, got {value!r}")
            return MISSING
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

# [[devices]]                     # one table per strap; `stresswatch scan` lists them
# person = "me"
# address = "A0:9E:1A:12:34:56"   # and/or a name pattern:
# name = "Polar H10*"

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

# [influx]                        # off unless url is set
# url = "http://127.0.0.1:8086"
# api = "v2"                      # InfluxDB 2.x/3.x, or 1.8+ with token = "user:password"; "v1" for 1.x < 1.8
# org = "home"
# bucket = "stresswatch"          # v1: the database name
# token_file = "/etc/stresswatch/influx-token"
# batch_size = 5000
# flush_interval_s = 5
"""
