"""Activity detection, the personal resting baseline, the 0-100 stress score and the stress state.

Why these inputs: acute psychological stress withdraws vagal activity - RMSSD / lnRMSSD fall
and heart rate rises - consistently across studies (Kim et al. 2018, "Stress and heart rate
variability: a meta-analysis and review of the literature", Psychiatry Investig 15(3):235,
doi:10.30773/pi.2017.08.17; Castaldo et al. 2015, Biomed Signal Process Control 18:370,
doi:10.1016/j.bspc.2015.02.012). Between people these values differ several-fold, so the score
compares a person with their own resting baseline (Plews et al. 2013, Sports Med 43:773,
doi:10.1007/s40279-013-0071-8: a rolling personal lnRMSSD baseline), and leans on population
norms (Nunan et al. 2010, PACE 33:1407) until enough personal rest data exists; the baseline
itself (what it learns from, day and night, resting heart rate, the spread of a young baseline)
is processing/baseline.py. Against population norms alone a score says little (issue 17: a
person resting at HR 100 scored 100 through a whole lab baseline), so a new user gets a score,
and `stressed`, only once the baseline is calibrated (10 min of their own rest, or a declared
calibration span): the issue's own choice of "no score while calibrating", since a score against a
baseline still being learned swung at rest and ranked a session's readings unlike heart rate.
From then on a scored reading is compared with the reference the day began with
(`Baseline.score_reference`), so within a day the score is an increasing function of heart rate.

The score: z = HR_WEIGHT (HR - HRbase) / SD_HR + LN_RMSSD_WEIGHT (lnRMSSDbase - lnRMSSD) / SD_ln,
score = 100 Phi(z) (Phi the standard normal CDF), so 50 is the person's median rest and 70 is
z = 0.52. The weights (1.0 on HR, 0 on lnRMSSD) are ours, chosen on Stress-Predict S01-S17
(Iqbal et al. 2022, Sensors 22:8135; benchmarks/stress_predict.py) with one set for everyone:
on those wrist (E4) recordings heart rate separates tasks from relax (median within-person AUC
0.905) and -lnRMSSD barely does (0.58): PPG beat timing adds jitter to RMSSD, and speech in the
interview and the deep breathing of hyperventilation raise respiratory sinus arrhythmia whatever
the stress (Grossman & Taylor 2007, Biol Psychol 74:263: RSA depends on breathing rate and
depth). HR weights 0.6, 0.8, 0.9 and 1.0 were tried with 20, 25 and 30 pairs per window (and
0.95 with 25); leaving each subject out in turn and choosing on the other 16 picked 1.0 (and 25
pairs) in all 17 folds, and 0.9 fell below HR alone for a new user (median AUC 0.899 vs 0.905;
1.0: 0.916). A more robust lnRMSSD deviation was then tried (issue 8; `benchmarks/stress_predict.py
--hrv-variants`, 36 variants): the median lnRMSSD of the last 5 or 10 min of scored readings
instead of one 60 s window, shrunk toward 0 by quality^4 when the window holds few valid pairs,
added linearly or only when it agrees in sign with the HR deviation, at weights 0.3-0.7. Chosen
on all 17 subjects the best gain ~0.01 (median AUC 0.929 / 0.917 for a new / established user vs
0.916 / 0.915), but leaving each subject out and choosing on the other 16 picks five different
variants, and the held-out median AUC falls to 0.881 / 0.899 (better than HR alone in 5 subjects,
worse in 6): the gain does not generalise. A respiration rate from the RR spectrum (the RSA
peak, Schafer & Kratky 2008, Ann Biomed Eng 36:476, doi:10.1007/s10439-007-9428-1), to discount
RMSSD changes that breathing explains, cannot be had from this wrist data: a gap-free run of
>= 30 s exists for 213 of 1304 labelled readings, and half of those peaks sit at the 6
breaths/min band edge. So lnRMSSD did not earn a place in the score on those wrist recordings.
Chest-strap data decided it again (issue 17; `benchmarks/gudb.py --hrv-weight`): GUDB subjects
00-12 (Howell & Porr 2018, doi:10.5281/zenodo.10925419; clean ECG R-peaks), every scorable
reading of the seated rest, a maths test and walking against the finished calibration, weights
0-1 on lnRMSSD next to HR. Within-person AUC of maths against the seated rest falls as the weight
grows (mean 0.865 at 0, 0.824 at 1); against walking it stays below 0.5 (0.438 at 0, at most
0.464: walking raises HR more than the maths test and lowers RMSSD more too). Leaving each subject
out and choosing on the other 12 picks 0 in 10 folds; held out, maths vs rest 0.800 against 0.865
for HR alone (worse in 3 subjects, better in none), vs walking 0.438 both. So lnRMSSD does not
earn weight on chest data either, and the weight stays 0. HR alone is fooled by exercise
and its recovery: those readings get no score or are never `stressed` (below), and the score is
HR relative to the person's own rest, by day and night. `stressed` needs score >= STRESSED_SCORE
(70, as before: the 70th percentile of a person's own rest under a normal model), a calibrated
baseline, rest, and no climb of HR.

Physical activity lowers HRV and raises HR far more than stress does, so it must never read as
stress. Activity is judged on heart-rate reserve, HRR% = (HR - HRrest) / (HRmax - HRrest)
(Karvonen et al. 1957, Ann Med Exp Biol Fenn 35:307), with HRmax = 208 - 0.7 age (Tanaka et
al. 2001, J Am Coll Cardiol 37:153, doi:10.1016/S0735-1097(00)01054-8). ACSM classes >= 30 %
HRR as at least light-to-moderate exercise (Garber et al. 2011, Med Sci Sports Exerc 43:1334);
mental stress raises HR by ~5-15 bpm (Kim et al. 2018), i.e. usually < 20 % HRR. When a strap
reports energy expended, a rise of >= 20 kJ/min (~5 kcal/min, ~4 METs for 75 kg) also counts as
activity. After activity, HRV stays suppressed for minutes to hours (Michael et al. 2017, Front
Physiol 8:301), so a `recovery` period follows during which the state is never `stressed`: up
to RECOVERY_S, and for a short bout only as long as the bout plus a minute. Activity cannot
stick: the resting heart rate under HRR is the lowest heart rate the person sustains (learned
from every reading, processing/baseline.py), so a heart rate that stays flat and high for an
hour becomes the resting heart rate within minutes instead of reading as exercise for ever.

Motion comes first where there is any (processing/motion.py): a window whose motion says moving
(walking, running, cycling, or moderate movement without steps) is `active` whatever the heart
rate, so never `stressed`, and `recovery` follows it as above. Firstbeat stops judging stress
during physical activity and tells it apart with the accelerometer, Garmin shows "too active" and
Oura judges daytime stress only while the wearer is inactive (issue 17); walking raises heart
rate below the 30 % HRR threshold, which is why heart rate alone called walks stress. A window
known still keeps the heart-rate rules, ours: a heart rate at exercise level is still activity,
because a chest accelerometer sees little of the legs on a bike or a rowing machine; the
`Reading.motion` field tells the alert rules which minutes were known still.

Without motion (RR_GATE; issue 17): light activity (walking, a hand bike) stays far below 30 %
HRR, raises heart rate as much as a mental task or more, and was `stressed` as often. On GUDB
subjects 00-12 (2 min each, the seated rest declared as calibration; benchmarks/gudb.py) the
maths test raised HR by -2 to +26 bpm (median +8) and walking by +3 to +20 (median +12): no
threshold on the rise separates them, and neither did the rise in HR reserve or in the score's
spreads, an lnRMSSD drop, or a climbing HR over the last beats (the onset). So, without a motion
source, a reading whose heart rate is RrGate.rise_bpm (6) or more above the person's rest, or
whose lnRMSSD is RrGate.ln_drop (0.3) or more below it, is not judged: activity and state
`unknown`, no score ("too active to judge", as Garmin shows; Firstbeat and Oura judge stress only
when motion says the wearer is relatively inactive). It stays so until the rise falls below
RrGate.leave_bpm (4.2, as 20/30 % HRR). The gate is ours, chosen on GUDB 00-12 among 121 gates
(rises of 5-15 bpm, 5-12 % HRR or 1-2 score spreads, alone or with an lnRMSSD drop of 0.3-0.7
and/or a climb of 5 bpm) as the one with the fewest `stressed` walking and hand-bike readings,
then the most maths: leaving each subject out and choosing on the other 12 picks it in 12 of 13
folds. Its cost: maths `stressed` 1 % of readings (23 % without it) against walking 0 % and hand
bike 0 % (67 % and 56 %); a choice for the most maths with both <= 10 % on the other subjects
gave 1 % maths and 15 % walking on the one left out. With the day's kept reference (processing/
baseline.py) it gives 0 / 0 / 0 %, and the same criterion would now pick a rise of 8 % of the
heart-rate reserve or the lnRMSSD drop (11 of 13 folds; 6 / 0 / 0 % on all subjects); we keep 6
bpm, which on Stress-Predict leaves fewer `stressed` relax readings (1.9-4.0 % pooled, against
4.6-4.7 %), the false prompts that matter most. What an RR-only gate cannot tell apart: a
mental-stress response larger than a few bpm from walking or light arm work, and a fall of RMSSD
from either; it sees a mild rise with vagal tone kept. It waits for a calibrated baseline
(nothing is `stressed` before), and gated readings are learned as rest all the same, so it cannot
hold a person whose rest moved up out of rest. The gate is for windows whose motion is unknown:
one known still is judged by heart rate as before, one known moving is `active` (above).

Pure: no I/O and no clock; all state is in `StressModel` and its `Baseline`, which the
application persists (`Baseline.to_dict`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, tzinfo

from processing.baseline import Baseline
from processing.reading import Activity, MotionState, StressState

ACTIVE_ENTER_HRR = 0.30
ACTIVE_LEAVE_HRR = 0.20
ACTIVE_ENERGY_KJ_PER_MIN = 20.0
# Ours: the energy-expended rate is taken over this much time. Straps send the field only in some
# notifications (the Heart Rate Service suggests every 10th) and in whole kJ, so over one 10 s
# step the rate read 0 and then double, and activity flickered between active and recovery; over
# a minute 20 kJ/min is 20 kJ, far above both errors.
ENERGY_SPAN_S = 60.0
RECOVERY_S = 600.0
# Ours: a short bout of activity gets a recovery as long as the bout plus one RMSSD window, not
# the full RECOVERY_S: HRV recovers in proportion to the exertion (Michael et al. 2017), and a
# minute on the stairs, or a high heart rate misread as activity before the resting heart rate
# was learned, must not blank the next ten minutes.
RECOVERY_PER_BOUT_EXTRA_S = 60.0
# Weights of the heart-rate and lnRMSSD deviations in the score (see the module docstring).
HR_WEIGHT = 1.0
LN_RMSSD_WEIGHT = 0.0
STRESSED_SCORE = 70.0
# Heart rate of the last beats this far above the window's: HR is climbing fast, as at the onset
# of exercise before it crosses the activity threshold; such a reading is not called stressed.
CLIMBING_BPM = 8.0
CALM_SCORE = 35.0
# Readings below this quality get no score; processing/pipeline.py says what quality is.
MIN_QUALITY = 0.5


@dataclass(frozen=True, slots=True)
class RrGate:
    """Without motion, a reading this far from the person's rest (the score's reference) is not
    judged: heart rate `rise_bpm` or more above it (until it falls below `leave_bpm`), or
    lnRMSSD `ln_drop` or more below it. See the module docstring ("Without motion")."""

    rise_bpm: float = 6.0
    leave_bpm: float = 4.2
    ln_drop: float = 0.3


RR_GATE = RrGate()


@dataclass(frozen=True, slots=True)
class Assessment:
    """The model's verdict on one window: activity, stress score (0-100 or None) and state."""

    activity: Activity
    score: float | None
    state: StressState


@dataclass
class StressModel:
    """Turns successive windows into activity, stress score and state for one person.

    `tz` (a `zoneinfo` zone) places readings in the day or night baseline when no `baseline` is
    given (a restored one is given the zone by `Baseline.from_dict`). `rr_gate`: the gate for
    windows whose motion is unknown (the module docstring); None: no gate at all (the heart-rate
    rules alone, which benchmarks/gudb.py compares)."""

    age: float = 40.0
    max_hr: float | None = None
    resting_hr: float | None = None
    baseline: Baseline | None = None
    tz: tzinfo = UTC
    rr_gate: RrGate | None = RR_GATE

    def __post_init__(self) -> None:
        if self.baseline is None:
            self.baseline = Baseline(self.tz)
        self._activity = Activity.UNKNOWN
        self._active_until = -math.inf
        self._active_since = -math.inf
        self._energy: deque[tuple[float, float]] = (
            deque()
        )  # (time, energy expended kJ) of the last ENERGY_SPAN_S
        self._gate_on = False

    def clock_stepped(self, step: float) -> None:
        """The wall clock moved by `step` seconds (the pipeline saw it go back): the times of the
        last activity move with it, so that a recovery (or an energy rate) keeps its length in
        real time instead of lasting until the new clock reaches the old times."""
        if self._active_until > -math.inf:
            self._active_until += step
            self._active_since += step
        self._energy = deque((t + step, kj) for t, kj in self._energy)

    def snapshot(self) -> dict:
        """The model's own state besides the baseline (activity and its times, energy), JSON-ready."""
        return {
            "activity": self._activity.value,
            "active_until": _finite(self._active_until),
            "active_since": _finite(self._active_since),
            "energy": [list(x) for x in self._energy],
            "gate_on": self._gate_on,
        }

    def restore(self, data: dict) -> None:
        """The inverse of `snapshot` (the baseline is restored on its own)."""
        self._activity = Activity(data["activity"])
        self._active_until = -math.inf if data["active_until"] is None else float(data["active_until"])
        self._active_since = -math.inf if data["active_since"] is None else float(data["active_since"])
        self._energy = deque((float(t), float(kj)) for t, kj in data["energy"])
        self._gate_on = bool(data["gate_on"])

    @property
    def hr_max(self) -> float:
        return self.max_hr or 208.0 - 0.7 * self.age

    def hr_rest(self) -> float:
        """The configured resting heart rate, else the one the baseline learned."""
        return self.resting_hr or self.baseline.resting_hr()

    def assess(
        self,
        time: float,
        hr_bpm: float,
        ln_rmssd: float | None,
        quality: float,
        energy_kj: float | None = None,
        recent_hr_bpm: float | None = None,
        known_rest: bool = False,
        motion: MotionState = MotionState.UNKNOWN,
        full_window: bool = True,
    ) -> Assessment:
        """The activity, stress score and state for a window ending at `time` (unix s).

        `hr_bpm` is the window's heart rate; `recent_hr_bpm` (the last few beats) drives the
        activity decision when given, because it sees the onset of exercise sooner.
        `known_rest`: the reading lies in a calibration span the user declared as rest; it is
        learned from as rest and never called stressed (`rescore_rest` scores it once the span
        is over). `motion`: what the person's motion said over the window (processing/motion.py);
        moving is activity whatever the heart rate, still is judged by heart rate without the
        RR-only gate. `full_window` False: the window is shorter than the pipeline's RMSSD window
        (the start of a stream); its activity is judged but it gets no score and is not learned.
        """
        good = ln_rmssd is not None and quality >= MIN_QUALITY and full_window
        activity = self._activity_of(time, hr_bpm, recent_hr_bpm, energy_kj, known_rest, motion)
        self._gate_on = gated = (
            activity == Activity.REST
            and good
            and not known_rest
            and motion != MotionState.STILL
            and self._gated(time, hr_bpm, ln_rmssd, recent_hr_bpm)
        )
        if good:
            self.baseline.add_hr(time, hr_bpm)
        if gated:
            # Learned as rest all the same (ours): a gate that kept its own reference from
            # learning could keep a person whose rest moved up out of rest for ever.
            self.baseline.add_rest(time, ln_rmssd, hr_bpm)
            return Assessment(Activity.UNKNOWN, None, StressState.UNKNOWN)
        if not good or activity == Activity.ACTIVE:
            return Assessment(activity, None, StressState.UNKNOWN)
        if not known_rest and not self.baseline.calibrated:
            if activity == Activity.REST:
                self.baseline.add_rest(time, ln_rmssd, hr_bpm)
            return Assessment(activity, None, StressState.UNKNOWN)
        z = self.deviation(time, hr_bpm, ln_rmssd, quality, known_rest)
        score = 100.0 * 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
        if activity == Activity.REST:
            self.baseline.add_rest(time, ln_rmssd, hr_bpm, known_rest)
        climbing = recent_hr_bpm is not None and recent_hr_bpm - hr_bpm > CLIMBING_BPM
        if (
            score >= STRESSED_SCORE
            and activity == Activity.REST
            and not climbing
            and not known_rest
            and self.baseline.calibrated
        ):
            state = StressState.STRESSED
        elif score <= CALM_SCORE:
            state = StressState.CALM
        else:
            state = StressState.NEUTRAL
        return Assessment(activity, score, state)

    def rescore_rest(self, time: float, hr_bpm: float, ln_rmssd: float, quality: float) -> Assessment:
        """The verdict on a reading of a declared rest against the baseline as it is now (the
        finished calibration); learns nothing. Rest, never stressed."""
        z = self.deviation(time, hr_bpm, ln_rmssd, quality, declared=True)
        score = 100.0 * 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
        return Assessment(
            Activity.REST, score, StressState.CALM if score <= CALM_SCORE else StressState.NEUTRAL
        )

    def assess_heart_rate(
        self,
        time: float,
        hr_bpm: float,
        energy_kj: float | None = None,
        recent_hr_bpm: float | None = None,
        known_rest: bool = False,
        motion: MotionState = MotionState.UNKNOWN,
    ) -> Assessment:
        """The verdict on a window with heart rate but no beats (a strap that sends no RR
        intervals): activity from heart-rate reserve and motion as for any window, no score, state
        `unknown` (the score needs the person's rest baseline, which is learned from HRV
        readings only). Its heart rate is learned from for the resting heart rate: the strap's
        own heart rate is the same quantity as 60000 / mean RR, and without it a person whose
        strap sends no RR would be judged against the population's resting heart rate for ever."""
        activity = self._activity_of(time, hr_bpm, recent_hr_bpm, energy_kj, known_rest, motion)
        self.baseline.add_hr(time, hr_bpm)
        return Assessment(activity, None, StressState.UNKNOWN)

    def deviation(
        self, time: float, hr_bpm: float, ln_rmssd: float, quality: float, declared: bool = False
    ) -> float:
        """z of a scored reading against the person's rest baseline (the module docstring): the
        day's kept reference (`Baseline.score_reference`), or for a reading of a declared rest
        (`declared`) the baseline as it is now, since that rest is what is being learned.
        `quality` is unused by this rule (benchmarks/stress_predict.py --hrv-variants tries rules
        that shrink the lnRMSSD term by it)."""
        ref = self.baseline.reference(time) if declared else self.baseline.score_reference(time)
        return (
            HR_WEIGHT * (hr_bpm - ref.hr_mean) / ref.hr_sd
            + LN_RMSSD_WEIGHT * (ref.ln_rmssd_mean - ln_rmssd) / ref.ln_rmssd_sd
        )

    def _gated(self, time: float, hr_bpm: float, ln_rmssd: float, recent_hr_bpm: float | None) -> bool:
        """The RR-only gate (`rr_gate`) holds for this reading; `recent_hr_bpm` is unused by this
        rule (benchmarks/gudb.py --tradeoff tries gates that use it)."""
        g = self.rr_gate
        if g is None or not self.baseline.calibrated:  # before calibration nothing is stressed anyway
            return False
        ref = self.baseline.score_reference(time)
        return (
            hr_bpm - ref.hr_mean >= (g.leave_bpm if self._gate_on else g.rise_bpm)
            or ref.ln_rmssd_mean - ln_rmssd >= g.ln_drop
        )

    def _activity_of(
        self,
        time: float,
        hr_bpm: float,
        recent_hr_bpm: float | None,
        energy_kj: float | None,
        known_rest: bool,
        motion: MotionState,
    ) -> Activity:
        if known_rest:
            self._activity = Activity.REST
            return Activity.REST
        return self._activity_at(
            time, max(hr_bpm, recent_hr_bpm or 0.0), energy_kj, motion == MotionState.MOVING
        )

    def _activity_at(self, time: float, hr: float, energy_kj: float | None, moving: bool = False) -> Activity:
        rest_hr = self.hr_rest()
        reserve = max(1.0, self.hr_max - rest_hr)
        hrr = (hr - rest_hr) / reserve
        energetic = False
        if energy_kj is not None:
            seen = self._energy
            if seen and (time <= seen[-1][0] or energy_kj < seen[-1][1]):
                seen.clear()  # out of order, or the strap's counter was reset
            seen.append((time, energy_kj))
            while len(seen) > 2 and time - seen[1][0] >= ENERGY_SPAN_S:
                seen.popleft()
            t0, e0 = seen[0]
            if time - t0 >= ENERGY_SPAN_S / 2:
                energetic = (energy_kj - e0) / ((time - t0) / 60.0) >= ACTIVE_ENERGY_KJ_PER_MIN
        if self._activity == Activity.ACTIVE:
            still = hrr >= ACTIVE_LEAVE_HRR or energetic or moving
        else:
            still = hrr >= ACTIVE_ENTER_HRR or energetic or moving
        if still:
            if self._activity != Activity.ACTIVE:
                self._active_since = time
            self._activity = Activity.ACTIVE
            self._active_until = time
        elif time - self._active_until < min(
            RECOVERY_S, self._active_until - self._active_since + RECOVERY_PER_BOUT_EXTRA_S
        ):
            self._activity = Activity.RECOVERY
        else:
            self._activity = Activity.REST
        return self._activity


def _finite(x: float) -> float | None:
    """-inf (never) as None: JSON has no infinity."""
    return x if math.isfinite(x) else None
