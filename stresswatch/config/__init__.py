"""The one typed configuration model: a TOML file plus STRESSWATCH_* environment overrides.

Sections: [service], [processing], [[people]], [state], [bluetooth], [[devices]], [morning],
[mqtt], [influx], [kafka], [alerts].
The schema is declarative (schema.py): each section is a dataclass whose fields are
`setting(default, ...)` (kind, bounds or choices, doc; rules.py) and whose `check(key, problems)`
holds its rules across keys; [alerts] has the keys of alerts/settings.py `AlertSettings` (their
defaults and reasons live there, the engine checks its own rules). One converter (loading.py)
turns TOML values and environment strings into every key; example.py is the commented example.
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

from stresswatch.config.example import EXAMPLE
from stresswatch.config.loading import ENV_NOT_SETTINGS, ENV_PREFIX, env_variables, load
from stresswatch.config.rules import ConfigError, Rule, read_secret, section, setting
from stresswatch.config.schema import (
    BluetoothConfig,
    Config,
    DeviceConfig,
    InfluxConfig,
    KafkaConfig,
    MorningConfig,
    MqttConfig,
    PersonConfig,
    ProcessingConfig,
    ServiceConfig,
    StateConfig,
    alert_rules,
    machine_zone,
)

__all__ = [
    "ENV_NOT_SETTINGS",
    "ENV_PREFIX",
    "EXAMPLE",
    "BluetoothConfig",
    "Config",
    "ConfigError",
    "DeviceConfig",
    "InfluxConfig",
    "KafkaConfig",
    "MorningConfig",
    "MqttConfig",
    "PersonConfig",
    "ProcessingConfig",
    "Rule",
    "ServiceConfig",
    "StateConfig",
    "alert_rules",
    "env_variables",
    "load",
    "machine_zone",
    "read_secret",
    "section",
    "setting",
]
