"""What every benchmark script shares on its command line: `--help` from its docstring, and the
reference recordings, found through STRESSWATCH_REFERENCE_DATA or said missing in one line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = "STRESSWATCH_REFERENCE_DATA"
# Where the project's workspace keeps the reference data: ../shared/data next to the checkout.
DEFAULT_DATA = ROOT.parent / "shared" / "data"
EXIT_NO_DATA = 2  # as the CLI's "bad input"


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose --help prints the script's docstring as written (its usage line included)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def reference_data(*needed: str) -> Path:
    """The reference data folder (STRESSWATCH_REFERENCE_DATA, else ../shared/data next to the checkout);
    when it or one of the `needed` paths inside it is missing, one line on stderr says so and what
    to set, and the script exits with status 2."""
    root = Path(os.environ.get(ENV) or DEFAULT_DATA).expanduser()
    for path in (root, *(root / n for n in needed)):
        if not path.exists():
            script = Path(sys.argv[0]).name
            print(
                f"{script}: reference data not found: {path} does not exist; set {ENV} to the folder of "
                f"the reference recordings (../shared/data in the project's workspace)",
                file=sys.stderr,
            )
            sys.exit(EXIT_NO_DATA)
    return root
