"""What a configuration key may be (`setting`, `section`), the error that lists every problem, and
the checks that several sections share (MQTT topic names, URLs, TLS files, secrets)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sinks.mqtt_topic import topic_faults
from sinks.redact import redact_url


class ConfigError(ValueError):
    """The configuration has problems; `problems` lists them, each naming its key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


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


def setting(
    default: typing.Any,
    kind: type | None = None,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] = (),
    required: bool = False,
    doc: str = "",
) -> typing.Any:
    """A key of a section: its default, its kind (that of the default unless given), bounds or
    choices, and what it is for."""
    rule = Rule(kind or type(default), min, max, choices, default is None, required, doc=doc)
    return field(default=default, metadata={"rule": rule})


def section(
    cls: type, many: bool = False, keys: typing.Callable[[], dict[str, Rule]] | None = None
) -> typing.Any:
    """A section of Config: a [table] of `cls`'s keys, or with `many` a list of [[tables]]; with
    `keys`, a table (a dict) of the keys it returns, declared elsewhere ([alerts])."""
    return field(default_factory=list if many else cls, metadata={"section": cls, "many": many, "keys": keys})


def check_topic(key: str, value: str, levels: bool, problems: list[str]) -> None:
    """`value` is used in MQTT topics (sinks/mqtt_topic.py): spanning levels or inside one."""
    why = topic_faults(value, "levels" if levels else "level")
    if why:
        problems.append(
            f"{key}: cannot be used in MQTT topics: it contains {' and '.join(why)}, got {value!r}"
        )


def check_client_files(section: typing.Any, key: str, problems: list[str]) -> None:
    """TLS files that exist, and a client certificate with its key."""
    for name in ("ca_file", "certfile", "keyfile"):
        path = getattr(section, name)
        if path and not Path(path).expanduser().exists():
            problems.append(f"{key}.{name}: file {path!r} does not exist")
    if bool(section.certfile) != bool(section.keyfile):
        problems.append(f"{key}.keyfile: a client certificate needs both {key}.certfile and {key}.keyfile")


def check_secret(section: typing.Any, key: str, inline: str, problems: list[str]) -> None:
    """A secret given inline (`inline`) or in a readable file (`inline`_file), not both."""
    file = f"{inline}_file"
    path = getattr(section, file)
    if getattr(section, inline) and path:
        problems.append(f"{key}.{file}: set either {key}.{inline} or {key}.{file}, not both")
    if path and not Path(path).expanduser().exists():
        problems.append(f"{key}.{file}: file {path!r} does not exist")
    elif path:
        secret_text(path, f"{key}.{file}", problems)


def check_url(key: str, url: str, schemes: tuple[str, ...], example: str, problems: list[str]):
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


def secret_text(path: str, key: str, problems: list[str] | None = None) -> str:
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
        return secret_text(path, key)
    return value or ""
