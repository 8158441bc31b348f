"""Local calendar and clock of unix seconds in a time zone, without reading a clock: day, minute of day, windows.

A zone (`zoneinfo.ZoneInfo`, IANA tz database) rather than a fixed UTC offset, so quiet hours, the
day/night baseline and day boundaries follow daylight saving time: a local day is 23 or 25 hours
long on the days the clocks change, and "07:30" is 07:30 on the wall clock on both sides of a
change. Days are numbered by the local calendar date (days since 1970-01-01); the numbering does
not depend on the zone, so a saved day index stays valid when the zone changes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = UTC
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


_FIXED = re.compile(r"UTC([+-])(\d{2}):(\d{2})")


def zone(name: str, key: str = "timezone") -> tzinfo:
    """The IANA time zone `name` ("Europe/Berlin", "UTC"), or a fixed offset without daylight
    saving time, "UTC+05:30" (what `fixed_offset_name` writes); ValueError naming `key` for
    anything else."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{key}: expected an IANA time zone name such as 'Europe/Berlin', got {name!r}")
    fixed = _FIXED.fullmatch(name.strip())
    if fixed and int(fixed[2]) < 24 and int(fixed[3]) < 60:
        sign = -1 if fixed[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(fixed[2]), minutes=int(fixed[3])), name.strip())
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a path-like or malformed key
        raise ValueError(
            f"{key}: unknown time zone {name!r} (an IANA name such as 'Europe/Berlin')"
        ) from None


def fixed_offset_name(offset_s: float) -> str:
    """ "UTC+HH:MM" for a fixed offset of whole minutes (less than a day either way)."""
    minutes = round(offset_s / 60.0)
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_hhmm(text: str, key: str) -> int:
    """Minutes after local midnight for "HH:MM"; ValueError naming `key` for anything else."""
    try:
        hh, mm = str(text).split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"{key}: expected a time as HH:MM, got {text!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"{key}: {text!r} is not a time of day (00:00-23:59)")
    return h * 60 + m


def local(t: float, tz: tzinfo) -> datetime:
    """The local date and wall-clock time of unix time `t` in `tz`."""
    return datetime.fromtimestamp(t, tz)


def day_of(t: float, tz: tzinfo) -> int:
    """The local calendar day (days since 1970-01-01) of unix time `t`."""
    return datetime.fromtimestamp(t, tz).toordinal() - _EPOCH_ORDINAL


def minute_of_day(t: float, tz: tzinfo) -> float:
    """Minutes after local midnight on the wall clock (0 to 1440); in the hour a DST change
    repeats, both passes read the same wall-clock minutes."""
    d = datetime.fromtimestamp(t, tz)
    return d.hour * 60.0 + d.minute + (d.second + d.microsecond / 1e6) / 60.0


def day_start(day: int, tz: tzinfo) -> float:
    """Unix time of local midnight starting `day` (where a DST change skips midnight, the first
    instant of that date)."""
    return at(day, 0.0, tz)


def at(day: int, minute: float, tz: tzinfo) -> float:
    """Unix time of the wall-clock time `minute` minutes after midnight of local `day` (past 1440
    it runs into the next days). A wall time a DST change skips is read with the offset before
    the change (as `zoneinfo` does with fold=0), which lands just after the gap."""
    whole, rest = divmod(minute, 1440.0)
    d = date.fromordinal(day + int(whole) + _EPOCH_ORDINAL)
    wall = datetime.combine(d, time(), tz) + timedelta(minutes=rest)  # wall-clock arithmetic
    return wall.timestamp()


def in_window(minute: float, start: int, end: int) -> bool:
    """Whether a minute of day lies in [start, end), a window that may wrap past midnight."""
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def iso_date(day: int) -> str:
    """The date (YYYY-MM-DD) of a day index."""
    return date.fromordinal(day + _EPOCH_ORDINAL).isoformat()


def hhmm(minute: float) -> str:
    m = int(minute) % 1440
    return f"{m // 60:02d}:{m % 60:02d}"
