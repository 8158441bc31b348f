"""A plausible resting Reading for tests of what carries readings (sinks, alerts, Home Assistant),
where the values themselves do not matter: `reading(person=..., time=..., state=...)`."""

from __future__ import annotations

import dataclasses

from processing.reading import Reading

# A calm adult at rest over a 5-minute window: 67 bpm, RMSSD 42 ms (lnRMSSD 3.74), SDNN 50 ms.
# fmt: off
REST = Reading("ann", 0.0, 300.0, 300, 900.0, 66.7, 42.0, 3.74, 50.0, 20.0, 45.0, 29.7, 60.0, 90.0, 9.5,
               0.1, -0.2, 1.1, 0.0, "rest", 40.0, "neutral", 1.0)
# fmt: on


def reading(**fields) -> Reading:
    """REST with `fields` replaced (any Reading field by name)."""
    return dataclasses.replace(REST, **fields)
