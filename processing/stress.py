"""Activity detection, the personal resting baseline, the 0-100 stress score and the stress state.

Why these inputs: acute psychological stress withdraws vagal activity - RMSSD / lnRMSSD fall
and heart rate rises - consistently across studies (Kim et al. 2018, "Stress and heart rate
variability: a meta-analysis and review of the literature", Psychiatry Investig 15(3):235,
doi:10.30773/pi.2017.08.17; Castaldo et al. 2015, Biomed Signal Process Control 18:370,
doi:10.1016/j.bspc.2015.02.012). Between people these values differ several-fold, so the score
compares a person with their own resting baseline (Plews et al. 2013, Sports Med 43:773,
doi:10.1007/s40279-013-0071-8: a rolling personal lnRMSSD baseline), and uses population
norms (Nunan et al. 2010, PACE 33:1407) until enough personal rest data exists.

Physical activity lowers HRV and raises HR far more than stress does, so it must never read as
stress. Activity is judged on heart-rate reserve, HRR% = (HR - HRrest) / (HRmax - HRrest)
(Karvonen et al. 1957, Ann Med Exp Biol Fenn 35:307), with HRmax = 208 - 0.7 age (Tanaka et
al. 2001, J Am Coll Cardiol 37:153, doi:10.1016/S0735-1097(00)01054-8). ACSM classes >= 30 %
HRR as at least light-to-moderate exercise (Garber et al. 2011, Med Sci Sports Exerc 43:1334);
mental stress raises HR by ~5-15 bpm (Kim et al. 2018), i.e. usually < 20 % HRR. When a strap
reports energy expended, a rise of >= 20 kJ/min (~5 kcal/min, ~4 METs for 75 kg) also counts as
activity. After activity, HRV stays suppressed for minutes to hours (Michael et al. 2017, Front
Physiol 8:301), so a `recovery` period follows during which the state is never `stressed`.

Pure: no I/O and no clock; all state is in `StressModel` and its `Baseline`, which the
application may persist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from processing.reading import Activity, StressState

POPULATION_LN_RMSSD = (math.log(42.0), 0.40)  # ln of Nunan 2010's 42 ms; SD of ln(RMSSD) ~0.4
POPULATION_REST_HR = (68.0, 8.0)

ACTIVE_ENTER_HRR = 0.30
ACTIVE_LEAVE_HRR = 0.20
ACTIVE_ENERGY_KJ_PER_MIN = 20.0
RECOVERY_S = 600.0
# Rest readings (each step) the personal baseline needs before it outweighs population norms.
BASELINE_FULL_WEIGHT_S = 1800.0
STRESSED_SCORE = 70.0
# Rest seconds a new person's baseline needs before `stressed` is ever declared: population
# norms alone misjudge many people (resting RMSSD varies several-fold between healthy adults).
CALIBRATION_S = 600.0
# Heart rate of the last beats this far above the window's: HR is climbing fast, as at the onset
# of exercise before it crosses the activity threshold; such a reading is not called stressed.
CLIMBING_BPM = 8.0
CALM_SCORE = 35.0
MIN_QUALITY = 0.5


@dataclass
class Baseline:
    """Running mean and variance (exponentially weighted, ~1 day memory in rest time) of
    lnRMSSD and heart rate during rest; `rest_s` counts the rest seconds seen."""

    ln_rmssd_mean: float = POPULATION_LN_RMSSD[0]
    ln_rmssd_var: float = POPULATION_LN_RMSSD[1] ** 2
    hr_mean: float = POPULATION_REST_HR[0]
    hr_var: float = POPULATION_REST_HR[1] ** 2
    rest_s: float = 0.0

    def update(self, ln_rmssd: float, hr: float, dt_s: float) -> None:
        """Fold one rest reading covering `dt_s` seconds into the baseline."""
        self.rest_s += dt_s
        # Learning rate: fast while young (a plain mean of what has been seen), then a 24 h memory.
        alpha = max(dt_s / max(self.rest_s, dt_s), dt_s / 86400.0)
        for name, x in (("ln_rmssd", ln_rmssd), ("hr", hr)):
            mean = getattr(self, f"{name}_mean")
            var = getattr(self, f"{name}_var")
            delta = x - mean
            mean += alpha * delta
            var = (1 - alpha) * (var + alpha * delta * delta)
            setattr(self, f"{name}_mean", mean)
            setattr(self, f"{name}_var", var)

    def blended(self) -> tuple[float, float, float, float]:
        """(lnRMSSD mean, lnRMSSD SD, HR mean, HR SD), personal values weighted by how much rest
        data exists, population norms for the rest. SDs have floors so that a very steady person
        does not read every small change as stress."""
        w = min(1.0, self.rest_s / BASELINE_FULL_WEIGHT_S)
        pm, ps = POPULATION_LN_RMSSD
        hm, hs = POPULATION_REST_HR
        ln_mean = w * self.ln_rmssd_mean + (1 - w) * pm
        ln_sd = max(0.15, w * math.sqrt(self.ln_rmssd_var) + (1 - w) * ps)
        hr_mean = w * self.hr_mean + (1 - w) * hm
        hr_sd = max(3.0, w * math.sqrt(self.hr_var) + (1 - w) * hs)
        return ln_mean, ln_sd, hr_mean, hr_sd


@dataclass(frozen=True, slots=True)
class Assessment:
    """The model's verdict on one window: activity, stress score (0-100 or None) and state."""

    activity: Activity
    score: float | None
    state: StressState


@dataclass
class StressModel:
    """Turns successive windows into activity, stress score and state for one person."""

    age: float = 40.0
    max_hr: float | None = None
    resting_hr: float | None = None
    baseline: Baseline | None = None

    def __post_init__(self) -> None:
        if self.baseline is None:
            self.baseline = Baseline()
        self._activity = Activity.UNKNOWN
        self._active_until = -math.inf
        self._last_energy: tuple[float, float] | None = None
        self._last_time: float | None = None

    @property
    def hr_max(self) -> float:
        return self.max_hr or 208.0 - 0.7 * self.age

    def hr_rest(self) -> float:
        return self.resting_hr or self.baseline.blended()[2]

    def assess(
        self,
        time: float,
        hr_bpm: float,
        ln_rmssd: float | None,
        quality: float,
        energy_kj: float | None = None,
        recent_hr_bpm: float | None = None,
    ) -> Assessment:
        """The activity, stress score and state for a window ending at `time` (unix s).

        `hr_bpm` is the window's heart rate; `recent_hr_bpm` (the last few beats) drives the
        activity decision when given, because it sees the onset of exercise sooner.
        """
        dt = 0.0 if self._last_time is None else max(0.0, time - self._last_time)
        self._last_time = time
        activity = self._activity_at(time, max(hr_bpm, recent_hr_bpm or 0.0), energy_kj)
        if ln_rmssd is None or quality < MIN_QUALITY:
            return Assessment(activity, None, StressState.UNKNOWN)
        if activity == Activity.ACTIVE:
            return Assessment(activity, None, StressState.UNKNOWN)
        ln_mean, ln_sd, hr_mean, hr_sd = self.baseline.blended()
        # Lower lnRMSSD and higher HR than baseline both point to stress; vagal withdrawal
        # (lnRMSSD) weighs more because HR also moves with posture and digestion.
        z = 0.65 * (ln_mean - ln_rmssd) / ln_sd + 0.35 * (hr_bpm - hr_mean) / hr_sd
        score = 100.0 * 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
        calibrating = self.baseline.rest_s < CALIBRATION_S
        if activity == Activity.REST and dt > 0 and (calibrating or score < STRESSED_SCORE):
            # After calibration, learn only from rest that does not itself look stressed, so
            # that a stressful week does not become the new normal.
            self.baseline.update(ln_rmssd, hr_bpm, dt)
        climbing = recent_hr_bpm is not None and recent_hr_bpm - hr_bpm > CLIMBING_BPM
        if score >= STRESSED_SCORE and activity == Activity.REST and not climbing and not calibrating:
            state = StressState.STRESSED
        elif score <= CALM_SCORE:
            state = StressState.CALM
        else:
            state = StressState.NEUTRAL
        return Assessment(activity, score, state)

    def _activity_at(self, time: float, hr: float, energy_kj: float | None) -> Activity:
        rest_hr = self.hr_rest()
        reserve = max(1.0, self.hr_max - rest_hr)
        hrr = (hr - rest_hr) / reserve
        energetic = False
        if energy_kj is not None:
            if self._last_energy is not None and time > self._last_energy[0]:
                rate = (energy_kj - self._last_energy[1]) / ((time - self._last_energy[0]) / 60.0)
                energetic = rate >= ACTIVE_ENERGY_KJ_PER_MIN
            self._last_energy = (time, energy_kj)
        if self._activity == Activity.ACTIVE:
            still = hrr >= ACTIVE_LEAVE_HRR or energetic
        else:
            still = hrr >= ACTIVE_ENTER_HRR or energetic
        if still:
            self._activity = Activity.ACTIVE
            self._active_until = time
        elif time - self._active_until < RECOVERY_S:
            self._activity = Activity.RECOVERY
        else:
            self._activity = Activity.REST
        return self._activity
