"""Daily summaries: minutes worn, time per state and activity, stress load and the night (or morning) lnRMSSD.

Each reading counts for the time since the previous one (at most `MAX_READING_MIN`, so a strap
taken off is not counted as worn). Definitions:
- stress load: the share of awake, worn rest time (good signal, outside the sleep window) whose
  state is `stressed`, 0-1; and a load integral, sum over that time of max(score - 50, 0) / 50
  in minutes (ours: like the time-in-zone of Garmin's and Firstbeat's stress levels, weighted by
  how far above the personal middle the score was);
- the night value: mean lnRMSSD over detected sleep, as Oura and Whoop report nightly HRV (ln of
  RMSSD in ms). Sleep = 5-minute blocks in the configured sleep window at rest, with a steady HR
  (SD <= `STEADY_HR_SD` bpm within the block) that is low (<= the night's lower-quartile block
  HR + `LOW_HR_MARGIN` bpm; ours: awake time in bed raises HR); at least `min_sleep_min` minutes
  of them are needed. Otherwise the morning value: the mean over the first `morning_min` calm or
  neutral rest minutes after the window ends (the waking measurement of Plews et al. 2013, Sports
  Med 43:773). `night_source` says which ("sleep" / "morning"), or None when neither exists.
A day is `valid` only with enough data (settings `min_worn_min`, `min_rest_min`); an invalid day
keeps its numbers but never feeds the stress-load band or rule, nor (through its night value) the
lnRMSSD band.

The morning reading (processing/morning.py, a short measurement the person takes on waking) is a
second source of the day's lnRMSSD, kept apart from the night value: `morning_ln_rmssd`,
`morning_hr_bpm`, `morning_rmssd_ms`, `morning_time`, `morning_posture` and `morning_trigger` of
the day's first valid reading, and `morning_failed`, the readings that failed that day. A day
with a valid morning reading is a valid day for the lnRMSSD band whatever the strap's wear
(alerts/baselines.py). (Not to be confused with `night_source` "morning", the waking rest of
all-day wear that stands in for a night without detected sleep.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from alerts.settings import AlertSettings
from alerts.timeofday import day_of, in_window, iso_date, minute_of_day
from processing.reading import Activity, Reading, StressState

MAX_READING_MIN = 1.0
BLOCK_S = 300.0
MIN_BLOCK_MIN = 3.0
STEADY_HR_SD = 3.0
LOW_HR_MARGIN = 8.0


@dataclass
class DailySummary:
    """One person's day (local calendar day `day`, date `date`); minutes unless named otherwise."""

    day: int
    date: str
    valid: bool = False
    invalid_reason: str | None = None
    worn_min: float = 0.0
    rest_min: float = 0.0
    stressed_rest_min: float = 0.0
    state_min: dict = field(default_factory=lambda: {s.value: 0.0 for s in StressState})
    activity_min: dict = field(default_factory=lambda: {a.value: 0.0 for a in Activity})
    stress_load: float | None = None
    load_integral: float = 0.0
    night_ln_rmssd: float | None = None
    night_source: str | None = None
    sleep_min: float = 0.0
    prompts: int = 0
    answered: int = 0
    done: int = 0
    effects: list = field(default_factory=list)
    # The day's morning reading (the first valid one), and how many failed.
    morning_ln_rmssd: float | None = None
    morning_hr_bpm: float | None = None
    morning_rmssd_ms: float | None = None
    morning_time: float | None = None
    morning_posture: str | None = None
    morning_trigger: str | None = None
    morning_failed: int = 0
    # Chronic bands as of this day (alerts/baselines.py fills them when the day closes). The
    # lnRMSSD ones come from `hrv_source`: "night" (all-day wear) or "morning" (the readings).
    hrv_source: str | None = None
    hrv_cv_7d: float | None = None
    hrv_week_mean: float | None = None
    hrv_band: list | None = None
    hrv_limit: float | None = None
    hrv_below: bool | None = None
    load_band: list | None = None
    load_above: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DailySummary:
        return cls(**data)


MORNING_FIELDS = (
    "morning_ln_rmssd",
    "morning_hr_bpm",
    "morning_rmssd_ms",
    "morning_time",
    "morning_posture",
    "morning_trigger",
)


class DayBook:
    """Accumulates the open day (and the night that ends in it) from readings in time order."""

    def __init__(self, settings: AlertSettings):
        self.settings = settings
        self.sleep = settings.window("sleep_window")
        self.open: DailySummary | None = None
        self.last_time: float | None = None
        self.nights: dict[int, dict[int, list[float]]] = {}  # wake day -> block -> [w, hr, hr2, ln]
        self.mornings: dict[int, list[float]] = {}  # day -> [w, ln*w]

    def feed(self, r: Reading) -> list[DailySummary]:
        """Add one reading; returns the days this reading closed (usually none)."""
        s = self.settings
        tz = s.tz
        if self.last_time is not None and r.time <= self.last_time:
            return []
        closed = self.roll_to(day_of(r.time, tz))
        w = 0.0 if self.last_time is None else min((r.time - self.last_time) / 60.0, MAX_READING_MIN)
        self.last_time = r.time
        d = self.open
        d.worn_min += w
        d.state_min[r.state.value] += w
        d.activity_min[r.activity.value] += w
        minute = minute_of_day(r.time, tz)
        good = r.quality >= s.min_quality and r.ln_rmssd is not None
        at_rest = r.activity == Activity.REST and good
        if in_window(minute, *self.sleep):
            wake = d.day + 1 if self.sleep[0] > self.sleep[1] and minute >= self.sleep[0] else d.day
            # UTC-aligned blocks: every zone's offset is a multiple of 5 minutes, so they are the
            # local ones too, and the hour a DST change repeats does not fall into the same blocks.
            block = self.nights.setdefault(wake, {}).setdefault(int(r.time // BLOCK_S), [0.0] * 5)
            if at_rest:
                block[0] += w
                block[1] += w * r.hr_bpm
                block[2] += w * r.hr_bpm**2
                block[3] += w * r.ln_rmssd
            elif r.activity != Activity.REST:
                block[4] = 1.0  # moved: this block is not sleep
            return closed
        if at_rest and r.state != StressState.UNKNOWN:
            d.rest_min += w
            if r.state == StressState.STRESSED:
                d.stressed_rest_min += w
            if r.stress_score is not None:
                d.load_integral += max(r.stress_score - 50.0, 0.0) / 50.0 * w
        since_wake = (minute - self.sleep[1]) % 1440
        morning = self.mornings.setdefault(d.day, [0.0, 0.0])
        if (
            since_wake < s.morning_window_min
            and at_rest
            and r.state in (StressState.CALM, StressState.NEUTRAL)
            and morning[0] < s.morning_min
        ):
            morning[0] += w
            morning[1] += w * r.ln_rmssd
        return closed

    def roll_to(self, day: int) -> list[DailySummary]:
        """Close every open day before `day` (the daily rollover is driven by reading times)."""
        if self.open is None:
            self.open = DailySummary(day, iso_date(day))
            return []
        closed = []
        while self.open.day < day:
            closed.append(self.close())
            nxt = self.open.day + 1
            self.open = DailySummary(nxt, iso_date(nxt))
        return closed

    def move_back(self, day: int, reopened: DailySummary | None) -> None:
        """The clock was set back to `day`, before the open day (alerts/engine.py
        `_clock_went_back` says why): the open day, and the nights and mornings dated with it,
        move to `day`; into `reopened` (the summary already closed for `day`, if any) when given."""
        d = self.open
        shift = day - d.day
        if reopened is not None:  # it has its night and morning, judged when it closed
            self.nights.pop(d.day, None)
            self.mornings.pop(d.day, None)
        self.nights = move_dated(self.nights, day, shift, lambda a, b: {**a, **b})
        self.mornings = move_dated(self.mornings, day, shift, lambda a, b: [x + y for x, y in zip(a, b)])
        if reopened is None:
            d.day, d.date = day, iso_date(day)
            return
        for key in (
            "worn_min",
            "rest_min",
            "stressed_rest_min",
            "load_integral",
            "prompts",
            "answered",
            "done",
        ):
            setattr(reopened, key, getattr(reopened, key) + getattr(d, key))
        for key in ("state_min", "activity_min"):
            totals = getattr(reopened, key)
            for name, minutes in getattr(d, key).items():
                totals[name] = totals.get(name, 0.0) + minutes
        reopened.effects += d.effects
        reopened.morning_failed += d.morning_failed
        if reopened.morning_ln_rmssd is None:  # the first valid reading of the date stands
            for key in MORNING_FIELDS:
                setattr(reopened, key, getattr(d, key))
        reopened.valid, reopened.invalid_reason = False, None  # decided again when it closes
        self.open = reopened

    def close(self) -> DailySummary:
        """Finish the open day's numbers (night value, load, validity) and return it."""
        s, d = self.settings, self.open
        blocks = self.nights.pop(d.day, None)  # None for a day reopened (move_back): it keeps its night
        value, sleep_min = night_value(blocks or {}, s.min_sleep_min)
        if blocks is not None:
            d.sleep_min = round(sleep_min, 3)
        morning = self.mornings.pop(d.day, [0.0, 0.0])
        if value is not None:
            d.night_ln_rmssd, d.night_source = value, "sleep"
        elif morning[0] >= s.morning_min * 0.99:
            d.night_ln_rmssd, d.night_source = morning[1] / morning[0], "morning"
        d.stress_load = d.stressed_rest_min / d.rest_min if d.rest_min > 0 else None
        if d.worn_min < s.min_worn_min:
            d.invalid_reason = f"worn {d.worn_min:.0f} min, fewer than {s.min_worn_min:.0f}"
        elif d.rest_min < s.min_rest_min:
            d.invalid_reason = f"{d.rest_min:.0f} min of awake rest, fewer than {s.min_rest_min:.0f}"
        d.valid = d.invalid_reason is None
        for key in [k for k in self.nights if k < d.day]:
            del self.nights[key]
        return d

    def to_dict(self) -> dict:
        return {
            "open": self.open.to_dict() if self.open else None,
            "last_time": self.last_time,
            "nights": {str(k): {str(b): v for b, v in n.items()} for k, n in self.nights.items()},
            "mornings": {str(k): v for k, v in self.mornings.items()},
        }

    def restore(self, data: dict) -> None:
        self.open = DailySummary.from_dict(data["open"]) if data["open"] else None
        self.last_time = data["last_time"]
        self.nights = {int(k): {int(b): list(v) for b, v in n.items()} for k, n in data["nights"].items()}
        self.mornings = {int(k): list(v) for k, v in data["mornings"].items()}


def move_dated(by_day: dict, day: int, shift: int, merge) -> dict:
    """`by_day` with the entries dated after `day` moved by `shift` days (`merge` joins two)."""
    out: dict = {}
    for k, v in sorted(by_day.items()):
        key = k + shift if k > day else k
        out[key] = merge(out[key], v) if key in out else v
    return out


def night_value(blocks: dict[int, list[float]], min_sleep_min: float) -> tuple[float | None, float]:
    """Mean lnRMSSD over the sleep blocks of one night, and the minutes of sleep detected."""
    rows = []
    for w, hr, hr2, ln, moved in blocks.values():
        if moved or w < MIN_BLOCK_MIN:
            continue
        mean_hr = hr / w
        sd = max(hr2 / w - mean_hr**2, 0.0) ** 0.5
        if sd <= STEADY_HR_SD:
            rows.append((w, mean_hr, ln / w))
    if not rows:
        return None, 0.0
    arr = np.array(rows)
    low = arr[:, 1] <= np.quantile(arr[:, 1], 0.25) + LOW_HR_MARGIN
    minutes = float(arr[low, 0].sum())
    if minutes < min_sleep_min:
        return None, minutes
    return float(np.average(arr[low, 2], weights=arr[low, 0])), minutes


__all__ = ["MORNING_FIELDS", "DailySummary", "DayBook", "move_dated", "night_value"]
