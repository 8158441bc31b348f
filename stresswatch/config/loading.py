"""Loading the configuration: the TOML file, the STRESSWATCH_* environment, and the one converter
that checks every value against its key's Rule; every problem is collected, each naming its key."""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from dataclasses import Field, fields
from pathlib import Path

from stresswatch.config.rules import ConfigError, Rule
from stresswatch.config.schema import Config
from stresswatch.number import finite_number

ENV_PREFIX = "STRESSWATCH_"
# Variables with our prefix that are not settings (no warning for them): the reference recordings
# of the tests and benchmarks, CI's no-skip switch, the Docker image's build argument.
ENV_NOT_SETTINGS = frozenset({"STRESSWATCH_REFERENCE_DATA", "STRESSWATCH_FORBID_SKIPS", "STRESSWATCH_UID"})


def load(
    path: str | Path | None = None,
    environ: typing.Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
) -> Config:
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
    values = _table(_keys(Config), data, "", problems)
    listed = len(values.get("people", []))  # before Config adds the devices' wearers
    cfg = Config(**values)
    cfg.check(listed, problems, warnings)
    if problems:
        problems = [_blame(p, overridden) for p in problems]
        if all(p.startswith(ENV_PREFIX) for p in problems):
            source = "environment"
        raise ConfigError(source, problems)
    return cfg


def _keys(cls: type) -> dict[str, typing.Any]:
    """Each key of `cls` (a section of Config, or Config itself) and its Rule, or the Field of a section."""
    return {f.name: f.metadata.get("rule", f) for f in fields(cls)}


def _section_keys(f: Field) -> dict[str, typing.Any]:
    return f.metadata["keys"]() if f.metadata["keys"] else _keys(f.metadata["section"])


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


def _section(f: Field, data: typing.Any, key: str, problems: list[str]) -> typing.Any:
    """The section of Config's field `f` from its table (or list of tables) `data`."""
    cls = f.metadata["section"]
    if not f.metadata["many"]:
        return cls(**_table(_section_keys(f), data, key + ".", problems))
    if not isinstance(data, list):
        problems.append(f"{key}: must be a list (in TOML, [[{key}]] tables)")
        return []
    return [cls(**_table(_section_keys(f), item, f"{key}[{k}].", problems)) for k, item in enumerate(data)]


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
        number = finite_number(value)
    except ValueError as exc:
        problems.append(f"{key}: {exc}")
        return None
    if not whole:
        return number
    if number != int(number):  # int() would silently truncate 2.5 to 2
        problems.append(f"{key}: must be a whole number, got {value!r}")
        return None
    return int(value) if isinstance(value, int) else int(number)


def _apply_env(
    data: dict, environ: typing.Mapping[str, str], problems: list[str], warnings: list[str]
) -> dict[str, str]:
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
    return [
        f"{ENV_PREFIX}{f.name}__{name}".upper()
        for f in fields(Config)
        if not f.metadata["many"]
        for name in _section_keys(f)
    ]


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
