"""The alert engine's settings, with the documented reason for every default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import tzinfo

from alerts.prompt import Exercise, snooze_minutes
from alerts.timeofday import in_window, parse_hhmm, zone

HRV_SOURCES = ("auto", "night", "morning")


@dataclass(frozen=True)
class AlertSettings:
    """Per-person settings. Times of day are local "HH:MM" on the wall clock of `timezone` (an
    IANA zone, so they follow daylight saving time; a window with equal start and end is empty:
    e.g. no quiet hours); durations in minutes; days are local calendar days (23 or 25 hours
    long when the clocks change).

    Acute rule: `stressed` for >= `acute_n_min` of the last `acute_m_min` minutes at rest
    (10 of 15: ours, long enough that a single tense moment or a flight of stairs does not count,
    short enough to catch a stressful meeting while it lasts).
    Policy (JITAI "vulnerable and receptive", Nahum-Shani et al. 2018, Ann Behav Med 52:446):
    `cooldown_min` 90 between prompts; `daily_cap` 3 (Apple Watch's default of breathe reminders
    per day; HeartSteps sent ~1.5 activity suggestions a day, Klasnja et al. 2019, Ann Behav Med
    53:573); no prompts in `quiet_hours`; acute prompts expire after `acute_expiry_min` (a
    prompt about a stress spike is stale after it), the chronic daily session at `session_time`
    after `session_expiry_min`.
    Snooze: the phone's `snooze` answer postpones the prompt by its `minutes`, or by
    `snooze_default_min` (15) when it gives none; either must lie in 1-240 minutes
    (`alerts.prompt.SNOOZE_MINUTES`, ours: shorter is no snooze, and a pending snooze holds every
    acute prompt, so a longer one would quietly turn them off; the reasons in alerts/prompt.py).
    Days: a day is valid with >= `min_worn_min` minutes worn and >= `min_rest_min` minutes of
    awake rest (ours: a stress load from less would be a guess). The night value needs
    `min_sleep_min` minutes of detected sleep in `sleep_window`, else the mean of the first
    `morning_min` calm rest minutes within `morning_window_min` after it (the morning reading of
    Plews et al. 2013, Sports Med 43:773).
    The lnRMSSD of the chronic rule comes from `hrv_source`: "night" (all-day wear: the night, or
    waking rest, of valid days), "morning" (the morning readings, processing/morning.py), or
    "auto" (the default: the readings once there is one in the `baseline_days` window, else the
    night; ours: a standardised reading is what the sources judge, and the two series are not
    mixed in one band).
    Chronic rules need `warmup_days` valid days (the lnRMSSD rule from readings: valid mornings) (14: Whoop's 14 days; HRV4Training asks ~2 weeks
    of a 60-day window; Oura's readiness needs 5) over a `baseline_days` window (60: HRV4Training).
    `swc_sd` 0.5 SD is the smallest worthwhile change (Plews et al. 2012, Eur J Appl Physiol
    112:3729; Buchheit 2014, Front Physiol 5:73); the HRV rule fires only when the 7-day mean is
    below the band by more than `hrv_margin_se` (1.645) standard errors of that mean (ours, see
    alerts/baselines.py); from morning readings it needs the 7-day mean below the band and the
    last 3 valid mornings' mean below it by `morning_margin_se` (2.0) standard errors (ours, see
    alerts/rules.py `chronic_hrv`); `load_band_sd` 2.0 SD for the stress load, the usual central-95 %
    reference interval (ours: with 0.5 or 1 SD a stable person exceeds the band on 16-30 % of
    days, so "3 of 5" would fire every few weeks by chance; figures in alerts/baselines.py).
    """

    timezone: str = "UTC"  # the service sets it from [service] timezone (default: the machine's zone)
    min_quality: float = 0.6
    acute_n_min: float = 10.0
    acute_m_min: float = 15.0
    after_done_min: float = 10.0  # no acute prompt this soon after an exercise marked done
    cooldown_min: float = 90.0
    daily_cap: int = 3
    quiet_hours: tuple[str, str] = ("22:00", "07:30")
    acute_expiry_min: float = 15.0
    snooze_default_min: float = 15.0
    session_time: str = "18:30"
    session_expiry_min: float = 120.0
    eagerness_step_min: float = 2.0  # extra stressed minutes needed per `not_stressed` in a context
    sleep_window: tuple[str, str] = ("23:00", "07:00")
    min_worn_min: float = 240.0
    min_rest_min: float = 60.0
    min_sleep_min: float = 60.0
    morning_min: float = 5.0
    morning_window_min: float = 180.0
    hrv_source: str = "auto"
    warmup_days: int = 14
    baseline_days: int = 60
    week_min_valid: int = 3
    swc_sd: float = 0.5
    hrv_margin_se: float = 1.645
    morning_margin_se: float = 2.0  # the last 3 valid mornings' confirmation (alerts/rules.py chronic_hrv)
    load_band_sd: float = 2.0
    hrv_run_days: int = 3
    load_days: tuple[int, int] = (3, 5)  # above the band on >= 3 of the last 5 valid days
    acute_exercises: tuple[str, ...] = ("cyclic sighing", "resonance breathing", "box breathing")
    chronic_exercises: tuple[str, ...] = ("resonance breathing (10 min)",)
    explore: float = 0.1  # exploration floor of the exercise choice
    extra_exercises: tuple[dict, ...] = ()  # more exercises: tables of the Exercise fields

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", zone(self.timezone))
        for key in ("quiet_hours", "sleep_window"):
            value = getattr(self, key)
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ValueError(f"{key}: expected [start, end] as two HH:MM times, got {value!r}")
            for v in value:
                parse_hhmm(v, key)
            object.__setattr__(self, key, tuple(value))
        if in_window(parse_hhmm(self.session_time, "session_time"), *self.window("quiet_hours")):
            raise ValueError(
                f"session_time: {self.session_time} is inside quiet_hours, so the session would never come"
            )
        if not 0 < self.acute_n_min <= self.acute_m_min:
            raise ValueError("acute_n_min: must be > 0 and <= acute_m_min")
        if self.daily_cap < 0:
            raise ValueError("daily_cap: must be >= 0")
        if len(self.load_days) != 2 or not 0 < self.load_days[0] <= self.load_days[1]:
            raise ValueError(f"load_days: expected [n, m] with 0 < n <= m, got {list(self.load_days)}")
        if self.hrv_source not in HRV_SOURCES:
            raise ValueError(f"hrv_source: must be one of {', '.join(HRV_SOURCES)}, got {self.hrv_source!r}")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError("explore: must be between 0 and 1")
        snooze_minutes(self.snooze_default_min, "snooze_default_min")
        object.__setattr__(self, "extra_exercises", tuple(self.extra_exercises))
        known = self.catalogue()
        for key in ("acute_exercises", "chronic_exercises"):
            names = getattr(self, key)
            unknown = [x for x in names if x not in known]
            if not names or unknown:
                raise ValueError(f"{key}: unknown exercise {unknown or names!r}; known: {', '.join(known)}")
            object.__setattr__(self, key, tuple(names))

    def catalogue(self) -> dict[str, Exercise]:
        """The built-in exercises (alerts/exercises.py) and `extra_exercises`, by name."""
        from alerts.exercises import CATALOGUE, custom

        out = dict(CATALOGUE)
        for spec in self.extra_exercises:
            ex = custom(spec, "extra_exercises")
            out[ex.name] = ex
        return out

    @property
    def tz(self) -> tzinfo:
        """The zone of `timezone`, for alerts/timeofday.py."""
        return self._tz  # type: ignore[attr-defined]

    def minutes(self, key: str) -> int:
        return parse_hhmm(getattr(self, key), key)

    def window(self, key: str) -> tuple[int, int]:
        a, b = getattr(self, key)
        return parse_hhmm(a, key), parse_hhmm(b, key)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> AlertSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown alert setting")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
