"""Local clock arithmetic on unix seconds without reading a clock: day index, minute of day, date, windows."""

from __future__ import annotations

DAY_S = 86400.0


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


def local_s(t: float, utc_offset_min: int) -> float:
    return t + utc_offset_min * 60.0


def day_of(t: float, utc_offset_min: int) -> int:
    """The local calendar day (days since 1970-01-01 local) of unix time `t`."""
    return int(local_s(t, utc_offset_min) // DAY_S)


def minute_of_day(t: float, utc_offset_min: int) -> float:
    return (local_s(t, utc_offset_min) % DAY_S) / 60.0


def day_start(day: int, utc_offset_min: int) -> float:
    """Unix time of local midnight starting `day`."""
    return day * DAY_S - utc_offset_min * 60.0


def at(day: int, minute: float, utc_offset_min: int) -> float:
    """Unix time of local `minute` after midnight of `day`."""
    return day_start(day, utc_offset_min) + minute * 60.0


def in_window(minute: float, start: int, end: int) -> bool:
    """Whether a minute of day lies in [start, end), a window that may wrap past midnight."""
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def iso_date(day: int) -> str:
    """The proleptic Gregorian date of a day index (H. Hinnant's civil_from_days algorithm)."""
    z = day + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return f"{y:04d}-{m:02d}-{d:02d}"


def hhmm(minute: float) -> str:
    m = int(minute) % 1440
    return f"{m // 60:02d}:{m % 60:02d}"
