"""Chronic baselines: the 7-day lnRMSSD mean and the daily stress load against a 60-day normal range.

Practice of the HRV literature: the 7-day rolling mean of the morning/night lnRMSSD is what
moves with accumulated load, not single days (Plews et al. 2012, Eur J Appl Physiol 112:3729;
Plews et al. 2013, Sports Med 43:773), judged against a personal normal range of mean +- 0.5 SD,
0.5 SD being the smallest worthwhile change (Buchheit 2014, Front Physiol 5:73); HRV4Training
shows the 7-day mean against the normal range of the last 60 days. Here the range comes from
the valid days of the `baseline_days` before the day judged (ours: today is judged against the
past), and a 7-day mean needs >= `week_min_valid` valid days in the week (Plews et al. 2014,
IJSPP 9:783: 3 measurements a week suffice). The stress load (alerts/daily.py) is judged the same
way with `load_band_sd` SD.

`hrv_below` (what the chronic rule uses) asks more than "under the band" (ours): a 7-day mean of
an unchanged person with daily SD s has a standard error of s/sqrt(7), so it lies under mean -
0.5 s on ~9 % of days (P(Z < -0.5 sqrt 7)). On simulated stable 8-week runs (collector.simulator
days, seeds 0-11) the plain rule gave a false chronic finding in 6 of 12 runs (26 of 504 judged
days); with the margin in none, while a chronic period (nights and rest 0.3 lower, more stress)
was still found on its 3rd day (2nd in one run) in all 12 seeds, and a drop of the nights alone
by 0.45 (3 SD) on its 4th-8th day. The load band at 1 SD gave a false finding in 1 of the 12
stable runs (3 days), at 2 SD in none. The limit `hrv_limit` is therefore the band's lower edge minus
`hrv_margin_se` (1.645) standard errors of the week's mean: the drop exceeds the smallest
worthwhile change with ~95 % confidence, in the manner of Hopkins's magnitude-based inference
(Hopkins 2000, Sports Med 30:1). The band itself (`hrv_band`) is reported as the literature draws it.

Warm-up: before `warmup_days` valid days no chronic rule fires and `status` says "calibrating"
(Oura waits 5 days, Whoop 14, HRV4Training about 2 weeks of its 60-day window; 14 is ours).

Two sources of the day's lnRMSSD (`hrv_source`, alerts/settings.py): the night of all-day wear
(valid days only), or the morning reading (processing/morning.py: a day with a valid reading
counts whatever the strap's wear that day). They are never mixed in one band; with "auto" the
readings are the source once one exists in the window. For readings: only those in the posture
of the day judged enter its band (lying and seated values differ; the person sets one), a
missing morning is a gap (the 7-day mean is over the mornings there are, >= `week_min_valid` of
them), the lnRMSSD rule's warm-up counts valid mornings, and the week's coefficient of variation
of lnRMSSD (`hrv_cv_7d`, SD / mean in %) is reported with the mean: Plews et al. 2012 followed
it next to the 7-day mean (lnRMSSD_cv), and a rising CV is read as the person coping less well
with load (Flatt & Esco 2016, J Strength Cond Res 30:378; Elite HRV shows it next to the 7-day
mean). It is reported, not a rule.
"""

from __future__ import annotations

import numpy as np

from alerts.daily import DailySummary
from alerts.settings import AlertSettings

MIN_BAND_DAYS = 7  # fewer prior days give no meaningful SD
HRV_MIN_HALF_WIDTH = 0.02  # ln units; ours: a floor so a flat history does not make every day "below"
LOAD_MIN_HALF_WIDTH = 0.02  # share of rest time (2 points); same reason


def band(values: list[float], k_sd: float, floor: float) -> list[float] | None:
    """[mean - k SD, mean + k SD] of `values` (SD with ddof=1), half-width at least `floor`."""
    if len(values) < MIN_BAND_DAYS:
        return None
    arr = np.asarray(values, dtype=float)
    half = max(k_sd * float(arr.std(ddof=1)), floor)
    mean = float(arr.mean())
    return [round(mean - half, 4), round(mean + half, 4)]


def hrv_source(day: DailySummary, history: list[DailySummary], s: AlertSettings) -> str:
    """Which lnRMSSD the chronic rule judges `day` by: `s.hrv_source`, or with "auto" the morning
    readings when there is one in the baseline window (the day included), else the night."""
    if s.hrv_source != "auto":
        return s.hrv_source
    window = [h for h in history if day.day - s.baseline_days <= h.day < day.day] + [day]
    return "morning" if any(h.morning_ln_rmssd is not None for h in window) else "night"


def posture_of(day: DailySummary, history: list[DailySummary]) -> str | None:
    """The posture of the readings `day` is judged with: its own reading's, else the latest one's."""
    for h in [day, *reversed(history)]:
        if h.morning_posture is not None:
            return h.morning_posture
    return None


def hrv_value(h: DailySummary, source: str, posture: str | None) -> float | None:
    """The day's lnRMSSD from `source`: the night of a valid day, or a morning reading in `posture`."""
    if source == "morning":
        return h.morning_ln_rmssd if h.morning_posture == posture else None
    return h.night_ln_rmssd if h.valid else None


def coefficient_of_variation(values: list[float]) -> float:
    """SD (ddof = 1) / mean of `values`, in percent."""
    arr = np.asarray(values, dtype=float)
    return 100.0 * float(arr.std(ddof=1)) / float(arr.mean())


def annotate(day: DailySummary, history: list[DailySummary], s: AlertSettings) -> None:
    """Fill `day`'s chronic fields (source, week mean and CV, bands, below/above) from the closed
    days before it."""
    prior = [h for h in history if day.day - s.baseline_days <= h.day < day.day]
    source = hrv_source(day, history, s)
    posture = posture_of(day, history) if source == "morning" else None

    def values(days: list[DailySummary]) -> list[float]:
        return [v for h in days if (v := hrv_value(h, source, posture)) is not None]

    hrv_band = band(values(prior), s.swc_sd, HRV_MIN_HALF_WIDTH)
    valid = [h for h in prior if h.valid]
    load_band = band(
        [h.stress_load for h in valid if h.stress_load is not None], s.load_band_sd, LOAD_MIN_HALF_WIDTH
    )
    week_values = values([h for h in prior if h.day > day.day - 7] + [day])
    enough = len(week_values) >= s.week_min_valid
    day.hrv_source = source
    day.hrv_week_mean = round(float(np.mean(week_values)), 4) if enough else None
    day.hrv_cv_7d = round(coefficient_of_variation(week_values), 3) if enough else None
    day.hrv_band = hrv_band
    day.hrv_limit = None
    if hrv_band is not None and day.hrv_week_mean is not None:
        sd = (hrv_band[1] - hrv_band[0]) / (2 * s.swc_sd) if s.swc_sd > 0 else 0.0
        day.hrv_limit = round(hrv_band[0] - s.hrv_margin_se * sd / len(week_values) ** 0.5, 4)
    day.hrv_below = None if day.hrv_limit is None else day.hrv_week_mean < day.hrv_limit
    day.load_band = load_band
    day.load_above = (
        None
        if load_band is None or not day.valid or day.stress_load is None
        else day.stress_load > load_band[1]
    )


def valid_days(history: list[DailySummary]) -> int:
    return sum(1 for h in history if h.valid)


def valid_mornings(history: list[DailySummary]) -> int:
    return sum(1 for h in history if h.morning_ln_rmssd is not None)


def hrv_warmed_up(history: list[DailySummary], source: str, s: AlertSettings) -> bool:
    """Whether the lnRMSSD rule has had its warm-up: `warmup_days` valid mornings for readings,
    valid days for the night."""
    n = valid_mornings(history) if source == "morning" else valid_days(history)
    return n >= s.warmup_days


def status(history: list[DailySummary], s: AlertSettings) -> dict:
    """What a dashboard shows: calibrating or not (neither rule past its warm-up), valid days and
    valid mornings so far, and the latest bands."""
    n = valid_days(history)
    mornings = valid_mornings(history)
    last = history[-1] if history else None
    return {
        "calibrating": n < s.warmup_days and mornings < s.warmup_days,
        "valid_days": n,
        "valid_mornings": mornings,
        "warmup_days": s.warmup_days,
        "hrv_source": last.hrv_source if last else None,
        "hrv_week_mean": last.hrv_week_mean if last else None,
        "hrv_cv_7d": last.hrv_cv_7d if last else None,
        "hrv_band": last.hrv_band if last else None,
        "stress_load": last.stress_load if last else None,
        "load_band": last.load_band if last else None,
    }
