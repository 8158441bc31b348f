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


def annotate(day: DailySummary, history: list[DailySummary], s: AlertSettings) -> None:
    """Fill `day`'s chronic fields (week mean, bands, below/above) from the closed days before it."""
    prior = [h for h in history if day.day - s.baseline_days <= h.day < day.day and h.valid]
    hrv_band = band(
        [h.night_ln_rmssd for h in prior if h.night_ln_rmssd is not None], s.swc_sd, HRV_MIN_HALF_WIDTH
    )
    load_band = band(
        [h.stress_load for h in prior if h.stress_load is not None], s.load_band_sd, LOAD_MIN_HALF_WIDTH
    )
    week = [h for h in prior if h.day > day.day - 7] + ([day] if day.valid else [])
    week_values = [h.night_ln_rmssd for h in week if h.night_ln_rmssd is not None]
    day.hrv_week_mean = (
        round(float(np.mean(week_values)), 4) if len(week_values) >= s.week_min_valid else None
    )
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


def status(history: list[DailySummary], s: AlertSettings) -> dict:
    """What a dashboard shows: calibrating or not, valid days so far, and the latest bands."""
    n = valid_days(history)
    last = history[-1] if history else None
    return {
        "calibrating": n < s.warmup_days,
        "valid_days": n,
        "warmup_days": s.warmup_days,
        "hrv_week_mean": last.hrv_week_mean if last else None,
        "hrv_band": last.hrv_band if last else None,
        "stress_load": last.stress_load if last else None,
        "load_band": last.load_band if last else None,
    }
