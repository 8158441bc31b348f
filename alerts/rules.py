"""The pattern rules: acute sustained stress at rest (N of the last M minutes) and chronic patterns over days.

Acute (ours, in the spirit of sustained-stress detection in wearables, e.g. Garmin/Firstbeat
stress levels over minutes rather than single readings; cStress, Hovsepian et al. 2015, Proc
UbiComp 2015:493, smoothed minute-level stress before acting): a prompt is considered
when the person was `stressed` at rest, with good signal, for >= N of the last M minutes (default
10 of 15), the current reading is itself at rest and good, it is not in the sleep window, and no
exercise was marked done in the last `after_done_min` minutes. `active` and `recovery` minutes
never count as stressed (exercise lowers HRV for physical reasons: Michael et al. 2017, Front
Physiol 8:301).

Chronic: (a) the 7-day lnRMSSD mean below the normal range on `hrv_run_days` (3) consecutive
days, or (b) the daily stress load above its normal range on >= 3 of the last 5 valid days;
never during the warm-up (alerts/baselines.py has the sources).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from alerts.baselines import valid_days
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
    if not history or valid_days(history) < s.warmup_days:
        return None
    last = history[-1]
    by_day = {h.day: h for h in history}
    run = [by_day.get(last.day - i) for i in range(s.hrv_run_days)]
    if all(h is not None and h.hrv_below for h in run):
        return Finding(
            "chronic_hrv",
            f"Your 7-day average night-time HRV (lnRMSSD {last.hrv_week_mean:.2f}) has been below your "
            f"normal range ({last.hrv_band[0]:.2f}-{last.hrv_band[1]:.2f}) "
            f"for {s.hrv_run_days} days in a row.",
        )
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
