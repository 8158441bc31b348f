"""Numbers a person typed (a command-line option, a configuration value, an environment override):
the one parser, whose errors are the words `stresswatch` prints after the option or key."""

from __future__ import annotations

import math


def finite_number(value: object) -> float:
    """`value` (a number, or text such as "2.5" or "1e3") as a finite float.

    Raises ValueError "must be a number, got 'x'" for anything float() refuses (and for a bool:
    TOML's `true` is no 1.0), and "must be a finite number, got 'nan'" for NaN and infinities,
    which float() accepts but no setting means."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {value!r}")
    return number
