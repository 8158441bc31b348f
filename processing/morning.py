"""The morning reading (pure): one short, standardised HRV measurement a day, its protocol and its checks.

Why a morning reading: the HRV that tracks accumulated load is a measurement taken the same
way every morning, soon after waking, at rest and in one posture, and judged as a 7-day
rolling mean against the person's own normal range (Plews et al. 2012, Eur J Appl Physiol
112:3729; Plews et al. 2013, Sports Med 43:773; Buchheit 2014, Front Physiol 5:73). That is the
practice of HRV4Training and Elite HRV, and what people who own a chest strap but wear it only
for workouts can do: a few minutes a day instead of all-day wear. alerts/ judges the trend;
this module takes the measurement.

The protocol, value by value (`Protocol`; every value is a setting, these are the defaults):
- `stabilise_s` 60: the first minute after the first beat is discarded: a steady signal needs
  about 1 min before the analysis window (Bourdillon et al. 2017, Front Neurosci 11:456, 159
  supine and standing recordings), and lnRMSSD taken after a 1 min stabilisation agrees with the
  5 min criterion (Flatt & Esco 2016, Clin Physiol Funct Imaging 36:331); HRV4Training's
  guidance likewise has the person settle before its 1 min measurement. A gap or movement during the stabilisation starts it
  again (ours: its purpose is a settled heart, which a new start gives).
- `measure_s` 60: the measured window. 1 min of lnRMSSD agrees with 5 min at rest (Esco &
  Flatt 2014, J Sports Sci Med 13:535: 60 s within the limits of agreement, 10 s not; Munoz et
  al. 2015, PLoS One 10:e0138921: RMSSD from >= 30 s agrees closely with 5 min in 3387 adults;
  HRV4Training measures 60 s). Settings may go down to 30 s (ours: the shortest Munoz et al.
  found close) and up to 10 min.
- `posture` lying or seated, set once per person: supine and seated lnRMSSD differ
  systematically (vagal activity is higher lying down; Buchheit 2014 discusses the choice and
  recommends keeping one), so a person's readings are only compared with readings in the same
  posture (alerts/ keeps them apart).
- artifacts: the beats go through the project's artifact correction (processing/correction.py,
  Lipponen & Tarvainen 2019); a reading whose measured window had more than
  `max_artifact_pct` 5 % of its beats corrected fails (ours: with ~3 % corrected beats the
  correction keeps RMSSD within 2.5 % of the clean value on real series (README "Artifact
  correction"); beyond that the reading measures the repair more than the heart).
- beat count: the measured window must be covered by beats for >= `min_coverage` 90 % of its
  length with no gap, and hold >= `MIN_PAIRS` (25, processing/pipeline.py: the project's floor
  for a scored RMSSD) successive pairs (ours: a lost stretch or a strap that sent too few
  beats is a signal problem, not a measurement).
- movement: where a motion source says the person moved during the measured window (a strap's
  accelerometer, a foot pod; in the service also a reading whose activity is not rest, i.e. heart
  rate >= 30 % of the heart-rate reserve, processing/stress.py: `moved`), the reading fails.
  Heart rate also stands in for a motion source: the means over 30 s stretches (every 5 s, from
  the last 30 s of the stabilisation to the end) must not differ by more than
  `max_hr_change_bpm` 25 bpm. Ours, from real recordings: seated rest reached at most 8.3 bpm
  over the 13 GUDB subjects (Howell & Porr 2018) and the supine rest_rri 5.8 bpm, but the Kubios
  sample 20 bpm, and a mental arithmetic task 23.7 bpm in one GUDB subject: a stressed morning
  must not be thrown away as movement, since that would hide what the readings are for. Standing
  up raises heart rate by up to 30 bpm in healthy adults (a sustained rise of >= 30 bpm is the
  postural tachycardia criterion, Freeman et al. 2011, Clin Auton Res 21:69), walking off more.
  A 30 s mean averages over several breaths, so a deep breath does not count. This catches
  getting up and walking off during the reading; a steady walk that began before it is
  invisible to heart-rate change: only the activity (heart-rate reserve) or motion data tell.

A reading that fails says why (`MorningResult.reason`, a sentence a person understands, and
`failure`, a code) and carries no HRV value, so nothing downstream can store a bad one.

Started how: on request (`auto=False`: the person asked, from MQTT or the command line) the
stabilisation starts at the first beat after the request (the strap may still be connecting;
`wait_s` for it), and a failed measurement ends the reading. On its own (`auto=True`: the strap
connected in the person's morning window) a failed measurement starts the reading again from the
next beat, silently, until a still stretch gives a valid one or `auto_give_up_s` pass (then it
ends as failed, which the service logs without asking again: the person may have put the strap on
for a run).

Pure: beats, gaps and movement come in with their times, `now` from the caller; no clock read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from enum import StrEnum

from collector.events import GAP_TOLERANCE_S, Beat, Event, Gap, Motion
from processing.correction import ArtifactCorrector
from processing.motion import says
from processing.pipeline import MAX_RR_MS, MIN_PAIRS, RECENT_BEATS
from processing.reading import MotionState
from processing.window import BeatLog

HR_STRETCH_S = 30.0  # heart rate is compared over stretches this long (several breaths)
HR_STRETCH_STEP_S = 5.0
# After the measured window ends, how long to wait for its last beats before judging it: a strap
# notifies about once a second, and artifact correction holds beats back until 2 more arrive.
LATE_BEATS_S = 5.0


class Posture(StrEnum):
    """The posture of a person's readings (one per person: the two are not comparable)."""

    LYING = "lying"
    SEATED = "seated"


class Failure(StrEnum):
    """Why a reading failed."""

    NO_BEATS = "no_beats"  # the strap sent nothing
    SIGNAL_LOST = "signal_lost"  # a gap, or too little of the window covered by beats
    TOO_FEW_BEATS = "too_few_beats"
    ARTIFACTS = "artifacts"
    MOVEMENT = "movement"
    STOPPED = "stopped"  # the service stopped, or the person cancelled
    NOT_STILL = "not_still"  # started on its own, never a still stretch (not asked again)


@dataclass(frozen=True)
class Protocol:
    """How a morning reading is taken (the module docstring has the source of each default)."""

    posture: Posture = Posture.SEATED
    stabilise_s: float = 60.0
    measure_s: float = 60.0
    wait_s: float = 120.0  # for the first beat after a request (ours: time to put a strap on)
    max_artifact_pct: float = 5.0
    min_coverage: float = 0.9
    max_hr_change_bpm: float = 25.0
    auto_give_up_s: float = 600.0  # a reading started on its own gives up after this (ours)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "posture", Posture(self.posture))
        except ValueError:
            raise ValueError(f"posture: must be one of {', '.join(Posture)}, got {self.posture!r}") from None
        for key, lo, hi in (
            ("stabilise_s", 0.0, 600.0),
            ("measure_s", 30.0, 600.0),
            ("wait_s", 0.0, 3600.0),
            ("max_artifact_pct", 0.0, 50.0),
            ("min_coverage", 0.5, 1.0),
            ("max_hr_change_bpm", 5.0, 100.0),
            ("auto_give_up_s", 60.0, 7200.0),
        ):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{key}: must be a number from {lo:g} to {hi:g}, got {value!r}")

    @property
    def duration_s(self) -> float:
        return self.stabilise_s + self.measure_s

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MorningResult:
    """A finished morning reading. Valid: `ln_rmssd` (ln of RMSSD in ms), `rmssd_ms`, `hr_bpm`
    (60000 / mean RR), `n_beats` and `artifact_pct` of the measured window, which ended at `time`
    (unix s) and began `measure_s` earlier. Failed: `failure` and `reason` say why, and the
    HRV values are None. `trigger`: "mqtt", "cli" or "auto"."""

    person: str
    time: float
    trigger: str
    posture: str
    measure_s: float
    valid: bool
    failure: str | None = None
    reason: str | None = None
    ln_rmssd: float | None = None
    rmssd_ms: float | None = None
    hr_bpm: float | None = None
    n_beats: int | None = None
    artifact_pct: float | None = None
    hr_change_bpm: float | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 4)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> MorningResult:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


class MorningReading:
    """One reading in progress for one person: feed it the person's events in time order (and
    `tick(now)` between them); a `MorningResult` comes back from the call that ends it."""

    def __init__(
        self, person: str, protocol: Protocol, requested_at: float, trigger: str = "mqtt", auto: bool = False
    ):
        self.person = person
        self.protocol = protocol
        self.requested_at = requested_at
        self.trigger = trigger
        self.auto = auto
        self.restarts = 0  # stabilisations started again (gap, movement) and, auto, measurements
        self.result: MorningResult | None = None
        self._begin()

    def _begin(self) -> None:
        """Start (again) from the next beat: nothing kept."""
        self.start: float | None = None  # first beat: the stabilisation runs from here
        self.corrector = ArtifactCorrector()
        self.beats: list[Beat] = []  # corrected, in time order
        self._last_t: float | None = None

    # -- where it stands -------------------------------------------------------------------------

    @property
    def measure_start(self) -> float | None:
        return None if self.start is None else self.start + self.protocol.stabilise_s

    @property
    def end(self) -> float | None:
        return None if self.start is None else self.start + self.protocol.duration_s

    def phase(self, now: float) -> str:
        """ "waiting" (for the first beat), "stabilising", "measuring" or "done"."""
        if self.result is not None:
            return "done"
        if self.start is None:
            return "waiting"
        return "stabilising" if now < self.measure_start else "measuring"

    def seconds_left(self, now: float) -> float:
        """Seconds until the reading ends if all goes well (the whole protocol while waiting)."""
        if self.result is not None:
            return 0.0
        if self.start is None:
            return self.protocol.duration_s
        return max(0.0, self.end - now)

    def progress(self, now: float) -> dict:
        """What `<person>/measurement` says while the reading runs."""
        return {
            "person": self.person,
            "status": self.phase(now),
            "seconds_left": round(self.seconds_left(now)),
            "duration_s": self.protocol.duration_s,
            "trigger": self.trigger,
            "posture": self.protocol.posture.value,
            "restarts": self.restarts,
        }

    # -- input -----------------------------------------------------------------------------------

    def feed(self, event: Event) -> MorningResult | None:
        """A Beat or Gap of the person's strap (other events are not for it: `motion_verdict`
        turns a Motion into a `moved` call); the result when this event ends the reading."""
        if self.result is not None:
            return self.result
        if not isinstance(event, Beat | Gap):
            return None
        if isinstance(event, Gap):
            return self._interrupted(event.start, "the strap lost contact")
        beat = event
        if beat.t < self.requested_at:
            return None
        if self.end is not None and beat.t > self.end:
            return self._finish()
        if self._last_t is not None:
            if beat.t <= self._last_t:
                return None  # a repeat: the first copy counts
            if beat.t - self._last_t > beat.rr_ms / 1000.0 + GAP_TOLERANCE_S:
                out = self._interrupted(self._last_t, "beats were lost")
                if out is not None or self.start is not None:
                    return out
        if beat.rr_ms <= 0 or beat.rr_ms > MAX_RR_MS:
            return self._interrupted(beat.t, "beats were lost")
        if self.start is None:
            self.start = beat.t
        self._last_t = beat.t
        self.beats += self.corrector.push(beat)
        return None

    def moved(self, t: float, span_s: float, moving: bool) -> MorningResult | None:
        """A motion source's verdict over the `span_s` seconds ending at `t`: movement in the
        stabilisation starts it again, in the measured window it spoils the reading."""
        if self.result is not None:
            return self.result
        if not moving or self.start is None or t < self.start:
            return None
        if t - span_s < self.measure_start:
            return self._restart(t)
        return self._failed(
            Failure.MOVEMENT,
            "You moved during the reading (the motion sensor says so). "
            "Sit or lie still for the whole reading and start it again.",
        )

    def tick(self, now: float) -> MorningResult | None:
        """Time passes: the result when the reading is over (its window passed, no beats came)."""
        if self.result is not None:
            return self.result
        p = self.protocol
        if self.start is None:
            if self.auto and now - self.requested_at > p.auto_give_up_s:
                return self._end(Failure.NOT_STILL, "No still stretch long enough for a reading.")
            if not self.auto and now - self.requested_at > p.wait_s + (
                p.duration_s if self.restarts else 0.0
            ):
                if self.restarts:
                    return self._end(
                        Failure.SIGNAL_LOST,
                        "The signal kept dropping out, so the reading could not "
                        "begin. Moisten the strap's electrodes, check it sits snugly and start again.",
                    )
                return self._end(
                    Failure.NO_BEATS,
                    f"No heartbeats came from the strap within {p.wait_s:.0f} s. "
                    "Is it worn, moistened and switched on?",
                )
            return None
        if now > self.end + LATE_BEATS_S:
            return self._finish()
        if not self.auto and now > self.requested_at + p.wait_s + p.duration_s + LATE_BEATS_S:
            return self._end(
                Failure.SIGNAL_LOST,
                "The signal kept dropping out, so the reading could not finish in "
                "time. Moisten the strap's electrodes, check it sits snugly and start again.",
            )
        return None

    def stop(self, why: str) -> MorningResult:
        """End it now, failed (`why`: a sentence, e.g. the service is stopping)."""
        if self.result is not None:
            return self.result
        return self._end(Failure.STOPPED, why)

    # -- internals -------------------------------------------------------------------------------

    def _interrupted(self, t: float, what: str) -> MorningResult | None:
        """A gap: before the measured window the stabilisation starts again from the next beat;
        inside it the reading fails (auto: starts again)."""
        if self.start is None:
            return None
        if t < self.measure_start:
            return self._restart(t)
        return self._failed(
            Failure.SIGNAL_LOST,
            f"The signal was lost during the reading ({what}). "
            "Moisten the strap's electrodes, check it sits snugly and start again.",
        )

    def _finish(self) -> MorningResult:
        """The window is over: judge the measured beats."""
        p = self.protocol
        self.beats += self.corrector.flush()
        a, b = self.measure_start, self.end
        window = [x for x in self.beats if a < x.t <= b]
        log = BeatLog(max(len(window), 1) + 1)
        for k, x in enumerate(window):
            log.append(x.t, x.rr_ms, x.artifact is not None, successive=k > 0)
        if len(window) < 3:
            return self._failed(
                Failure.SIGNAL_LOST,
                "Too few heartbeats came during the reading. Moisten the strap's electrodes and start again.",
            )
        w = log.stats([0], [0], [log.n], RECENT_BEATS)[0]
        covered = sum(x.rr_ms for x in window) / 1000.0 / p.measure_s
        artifact_pct = 100.0 * w.n_artifacts / w.n_beats
        change = hr_change(self.beats, max(a - HR_STRETCH_S, self.start), b)
        if covered < p.min_coverage:
            return self._failed(
                Failure.SIGNAL_LOST,
                f"Beats covered only {100 * covered:.0f}% of the reading "
                "(the strap lost contact). Moisten the electrodes and start again.",
            )
        if w.short_pairs < MIN_PAIRS:
            return self._failed(
                Failure.TOO_FEW_BEATS,
                f"Only {w.short_pairs + 1} heartbeats in the reading, "
                f"fewer than {MIN_PAIRS + 1}. Start it again.",
            )
        if artifact_pct > p.max_artifact_pct:
            return self._failed(
                Failure.ARTIFACTS,
                f"{artifact_pct:.0f}% of the beats had to be corrected (more "
                f"than {p.max_artifact_pct:g}%): a noisy signal. Moisten the electrodes, sit still "
                "and start again.",
            )
        if change is not None and change > p.max_hr_change_bpm:
            return self._failed(
                Failure.MOVEMENT,
                f"Your heart rate changed by {change:.0f} bpm during the reading "
                "(did you move or get up?). Stay still for the whole reading and start it again.",
                hr_change_bpm=change,
            )
        if not w.rmssd:  # a strap repeating one value, not a heart
            return self._failed(
                Failure.ARTIFACTS, "Every beat in the reading was identical: not a heart's signal."
            )
        self.result = MorningResult(
            self.person,
            b,
            self.trigger,
            p.posture.value,
            p.measure_s,
            True,
            ln_rmssd=math.log(w.rmssd),
            rmssd_ms=w.rmssd,
            hr_bpm=60000.0 / w.mean_rr,
            n_beats=w.n_beats,
            artifact_pct=artifact_pct,
            hr_change_bpm=change,
        )
        return self.result

    def _restart(self, t: float) -> MorningResult | None:
        """From the next beat again (a gap or movement in the stabilisation; auto: any failure);
        a reading started on its own gives up once `auto_give_up_s` have passed since it was armed."""
        self.restarts += 1
        self._begin()
        if self.auto and t - self.requested_at >= self.protocol.auto_give_up_s:
            return self._end(Failure.NOT_STILL, "No still stretch long enough for a reading.")
        return None

    def _failed(
        self, failure: Failure, reason: str, hr_change_bpm: float | None = None
    ) -> MorningResult | None:
        """The measured window is spoilt: a requested reading ends; one started on its own starts
        again from the next beat (`_restart`)."""
        if self.auto:
            return self._restart(self._last_t if self._last_t is not None else self.requested_at)
        return self._end(failure, reason, hr_change_bpm)

    def _end(self, failure: Failure, reason: str, hr_change_bpm: float | None = None) -> MorningResult:
        end = self.end if self.end is not None else self.requested_at
        self.result = MorningResult(
            self.person,
            end,
            self.trigger,
            self.protocol.posture.value,
            self.protocol.measure_s,
            False,
            failure.value,
            reason,
            hr_change_bpm=hr_change_bpm,
        )
        return self.result


def hr_change(beats: list[Beat], a: float, b: float) -> float | None:
    """The largest difference (bpm) between the mean heart rates of two HR_STRETCH_S stretches of
    the beats in (a, b], stretches every HR_STRETCH_STEP_S; None when fewer than two fit."""
    rates = []
    s = a
    while s + HR_STRETCH_S <= b + 1e-9:
        rr = [x.rr_ms for x in beats if s < x.t <= s + HR_STRETCH_S]
        if len(rr) >= 3:
            rates.append(60000.0 * len(rr) / sum(rr))
        s += HR_STRETCH_STEP_S
    return max(rates) - min(rates) if len(rates) >= 2 else None


def motion_verdict(m: Motion) -> tuple[float, float, bool]:
    """(t, span_s, moving) for `moved` from one Motion (a foot pod's, the phone's, or one the
    pipeline classified from a strap's accelerometer: `Pipeline.motion_out`): moving as
    processing/motion.py `says` (walking, running, cycling, or an unclassified window whose
    acceleration is at least moderate), over the `span_s` seconds the report covers. The time a
    phone's report is held for after it (`hold_s`) is not counted: it is a guess about the future,
    and the next report, or the heart rate, says what happened."""
    return float(m.t), float(m.span_s), says(m) == MotionState.MOVING
