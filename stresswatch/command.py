"""What the `stresswatch` commands share: exit codes, the error a command raises for a request it
cannot do, and the option types the parser checks values with before any work starts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stresswatch.number import finite_number

# Exit codes (contract, README "Command line"): 0 done; 1 what the command reports as not done
# (no strap found, a failed reading, points left in the outbox, a problem `doctor` found);
# 2 bad input (options, files, configuration); 130 interrupted.
EXIT_OK = 0
EXIT_NOT_DONE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CommandError(ValueError):
    """A command cannot do what was asked (options that clash, an unwritable output); one line says why."""


def number(text: str) -> float:
    """A finite number (stresswatch/number.py); the parser prints the reason after the option."""
    try:
        return finite_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_seconds(text: str) -> float:
    x = number(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return x


def replay_seconds(text: str) -> float:
    x = number(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no pauses) or more seconds, got {text!r}")
    return x


# Our bound. inject() spaces artifacts >= 12 beats apart, so more than 1/12 per beat in total is
# capped anyway; a larger rate would only look like it did something.
MAX_ARTIFACT_RATE = 0.2


def artifact_rate(text: str) -> float:
    x = number(text)
    if not 0 <= x <= MAX_ARTIFACT_RATE:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_ARTIFACT_RATE:g} per beat, got {text!r}")
    return x


def writable_file(text: str) -> str:
    """A path a file can be written to, checked before a long run rather than after it."""
    if not text:
        return text
    path = Path(text).expanduser()
    folder = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file name")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"directory {str(folder)!r} is not writable")
    return text


def url_overrides(args) -> dict[str, str]:
    """--mqtt / --influx as environment-style overrides of the config (they win over the file)."""
    env = dict(os.environ)
    if getattr(args, "mqtt", None):
        env["STRESSWATCH_MQTT__URL"] = args.mqtt
    if getattr(args, "influx", None):
        env["STRESSWATCH_INFLUX__URL"] = args.influx
    return env
