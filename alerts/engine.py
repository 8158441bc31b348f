"""The alert engine for one person: readings and responses in; prompts, decisions, daily summaries out.

Pure: time comes only from the readings and the `now` of responses; randomness from a seed;
`to_dict()`/`from_dict()` hold the whole state as JSON-ready data, so the service can persist it
and a restart in the middle of a day changes no decision. The parts: daily summaries
(alerts/daily.py), chronic bands (alerts/baselines.py), rules (alerts/rules.py), policy
(alerts/policy.py), exercises and their choice (alerts/exercises.py), effects (alerts/effect.py).
"""

from __future__ import annotations

import copy
import math
import operator
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from alerts import baselines, effect, exercises, rules
from alerts.daily import DailySummary, DayBook, move_dated
from alerts.policy import Policy
from alerts.prompt import SNOOZE_MINUTES, Prompt, PromptAction, PromptKind, snooze_minutes
from alerts.settings import AlertSettings
from alerts.timeofday import at, day_of, iso_date, minute_of_day
from processing.morning import MorningResult
from processing.reading import Activity, Reading

STATE_VERSION = 1
KEEP_PROMPTS = 200
KEEP_EFFECTS = 50
# A reading at most this much earlier than the last is dropped (as any reading not after the last
# always was); an earlier one means the wall clock was set back, and the engine follows it
# (`_clock_went_back`). Ours: a minute, the most a reading counts for (alerts/daily.py), so a
# small correction costs at most a minute of readings and leaves the state as it is.
CLOCK_BACK_TOLERANCE_S = 60.0
# `tick` closes a day this long after its end: readings are timed by their beats, which arrive a
# little late, so the last minute of a day may still come just after midnight (ours).
TICK_GRACE_S = 120.0


@dataclass(frozen=True)
class Decision:
    """Something the engine decided that is not a prompt: a suppressed prompt ("suppressed"),
    a chronic finding ("chronic"), an exercise's measured effect ("effect"), a response taken
    ("response"), a later answer to a prompt already answered ("ignored"). `reason` is a
    sentence; `data` the numbers."""

    time: float
    what: str
    rule: str
    reason: str
    data: dict = field(default_factory=dict)


Output = Prompt | Decision | DailySummary


class AlertEngine:
    """Feed one person's readings in time order; answer responses; persist with to_dict()."""

    def __init__(self, person: str, settings: AlertSettings | None = None, seed: int = 0):
        settings = settings or AlertSettings()
        self.person = person
        self.settings = settings
        self.catalogue = settings.catalogue()
        self.seed = seed
        self.draws = 0
        self.last_time: float | None = None
        self.days = DayBook(settings)
        self.history: list[DailySummary] = []
        self.acute = rules.AcuteRule(settings)
        self.policy = Policy(settings)
        self.noise = effect.Noise()
        self.recent: deque[list] = deque()  # rest rows [t, min, ln, hr, score] for the "before" window
        self.prompts: dict[str, dict] = {}  # id -> record (kind, time, exercise, before, answer, effect)
        self.effects: dict[str, list[float]] = {}  # exercise -> measured lnRMSSD changes
        self.pending: list[str] = []  # prompts done whose after-exercise window is still open
        self.last_done: float | None = None
        self.last_block: str | None = None
        self.ignored_answers = 0  # answers to prompts already answered (redeliveries, changes of mind)
        self.repaired: list[str] = []  # what from_dict had to mend in a saved state, for the caller's log

    # -- input ---------------------------------------------------------------------------------

    def feed(self, r: Reading) -> list[Output]:
        went_back: list[Output] = []
        if self.last_time is not None and self.last_time - r.time > CLOCK_BACK_TOLERANCE_S:
            went_back.append(self._clock_went_back(r.time))
        if self.last_time is not None and r.time <= self.last_time:
            return []
        s = self.settings
        w = 0.0 if self.last_time is None else min((r.time - self.last_time) / 60.0, 1.0)
        self.last_time = r.time
        out: list[Output] = went_back
        for day in self.days.feed(r):
            out += self._close_day(day, r.time)
        rest = r.activity == Activity.REST and r.quality >= s.min_quality and r.ln_rmssd is not None
        last = self.policy.last_prompt
        exercising = self.pending or (last is not None and r.time - last < effect.EXERCISE_EXCLUDE_MIN * 60.0)
        self.noise.add(r.time, w, r.ln_rmssd if rest and not exercising else None)
        if rest:
            self.recent.append([r.time, w, r.ln_rmssd, r.hr_bpm, r.stress_score])
        while self.recent and self.recent[0][0] <= r.time - effect.BEFORE_MIN * 60.0:
            self.recent.popleft()
        out += self._effects(r, w, rest)
        out += self._snoozed(r.time, r.stress_score)
        out += self._session(r.time, r.stress_score)
        finding = self.acute.feed(r, self.policy.required_min(r.time), self.last_done)
        if finding is None:
            self.last_block = None
        else:
            blocked = self.policy.blocked(r.time, "acute")
            if blocked is None:
                self.last_block = None
                out.append(self._prompt(r.time, PromptKind.ACUTE, finding.reason, finding.stress_score))
            elif blocked[0] != self.last_block:  # said once per episode and cause, not every reading
                self.last_block = blocked[0]
                out.append(
                    Decision(r.time, "suppressed", "acute", f"{finding.reason} Not sent: {blocked[1]}.")
                )
        return out

    def finish(self) -> list[Output]:
        """End of input (a recording): close the open day as it stands."""
        if self.days.open is None:
            return []
        out = self._close_day(self.days.close(), self.last_time)
        self.days.open = None
        return out

    def respond(
        self, prompt_id: str, action: str, minutes: float | None, now: float, rr=None
    ) -> list[Output]:
        """The phone's answer. `minutes`: the snooze length, None for the default; when given it
        must be one `snooze_minutes` accepts (1-240). `rr` (optional): (times_s, rr_ms) of the beats
        during the exercise, to check that paced breathing happened. An unknown id, action or a
        bad `minutes` raise ValueError before anything changes.

        The first answer stands: a later one (a QoS 1 redelivery, or a change of mind such as
        `done` then `dismiss`) changes nothing but `ignored_answers` and comes back as an
        "ignored" Decision naming both."""
        rec = self.prompts.get(prompt_id)
        if rec is None:
            raise ValueError(f"unknown prompt id {prompt_id!r}")
        if action not in tuple(PromptAction):
            raise ValueError(f"action must be one of {', '.join(PromptAction)}, got {action!r}")
        action = PromptAction(action)
        minutes = snooze_minutes(minutes)
        first = rec["answer"]
        if first is not None:
            self.ignored_answers += 1
            return [
                Decision(
                    now,
                    "ignored",
                    rec["kind"],
                    f"Prompt {prompt_id} already answered {first['action']}; {action.value} ignored.",
                    {
                        "id": prompt_id,
                        "action": action.value,
                        "minutes": minutes,
                        "answered": first["action"],
                    },
                )
            ]
        rec["answer"] = {"action": action.value, "minutes": minutes, "time": now}
        self.policy.answered(rec["time"], action.value)
        if self.days.open is not None:
            self.days.open.answered += 1
            self.days.open.done += action == PromptAction.DONE
        if action == PromptAction.DONE:
            self.last_done = now
            ex = self.catalogue.get(rec["exercise"])  # None: removed from the settings since
            peak = None if rr is None or ex is None else effect.breathing_peak_hz(*rr)
            start = now + effect.SETTLE_MIN * 60.0
            self.pending.append(prompt_id)
            rec["pending"] = {
                "start": start,
                "end": start + effect.AFTER_MIN * 60.0,
                "rows": [],
                "peak_hz": peak,
                "paced": ex and effect.paced(peak, ex.breaths_per_min),
            }
        elif action == PromptAction.SNOOZE:
            m = self.settings.snooze_default_min if minutes is None else minutes
            self.policy.snooze = {"due": now + m * 60.0, "of": prompt_id}
        return [
            Decision(
                now, "response", rec["kind"], f"Prompt {prompt_id} answered {action.value}.", rec["answer"]
            )
        ]

    def status(self) -> dict:
        out = baselines.status(self.history, self.settings)
        today = self.days.open
        if today is not None and today.morning_ln_rmssd is not None:  # judged at once: it counts today
            out["valid_mornings"] += 1
            out["calibrating"] = max(out["valid_days"], out["valid_mornings"]) < self.settings.warmup_days
        out["required_stressed_min"] = self.policy.required_by_context()
        out["not_stressed"] = dict(self.policy.not_stressed)
        out["typical_error"] = round(self.noise.te(), 4)
        out["smallest_worthwhile_change"] = round(self.noise.swc(), 4)
        # So far today: the share of awake resting minutes spent stressed (the day's stress load
        # as it stands), and the prompts given; None before any rest today.
        out["today_stress_load"] = (
            round(today.stressed_rest_min / today.rest_min, 4)
            if today is not None and today.rest_min > 0
            else None
        )
        out["today_prompts"] = today.prompts if today is not None else 0
        # The reminder the person asked for: when it is due (unix seconds) and for which prompt.
        snooze = self.policy.snooze
        out["snoozed_until"] = snooze["due"] if snooze else None
        out["snoozed_prompt"] = snooze["of"] if snooze else None
        out["ignored_answers"] = self.ignored_answers
        return out

    # -- internals -----------------------------------------------------------------------------

    def _clock_went_back(self, t: float) -> Decision:
        """Readings earlier than the last by more than CLOCK_BACK_TOLERANCE_S: the wall clock was
        set back (NTP correcting a clock that was ahead; a restart after such a correction brings
        back a `last_time` in the future). Dropping them, as before, blinded the engine until the
        new clock passed the old one, for days after a clock that had been days ahead.

        What happens (ours): the time order starts again at `t`. The state that counts time from
        a moment (the acute rule's last minutes, the cooldown after the last prompt, a snooze, the
        pause after an exercise, the windows measuring an exercise's effect, the rest before a
        prompt) moves by the step, as if it had been measured on the new clock, so each keeps
        its length in real time. Days: a step back within the open day changes nothing. A step to
        an earlier day (the clock was ahead across a midnight) moves the open day, its night and
        morning and its prompt count to the new date (they were measured just now, under a date
        that has not come yet); if that date was closed already, by the clock that was ahead, it
        is reopened and the open day's minutes, prompts and effects are added to it, so no date
        is summarised twice; days closed with dates after it leave the history (their summaries
        already sent stay where they went) and feed no band or chronic rule. A chronic session
        planned for a date after the new one moves with the open day. Prompts sent keep their
        ids and times."""
        s = self.settings
        step = t - self.last_time
        today = day_of(t, s.tz)
        self.last_time = self.acute.last_time = None
        for row in (*self.acute.recent, *self.recent):
            row[0] += step
        if self.last_done is not None:
            self.last_done += step
        policy = self.policy
        if policy.last_prompt is not None:
            policy.last_prompt += step
        if policy.snooze is not None:
            policy.snooze["due"] += step
        for pid in self.pending:
            window = self.prompts[pid]["pending"]
            window["start"] += step
            window["end"] += step
        data: dict = {"step_s": round(step, 3), "from": t - step, "to": t}
        reason = f"The clock went back {-step:.0f} s; readings are taken in time order from here."
        open_day = self.days.open
        if open_day is not None and today < open_day.day:
            shift, was = today - open_day.day, open_day.date
            later = [h.date for h in self.history if h.day > today]
            reopened = next((h for h in self.history if h.day == today), None)
            self.history = [h for h in self.history if h.day < today]
            self.days.move_back(today, reopened)
            policy.per_day = move_dated(policy.per_day, today, shift, operator.add)
            if policy.session is not None and policy.session["day"] > today:
                policy.session["day"] += shift
            data.update(
                open_day=was, now_day=self.days.open.date, reopened=reopened is not None, removed_days=later
            )
            reason += (
                f" The open day {was} is counted as {self.days.open.date}"
                + (", which is reopened" if reopened is not None else "")
                + (f"; days {', '.join(later)} leave the history" if later else "")
                + "."
            )
        self.days.last_time = None
        return Decision(t, "clock", "clock_back", reason, data)

    def _close_day(self, day: DailySummary, t: float) -> list[Output]:
        baselines.annotate(day, self.history, self.settings)
        self.history.append(day)
        del self.history[: -(self.settings.baseline_days + 7)]
        out: list[Output] = [day]
        if day.hrv_source == "morning":  # its lnRMSSD rule was judged at the morning reading
            finding = rules.chronic_load(self.history, self.settings)
        else:
            finding = rules.chronic(self.history, self.settings)
        if finding is not None:
            out.append(self._chronic(finding, day, day.day + 1, t))
        return out

    def _chronic(self, finding: rules.Finding, day: DailySummary, session_day: int, t: float) -> Decision:
        """Plan the daily session of `session_day` for a chronic finding as of `day`."""
        self.policy.session = {"day": session_day, "rule": finding.rule, "reason": finding.reason}
        numbers = {
            k: getattr(day, k)
            for k in (
                "hrv_source",
                "hrv_week_mean",
                "hrv_cv_7d",
                "hrv_band",
                "hrv_limit",
                "stress_load",
                "load_band",
            )
        }
        return Decision(t, "chronic", finding.rule, finding.reason, {"day": day.date, **numbers})

    # -- morning readings ------------------------------------------------------------------------

    def morning(self, result: MorningResult) -> list[Output]:
        """A finished morning reading (processing/morning.py). A valid one is the lnRMSSD of the
        local day it ended in (the first valid one of the day stands; later ones are reported and
        not kept), judged at once: the day's 7-day mean, CV and band as they stand with it, and,
        when the readings are the lnRMSSD source, the chronic rule (a) on the valid mornings, which
        plans today's session (the stress-load rule waits for the day's end). A failed one is
        counted on the day and changes nothing else. Returns a "morning" Decision whose `data` is
        what `<person>/morning` publishes (rule "valid", "failed" or "ignored"), then any chronic
        Decision; days that end before the reading's day close first, as with readings."""
        s = self.settings
        t = result.time
        out: list[Output] = []
        day_index = day_of(t, s.tz)
        if self.days.open is None or self.days.open.day < day_index:
            for day in self.days.roll_to(day_index):
                out += self._close_day(day, t)
        today = self.days.open
        if today.day != day_index:  # the reading's day closed already (a clock set back): not kept
            reason = f"The morning reading of {iso_date(day_index)} came after that day was closed; not kept."
            return out + [Decision(t, "morning", "ignored", reason, {"day": iso_date(day_index)})]
        if not result.valid:
            today.morning_failed += 1
            data = {**result.to_dict(), "date": today.date, "failed_today": today.morning_failed}
            return out + [Decision(t, "morning", "failed", result.reason or "The reading failed.", data)]
        if today.morning_ln_rmssd is not None:
            reason = (
                f"A second valid morning reading today (lnRMSSD {result.ln_rmssd:.2f}); the first "
                f"({today.morning_ln_rmssd:.2f}) stands."
            )
            return out + [Decision(t, "morning", "ignored", reason, {**result.to_dict(), "date": today.date})]
        today.morning_ln_rmssd = round(result.ln_rmssd, 6)
        today.morning_hr_bpm = round(result.hr_bpm, 3)
        today.morning_rmssd_ms = round(result.rmssd_ms, 3)
        today.morning_time = t
        today.morning_posture = result.posture
        today.morning_trigger = result.trigger
        judged = DailySummary.from_dict(copy.deepcopy(today.to_dict()))  # as it stands; the day stays open
        baselines.annotate(judged, self.history, s)
        finding = rules.chronic_hrv([*self.history, judged], s) if judged.hrv_source == "morning" else None
        reason = (
            f"Morning reading: lnRMSSD {result.ln_rmssd:.2f} (RMSSD {result.rmssd_ms:.0f} ms), heart rate "
            f"{result.hr_bpm:.0f} bpm"
            + (f"; 7-day mean {judged.hrv_week_mean:.2f}" if judged.hrv_week_mean is not None else "")
            + "."
        )
        data = {**result.to_dict(), "date": today.date, **self._morning_trend(judged, finding is not None)}
        out.append(Decision(t, "morning", "valid", reason, data))
        session = self.policy.session
        if finding is not None:
            out.append(self._chronic(finding, judged, today.day, t))
        elif (
            judged.hrv_source == "morning"
            and session is not None
            and session["rule"] == "chronic_hrv"
            and session["day"] == today.day
        ):
            self.policy.session = None  # planned from older mornings; today's reading no longer shows it
        return out

    def _morning_trend(self, judged: DailySummary, chronic: bool) -> dict:
        """The trend fields of `<person>/morning`: the 7-day mean and CV of the valid mornings, the
        normal band, whether the mean lies under it (as the trend view draws it) and whether the
        chronic rule found a pattern at this reading."""
        s = self.settings
        history = [*self.history, judged]
        band = judged.hrv_band or [None, None]
        mean = judged.hrv_week_mean
        return {
            "source": judged.hrv_source,
            "ln_rmssd_7d": mean,
            "cv_7d": judged.hrv_cv_7d,
            "normal_low": band[0],
            "normal_high": band[1],
            "below": None if mean is None or band[0] is None else mean < band[0],
            "chronic": chronic,
            "valid_mornings": baselines.valid_mornings(history),
            "calibrating": not baselines.hrv_warmed_up(history, "morning", s),
        }

    def tick(self, now: float) -> list[Output]:
        """Time passes without readings (the service calls this about once a minute for a live
        strap source; a replay never does): the days whose end passed more than `TICK_GRACE_S`
        ago close, a snoozed reminder or the daily session due now is sent. So a person who wears
        the strap only for a morning reading still gets the day's summary at midnight and the
        session at its time. A `now` before the last reading (a clock set back) does nothing;
        readings that arrive later for a day already closed count towards the open day."""
        if self.last_time is not None and now < self.last_time:
            return []
        out: list[Output] = []
        if self.days.open is not None:
            for day in self.days.roll_to(day_of(now - TICK_GRACE_S, self.settings.tz)):
                out += self._close_day(day, now)
            out += self._snoozed(now, None)
            out += self._session(now, None)
        return out

    def _session(self, t: float, score: float | None) -> list[Output]:
        s, sess = self.settings, self.policy.session
        if sess is None or minute_of_day(t, s.tz) < s.minutes("session_time"):
            return []
        today = day_of(t, s.tz)
        if sess["day"] != today:
            if sess["day"] < today:
                self.policy.session = None
            return []
        self.policy.session = None
        if t > at(today, s.minutes("session_time") + s.session_expiry_min, s.tz):
            return [
                Decision(t, "suppressed", sess["rule"], "The daily session was missed: no data at its time.")
            ]
        blocked = self.policy.blocked(t, "chronic")
        if blocked is not None:
            return [Decision(t, "suppressed", sess["rule"], f"{sess['reason']} Not sent: {blocked[1]}.")]
        reason = f"{sess['reason']} A longer breathing session today may help."
        return [self._prompt(t, PromptKind.CHRONIC, reason, score)]

    def _snoozed(self, t: float, score: float | None) -> list[Output]:
        sn = self.policy.snooze
        if sn is None or t < sn["due"]:
            return []
        self.policy.snooze = None
        if self.policy.quiet_now(t):
            return [Decision(t, "suppressed", "snooze", "The snoozed reminder fell in quiet hours.")]
        first = self.prompts.get(sn["of"])
        kind = PromptKind(first["kind"]) if first else PromptKind.ACUTE
        prefix = "The reminder you asked for: "
        reason = prefix + (
            first["reason"].removeprefix(prefix) if first else "time for a breathing exercise."
        )
        return [self._prompt(t, kind, reason, score, exercise=first and first["exercise"])]

    def _prompt(self, t: float, kind: PromptKind, reason: str, score: float | None, exercise=None) -> Prompt:
        s = self.settings
        if exercise not in self.catalogue:  # none yet, or one removed from the settings since
            candidates = s.chronic_exercises if kind == PromptKind.CHRONIC else s.acute_exercises
            rng = np.random.default_rng([self.seed, self.draws])
            self.draws += 1
            exercise = exercises.choose(
                candidates, self.effects, math.sqrt(2.0) * self.noise.te(), s.explore, rng
            )
        expiry = s.session_expiry_min if kind == PromptKind.CHRONIC else s.acute_expiry_min
        pid = f"{self.person}-{int(t)}-{kind.value}"
        prompt = Prompt(pid, self.person, t, kind, reason, score, t + expiry * 60.0, self.catalogue[exercise])
        before = effect.window_stats([row for row in self.recent if row[0] <= t])
        self.prompts[pid] = {
            "time": t,
            "kind": kind.value,
            "exercise": exercise,
            "reason": reason,
            "before": before,
            "answer": None,
            "pending": None,
            "effect": None,
        }
        for old in list(self.prompts)[:-KEEP_PROMPTS]:
            if old not in self.pending:
                del self.prompts[old]
        self.policy.sent(t)
        self.days.open.prompts += 1
        return prompt

    def _effects(self, r: Reading, w: float, rest: bool) -> list[Output]:
        out: list[Output] = []
        for pid in list(self.pending):
            rec = self.prompts[pid]
            p = rec["pending"]
            if rest and p["start"] <= r.time < p["end"]:
                p["rows"].append([r.time, w, r.ln_rmssd, r.hr_bpm, r.stress_score])
            if r.time >= p["end"]:
                out.append(self._measured(pid, rec, r.time))
        return out

    def _measured(self, pid: str, rec: dict, t: float) -> Decision:
        p = rec["pending"]
        rec["pending"] = None
        self.pending.remove(pid)
        result = effect.judge(
            rec["before"], effect.window_stats(p["rows"]), self.noise.swc(), self.noise.te()
        )
        result.update(id=pid, exercise=rec["exercise"], peak_hz=p["peak_hz"], paced=p["paced"])
        rec["effect"] = result
        if "d_ln_rmssd" in result and result["paced"] is not False:
            learned = self.effects.setdefault(rec["exercise"], [])
            learned.append(result["d_ln_rmssd"])
            del learned[:-KEEP_EFFECTS]
        if self.days.open is not None:
            self.days.open.effects.append(
                {
                    k: result.get(k)
                    for k in (
                        "id",
                        "exercise",
                        "verdict",
                        "d_ln_rmssd",
                        "d_hr_bpm",
                        "d_stress_score",
                        "paced",
                    )
                }
            )
        return Decision(t, "effect", rec["exercise"], effect.describe(rec["exercise"], result), result)

    # -- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "person": self.person,
            "seed": self.seed,
            "draws": self.draws,
            "last_time": self.last_time,
            "days": self.days.to_dict(),
            "history": [h.to_dict() for h in self.history],
            "acute": self.acute.to_dict(),
            "policy": self.policy.to_dict(),
            "noise": self.noise.to_dict(),
            "recent": [list(x) for x in self.recent],
            "prompts": self.prompts,
            "effects": self.effects,
            "pending": self.pending,
            "last_done": self.last_done,
            "last_block": self.last_block,
            "ignored_answers": self.ignored_answers,
        }

    @classmethod
    def from_dict(cls, data: dict, settings: AlertSettings | None = None) -> AlertEngine:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"alert engine state version {data.get('version')!r} is not {STATE_VERSION}")
        eng = cls(data["person"], settings, data["seed"])
        eng.draws, eng.last_time = data["draws"], data["last_time"]
        eng.days.restore(data["days"])
        eng.history = [DailySummary.from_dict(h) for h in data["history"]]
        eng.acute.restore(data["acute"])
        eng.policy.restore(data["policy"])
        eng.noise.restore(data["noise"])
        eng.recent = deque(list(x) for x in data["recent"])
        eng.prompts = {k: dict(v) for k, v in data["prompts"].items()}
        eng.effects = {k: list(v) for k, v in data["effects"].items()}
        eng.pending = list(data["pending"])
        eng.last_done, eng.last_block = data["last_done"], data["last_block"]
        eng.ignored_answers = data.get("ignored_answers", 0)  # absent in states saved before it
        eng.repaired = eng._drop_impossible_snooze()
        return eng

    def _drop_impossible_snooze(self) -> list[str]:
        """A snooze saved before its length was bounded (e.g. 1e9 minutes: until the year 3928)
        would hold every acute prompt for good: dropped, and said (sentences for the caller's log)."""
        sn = self.policy.snooze
        if sn is None:
            return []
        answer = (self.prompts.get(sn["of"]) or {}).get("answer") or {}
        since = answer.get("time", self.last_time)
        high = SNOOZE_MINUTES[1]
        if since is None or sn["due"] - since <= high * 60.0:  # False for NaN
            return []
        self.policy.snooze = None
        minutes = (sn["due"] - since) / 60.0
        note = (
            f"dropped the saved snooze of prompt {sn['of']}: due {minutes:.0f} minutes after it was "
            f"asked for, more than the {high} allowed"
        )
        return [note]
