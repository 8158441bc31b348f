"""The prompt policy: when a finding may become a prompt (JITAI: vulnerable and receptive).

Just-in-time adaptive interventions prompt when the person is vulnerable (a rule fired) and
receptive (Nahum-Shani et al. 2018, Ann Behav Med 52:446, doi:10.1007/s12160-016-9830-8). Here
receptive means, in this order of precedence:
- not in quiet hours (nothing is sent or queued then; a snoozed reminder falling in them is dropped);
- no snoozed reminder pending (the person asked to be reminded: that reminder comes instead);
- at least `cooldown_min` since the last prompt;
- fewer than `daily_cap` prompts today; while a chronic session is due today, acute prompts may
  use only `daily_cap - 1` so the session always fits.
A snoozed reminder ignores cooldown and cap (the person asked for it). The chronic daily session
comes at its set time: it ignores the cooldown and a pending snooze, not quiet hours or the cap.

Less eager after `not_stressed` (ours): the day is split into four 6-hour contexts (night,
morning, afternoon, evening). Each `not_stressed` answer to a prompt from a context adds
`eagerness_step_min` (2) minutes to the stressed minutes the acute rule needs in that context,
up to all M minutes; each `done` there takes 1 step back off (the person agreed it was stress).
Heuristic, in the spirit of HeartSteps' learning of receptivity (Liao et al. 2020, Proc ACM IMWUT
4:1): false alarms should make the engine quieter where they happen, not everywhere.
"""

from __future__ import annotations

from alerts.settings import AlertSettings
from alerts.timeofday import day_of, in_window, minute_of_day

CONTEXTS = ("night", "morning", "afternoon", "evening")


class Policy:
    """Per-person prompt bookkeeping: last prompt, prompts per day, snooze, eagerness, session."""

    def __init__(self, settings: AlertSettings):
        self.settings = settings
        self.quiet = settings.window("quiet_hours")
        self.last_prompt: float | None = None
        self.per_day: dict[int, int] = {}
        self.snooze: dict | None = None  # {"due": t, "of": prompt id}
        self.not_stressed: dict[str, int] = {c: 0 for c in CONTEXTS}
        self.steps: dict[str, int] = {c: 0 for c in CONTEXTS}
        self.session: dict | None = None  # {"day": d, "rule": ..., "reason": ...}

    def context(self, t: float) -> str:
        return CONTEXTS[int(minute_of_day(t, self.settings.tz) // 360)]

    def required_min(self, t: float) -> float:
        return self.required_by_context()[self.context(t)]

    def required_by_context(self) -> dict[str, float]:
        """Stressed minutes (of the last M) the acute rule needs, per context."""
        s = self.settings
        return {
            c: min(s.acute_m_min, s.acute_n_min + s.eagerness_step_min * k) for c, k in self.steps.items()
        }

    def quiet_now(self, t: float) -> bool:
        return in_window(minute_of_day(t, self.settings.tz), *self.quiet)

    def blocked(self, t: float, kind: str) -> tuple[str, str] | None:
        """Why a prompt of `kind` ("acute"/"chronic") may not go out at `t`: (which rule, a
        phrase with the numbers); None when it may."""
        s = self.settings
        if self.quiet_now(t):
            return "quiet", f"quiet hours ({s.quiet_hours[0]}-{s.quiet_hours[1]})"
        if kind == "acute" and self.snooze is not None:
            return "snooze", "a snoozed reminder is pending"
        if kind == "acute" and self.last_prompt is not None and t - self.last_prompt < s.cooldown_min * 60.0:
            left = (s.cooldown_min * 60.0 - (t - self.last_prompt)) / 60.0
            return "cooldown", f"cooldown ({left:.0f} of {s.cooldown_min:.0f} min left)"
        day = day_of(t, s.tz)
        cap = s.daily_cap
        if kind == "acute" and self.session is not None and self.session["day"] == day:
            cap -= 1
        if self.per_day.get(day, 0) >= cap:
            return "cap", f"daily cap ({s.daily_cap} prompts) reached"
        return None

    def sent(self, t: float) -> None:
        self.last_prompt = t
        day = day_of(t, self.settings.tz)
        self.per_day[day] = self.per_day.get(day, 0) + 1
        for old in [d for d in self.per_day if d < day - 1]:
            del self.per_day[old]

    def answered(self, prompt_time: float, action: str) -> None:
        c = self.context(prompt_time)
        if action == "not_stressed":
            self.not_stressed[c] += 1
            self.steps[c] += 1
        elif action == "done":
            self.steps[c] = max(0, self.steps[c] - 1)

    def to_dict(self) -> dict:
        return {
            "last_prompt": self.last_prompt,
            "per_day": {str(k): v for k, v in self.per_day.items()},
            "snooze": self.snooze,
            "not_stressed": dict(self.not_stressed),
            "steps": dict(self.steps),
            "session": self.session,
        }

    def restore(self, data: dict) -> None:
        self.last_prompt = data["last_prompt"]
        self.per_day = {int(k): v for k, v in data["per_day"].items()}
        self.snooze, self.session = data["snooze"], data["session"]
        self.not_stressed, self.steps = dict(data["not_stressed"]), dict(data["steps"])
