"""The `stresswatch` command line: parse (stresswatch/arguments.py), hand each command to the module that
does it, and turn what a person can fix into one line and an exit code."""

from __future__ import annotations

import os
import sys

# Before numpy is first imported: OpenBLAS starts a thread per core at import, which cost ~0.1 s
# of CPU here (2 cores) for nothing: every array the product handles is small (the largest
# matrix product is LF/HF's ~650 x 2) and runs on one thread anyway. A value set by the user wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from collector.files import RecordingError
from sinks.store import StoreError
from stresswatch import config as configuration
from stresswatch.arguments import parser as _parser
from stresswatch.command import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, CommandError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except (RecordingError, StoreError, CommandError) as exc:
        print(f"stresswatch: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except configuration.ConfigError as exc:
        _print_config_problems(exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


def _print_config_problems(exc: configuration.ConfigError) -> None:
    if len(exc.problems) == 1:
        print(f"stresswatch: config error: {exc.source}: {exc.problems[0]}", file=sys.stderr)
        return
    print(f"stresswatch: {len(exc.problems)} config problems in {exc.source}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def cmd_config_check(args) -> int:
    """0 when the configuration is valid (warnings included), 2 with its problems."""
    path = args.path or args.config
    warnings: list[str] = []
    try:
        configuration.load(path, warnings=warnings)
    finally:  # also next to the problems: a misspelt variable may be why a value is not what was meant
        for warning in warnings:
            print(f"stresswatch: config warning: {warning}", file=sys.stderr)
    print(
        f"{path or '<defaults>'}: ok"
        + (f" ({len(warnings)} warning{'s' * (len(warnings) > 1)})" if warnings else "")
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
