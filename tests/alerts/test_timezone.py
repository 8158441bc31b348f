"""Local time comes from a zone: quiet hours, days, the daily cap and the day/night baseline follow
both 2026 daylight-saving changes in Europe/Berlin and America/New_York, with and without a restart
(state saved to JSON and restored) across the change."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from alerts_world import MIN, minutes, of_type, run, stressed

from alerts.daily import DayBook
from alerts.engine import AlertEngine, Decision
from alerts.policy import Policy
from alerts.prompt import Prompt
from alerts.settings import AlertSettings
from alerts.timeofday import day_of, day_start, iso_date, minute_of_day
from processing.baseline import Baseline

HOUR = 3600.0
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
# The 2026 changes: (zone, local date of the change, length of that local day in hours).
CHANGES = [
    (BERLIN, "2026-03-29", 23),  # 02:00 CET -> 03:00 CEST
    (BERLIN, "2026-10-25", 25),  # 03:00 CEST -> 02:00 CET
    (NEW_YORK, "2026-03-08", 23),  # 02:00 EST -> 03:00 EDT
    (NEW_YORK, "2026-11-01", 25),  # 02:00 EDT -> 01:00 EST
]


def wall(zone: str, text: str) -> float:
    """Unix time of a local wall-clock time "YYYY-MM-DD HH:MM" (not one a change skips)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def restarted(engine: AlertEngine) -> AlertEngine:
    """The engine as a restart brings it back: through JSON and the settings of the new start."""
    return AlertEngine.from_dict(json.loads(json.dumps(engine.to_dict())), engine.settings)


@pytest.mark.parametrize("zone,date,hours", CHANGES)
@pytest.mark.parametrize("restart", [False, True])
def test_a_day_with_a_clock_change_is_23_or_25_hours_long(zone, date, hours, restart):
    settings = AlertSettings(timezone=zone)
    start = wall(zone, f"{date} 00:00")
    day = day_of(start, settings.tz)
    assert iso_date(day) == date and day_start(day, settings.tz) == start
    assert day_start(day + 1, settings.tz) - start == hours * HOUR
    eng = AlertEngine("p", settings)
    readings = minutes(start - MIN, hours * 60 + 1)  # every minute from midnight to the next midnight
    out = run(eng, readings[: len(readings) // 2])
    if restart:
        eng = restarted(eng)
    out += run(eng, readings[len(readings) // 2 :])
    (summary,) = [o for o in out if not isinstance(o, Decision | Prompt)]
    assert summary.date == date
    assert summary.worn_min == pytest.approx(hours * 60 - 1)  # the first reading counts no time


@pytest.mark.parametrize("restart", [False, True])
def test_quiet_hours_keep_their_wall_clock_times_after_the_spring_change(restart):
    """Started in winter (CET); quiet hours 03:00-05:00 hold at 03:00 CEST, not at 04:00 CEST."""
    settings = AlertSettings(timezone=BERLIN, quiet_hours=("03:00", "05:00"), sleep_window=("01:00", "02:00"))
    eng = AlertEngine("p", settings)
    run(eng, minutes(wall(BERLIN, "2026-03-28 20:00"), 60))  # Saturday evening, before the change
    if restart:
        eng = restarted(eng)
    out = run(eng, minutes(wall(BERLIN, "2026-03-29 03:00") - 31 * MIN, 30))
    out += run(eng, minutes(wall(BERLIN, "2026-03-29 03:00") - MIN, 50, stressed))
    assert not of_type(out, Prompt)
    held = of_type(out, Decision, what="suppressed")
    assert held and "quiet hours (03:00-05:00)" in held[0].reason
    # at 05:00 CEST the quiet hours are over and the same stress gives a prompt
    out = run(eng, minutes(wall(BERLIN, "2026-03-29 05:00") - MIN, 20, stressed))
    (p,) = of_type(out, Prompt)
    assert minute_of_day(p.time, settings.tz) >= 5 * 60


@pytest.mark.parametrize("restart", [False, True])
def test_the_daily_cap_counts_the_whole_25_hour_day(restart):
    """New York, 1 Nov 2026: three prompts that day; at 23:30 EST the cap still holds (with the
    summer offset kept from the morning it would already be 00:30 of the next day)."""
    settings = AlertSettings(timezone=NEW_YORK, daily_cap=3, quiet_hours=("00:00", "00:00"))
    policy = Policy(settings)
    for hhmm in ("00:30", "08:00", "14:00"):
        policy.sent(wall(NEW_YORK, f"2026-11-01 {hhmm}"))
    if restart:
        saved = json.loads(json.dumps(policy.to_dict()))
        policy = Policy(settings)
        policy.restore(saved)
    late = wall(NEW_YORK, "2026-11-01 23:30")
    assert policy.blocked(late, "acute") == ("cap", "daily cap (3 prompts) reached")
    assert policy.blocked(wall(NEW_YORK, "2026-11-02 00:30"), "acute") is None


@pytest.mark.parametrize(
    "zone,before,after,period",
    [
        (BERLIN, "2026-03-28 22:30", "2026-03-29 22:30", "night"),
        (BERLIN, "2026-10-24 21:30", "2026-10-25 21:30", "day"),
        (NEW_YORK, "2026-03-07 22:30", "2026-03-08 22:30", "night"),
        (NEW_YORK, "2026-10-31 06:30", "2026-11-01 06:30", "night"),
    ],
)
def test_the_baseline_period_follows_the_wall_clock_across_a_change_and_a_restart(
    zone, before, after, period
):
    """Night is 22:00-07:00 local on both sides of the change, and a baseline saved before it and
    restored after it agrees (row 4 of the field defects: a restored baseline kept the UTC offset it
    was saved with, so 22:30 CEST counted as day)."""
    b = Baseline(ZoneInfo(zone))
    assert b.period(wall(zone, before)) == period
    assert b.period(wall(zone, after)) == period
    restored = Baseline.from_dict(json.loads(json.dumps(b.to_dict())), ZoneInfo(zone))
    assert restored.period(wall(zone, after)) == period


def test_an_hour_repeated_in_the_autumn_is_counted_once_in_the_night():
    """Sleep blocks are UTC-aligned: the repeated hour 02:00-03:00 (Berlin, 25 Oct) falls into 24
    blocks, not 12 blocks filled twice."""
    book = DayBook(AlertSettings(timezone=BERLIN, sleep_window=("00:00", "06:00")))
    for r in minutes(wall(BERLIN, "2026-10-25 00:00"), 7 * 60):
        book.feed(r)
    day = day_of(wall(BERLIN, "2026-10-25 12:00"), ZoneInfo(BERLIN))
    assert len(book.nights[day]) == 7 * 12  # 7 real hours (00:00-06:00 local) of 5-minute blocks


def test_a_zone_name_the_tz_database_does_not_know_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="timezone: unknown time zone 'Europe/Berln'"):
        AlertSettings(timezone="Europe/Berln")
