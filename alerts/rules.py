"""The pattern rules: acute sustained stress at rest (N of the last M minutes) and chronic patterns over days.

Acute (ours, in the spirit of sustained-stress detection in wearables, e.g. Garmin/Firstbeat
stress levels over minutes rather than single readings; cStress, Hovsepian et al. 2015, Proc
UbiComp 2015:493, smoothed minute-level stress before acting): a prompt is considered
when the person was `stressed` at rest, with good signal, for >= N of the last M minutes (default
10 of 15), the current reading is itself at rest and good, it is not in the sleep window, and no
exercise was marked done in the last `after_done_min` minutes. `active` and `recovery` minutes
never count as stressed (exercise lowers HRV for physical reasons: Michael et al. 2017, Front
Physiol 8:301).

Chronic: (a) the 7-day lnRMSSD mean below the normal range on the last `hrv_run_days` (3) days
that have an lnRMSSD of their own (consecutive days with all-day wear; the last 3 valid mornings
with morning readings, a missed morning being a gap), or (b) the daily stress load above its
normal range on >= 3 of the last 5 valid days; each never during its warm-up (alerts/baselines.py
has the sources).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from alerts.baselines import hrv_value, hrv_warmed_up, posture_of, valid_days
from alerts.daily import DailySummary
from alerts.settings import AlertSettings
from alerts.timeofday import in_window, minute_of_day
from processing.reading import Activity, Reading, StressState


@dataclass(frozen=True)
class Finding:
    """A rule that fired: its name, a sentence with the numbers, and the score it concerns."""

    rule: str
    reason: str
    stress_score: float | None = None


class AcuteRule:
    """Sliding N-of-M-minutes count of stressed rest time; one instance per person."""

    def __init__(self, settings: AlertSettings):
        self.settings = settings
        self.sleep = settings.window("sleep_window")
        self.recent: deque[list] = deque()  # [time, minutes, stressed, score]
        self.last_time: float | None = None

    def feed(self, r: Reading, required_min: float, last_done: float | None) -> Finding | None:
        """Add a reading; a Finding when the rule holds now with `required_min` stressed minutes."""
        s = self.settings
        w = 0.0 if self.last_time is None else min((r.time - self.last_time) / 60.0, 1.0)
        self.last_time = r.time
        good = r.quality >= s.min_quality and r.activity == Activity.REST
        asleep = in_window(minute_of_day(r.time, s.tz), *self.sleep)
        stressed = good and not asleep and r.state == StressState.STRESSED
        self.recent.append([r.time, w, stressed, r.stress_score if stressed else None])
        horizon = r.time - s.acute_m_min * 60.0
        while self.recent and self.recent[0][0] <= horizon:
            self.recent.popleft()
        if not good or asleep or r.state == StressState.UNKNOWN:
            return None
        if last_done is not None and r.time - last_done < s.after_done_min * 60.0:
            return None
        minutes = sum(x[1] for x in self.recent if x[2])
        if minutes < required_min:
            return None
        scores = [x[3] for x in self.recent if x[3] is not None]
        score = sum(scores) / len(scores) if scores else None
        return Finding(
            "acute",
            f"You have been stressed for {minutes:.0f} of the last {s.acute_m_min:.0f} minutes at rest"
            + (f" (stress score {score:.0f})." if score is not None else "."),
            None if score is None else round(score, 1),
        )

    def to_dict(self) -> dict:
        return {"recent": [list(x) for x in self.recent], "last_time": self.last_time}

    def restore(self, data: dict) -> None:
        self.recent = deque(list(x) for x in data["recent"])
        self.last_time = data["last_time"]


def chronic(history: list[DailySummary], s: AlertSettings) -> Finding | None:
    """The chronic finding as of the last closed day in `history` (oldest first), or None."""
    return chronic_hrv(history, s) or chronic_load(history, s)


def chronic_hrv(history: list[DailySummary], s: AlertSettings) -> Finding | None:
    """(a), judged as of the last day of `history`, which must have an lnRMSSD of its own (from the
    source alerts/baselines.py chose for it; a day without one brings nothing new to judge).

    All-day wear (the night): the 7-day mean below its limit (the band's lower edge minus
    `hrv_margin_se` standard errors of the week's mean) on the last `hrv_run_days` days.

    Morning readings: the 7-day mean below the band's lower edge, confirmed by the last
    `hrv_run_days` valid mornings, whose mean must lie below that edge by more than
    `morning_margin_se` standard errors of such a mean (SD / sqrt(3), the SD from the band). Ours,
    measured with benchmarks/morning.py (simulated months beat by beat through the protocol, 2
    missed mornings a week, spoiled readings retaken; a drop of 0.3, 2.5 day-to-day SDs): the
    night's rule applied to the valid mornings found the drop a median 5 valid mornings after the
    7-day mean left the band (at most 11; within 3 in 2 of 10 runs): a 7-day mean moves by 1/7 of
    a drop per morning, and the margin and the 3-day run come on top. The 3-morning confirmation
    at 2.0 SE: a median 2.5 (at most 4, within 3 in 9 of 10 runs; over 40 seeds median 2, at most
    6, 33 within 3), and no false alarm in 40 x 14 stable weeks; at 1.645 SE 3 false alarms over
    those 40 seeds, at 2.33 SE a median 3 over 10."""
    if not history:
        return None
    last = history[-1]
    source = last.hrv_source or "night"
    if not hrv_warmed_up(history, source, s):
        return None
    posture = posture_of(last, history[:-1]) if source == "morning" else None
    run = [h for h in history if hrv_value(h, source, posture) is not None][-s.hrv_run_days :]
    if len(run) < s.hrv_run_days or run[-1] is not last:
        return None
    if source == "night":
        if not all(h.hrv_below for h in run):
            return None
        return Finding(
            "chronic_hrv",
            f"Your 7-day average night-time HRV (lnRMSSD {last.hrv_week_mean:.2f}) has been below your "
            f"normal range ({last.hrv_band[0]:.2f}-{last.hrv_band[1]:.2f}) "
            f"for {s.hrv_run_days} days in a row.",
        )
    band = last.hrv_band
    if band is None or last.hrv_week_mean is None or last.hrv_week_mean >= band[0]:
        return None
    sd = (band[1] - band[0]) / (2 * s.swc_sd) if s.swc_sd > 0 else 0.0
    recent = sum(hrv_value(h, source, posture) for h in run) / len(run)
    if recent >= band[0] - s.morning_margin_se * sd / len(run) ** 0.5:
        return None
    return Finding(
        "chronic_hrv",
        f"Your 7-day average morning HRV (lnRMSSD {last.hrv_week_mean:.2f}) is below your normal range "
        f"({band[0]:.2f}-{band[1]:.2f}), and your last {len(run)} morning readings averaged {recent:.2f}.",
    )


def chronic_load(history: list[DailySummary], s: AlertSettings) -> Finding | None:
    """(b): the stress load above its band on >= n of the last m judged days."""
    if not history or valid_days(history) < s.warmup_days:
        return None
    n, m = s.load_days
    judged = [h for h in history if h.load_above is not None][-m:]
    above = [h for h in judged if h.load_above]
    if len(above) >= n:
        mean_load = sum(h.stress_load for h in above) / len(above)
        return Finding(
            "chronic_load",
            f"You were stressed during {100 * mean_load:.0f}% of your resting time on {len(above)} of the "
            f"last {len(judged)} days, above your usual range (up to {100 * above[-1].load_band[1]:.0f}%).",
        )
    return None
