"""A deterministic physiological RR generator with scripted phases (rest, stress, exercise, ...).

Model (per beat, in the spirit of the RR-process of McSharry et al. 2003, "A dynamical model
for generating synthetic electrocardiogram signals", IEEE Trans Biomed Eng 50(3):289-294,
doi:10.1109/TBME.2003.808805): the heart period at time t is

    RR(t) = mean_rr(t) + a_rsa(t) sin(2 pi f_resp(t) t) + a_mayer(t) sin(2 pi 0.1 t + phi)
            + drift(t) + noise

- respiratory sinus arrhythmia (RSA) at the breathing rate: the HF component (0.15-0.4 Hz),
  vagally mediated, shrinks under psychological stress and exercise (Task Force 1996,
  Circulation 93:1043; Berntson et al. 1997, Psychophysiology 34:623);
- Mayer waves at ~0.1 Hz: the LF component from baroreflex oscillations of blood pressure
  (Julien 2006, Cardiovasc Res 70:12);
- a slow Ornstein-Uhlenbeck drift (VLF), and white beat-to-beat noise.

Each phase sets heart rate, RSA and Mayer amplitudes and breathing rate; parameters move to
a new phase's values exponentially (time constant `tau_s`), as heart rate does after a change
of load. Stress lowers RSA (HF) and RMSSD, raises HR and LF/HF (Kim et al. 2018, Psychiatry
Investig 15(3):235, doi:10.30773/pi.2017.08.17); exercise raises HR far more and nearly
abolishes RSA (Michael et al. 2017, Front Physiol 8:301). Everything is driven by one seeded
numpy Generator, so the same script and seed give the same beats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from collector.events import Beat


@dataclass(frozen=True)
class Phase:
    """One scripted phase. Units: seconds, bpm, milliseconds, breaths per minute."""

    name: str
    duration_s: float
    hr_bpm: float
    rsa_ms: float  # half peak-to-peak RR modulation at the breathing rate
    mayer_ms: float  # half peak-to-peak RR modulation at ~0.1 Hz
    breaths_per_min: float
    noise_ms: float = 6.0
    label: str = ""  # what the phase is, for summaries and plots (rest/stress/walk/active/recovery/sleep)


# Typical parameter sets; HR and RMSSD ranges follow Nunan et al. 2010 (PACE 33:1407, resting
# RMSSD 42 +- 15 ms) and the stress/exercise directions cited in the module docstring.
PRESETS: dict[str, Phase] = {
    "rest": Phase("rest", 600, 64, 50, 22, 12, label="rest"),
    "stress": Phase("stress", 600, 84, 9, 26, 18, noise_ms=4, label="stress"),
    "exercise": Phase("exercise", 600, 138, 3, 6, 28, noise_ms=2.5, label="active"),
    # A brisk walk: HR up ~25 bpm, still below 30 % of the heart-rate reserve, so heart rate alone
    # reads it as rest (GUDB's treadmill walks: median HR 88 against 76 seated; Howell & Porr
    # 2018), with the vagal withdrawal and faster breathing of light exercise.
    "walk": Phase("walk", 600, 89, 12, 14, 20, noise_ms=4, label="walk"),
    "recovery": Phase("recovery", 600, 82, 14, 18, 16, noise_ms=4, label="recovery"),
    "calm": Phase("calm", 600, 60, 62, 22, 9, label="rest"),
    "sleep": Phase("sleep", 600, 54, 70, 20, 12, label="rest"),
}


def phase(kind: str, minutes: float, name: str | None = None, **overrides: float) -> Phase:
    """A preset phase of `kind` lasting `minutes`, optionally renamed or with parameters overridden."""
    base = PRESETS[kind]
    return replace(base, name=name or base.name, duration_s=minutes * 60.0, **overrides)


def demo_day() -> list[Phase]:
    """The demo script: a compressed day of rest, work stress, a walk, exercise, recovery and evening calm.

    The person takes the breathing prompt the work stress brings (the alert engine prompts after
    10 of 15 stressed minutes at rest) and breathes at 6 breaths/min for 5 minutes, then rests;
    walks to the gym (its heart rate alone would read as stress; their phone says walking, see
    `phone_reports`); a tense call in the evening brings a second prompt, which they say was wrong."""
    return [
        phase("rest", 12, "morning rest"),
        phase("stress", 12, "work stress"),
        breathing(5, 6.0, "breathing"),
        phase("rest", 8, "break"),
        phase("walk", 10, "walk to the gym"),
        phase("exercise", 10, "exercise"),
        phase("recovery", 8, "recovery"),
        phase("stress", 14, "tense call"),
        phase("calm", 12, "evening calm"),
    ]


# What a phone's activity recognition says during a phase of each label (the simulated phone
# reports like Home Assistant's companion app, collector/phone_activity.py).
PHONE_SAYS = {"walk": "walking", "active": "running"}


def phone_reports(script: list[Phase], start: float = 0.0, every_s: float = 60.0) -> list[tuple[float, str]]:
    """(time, activity) of a phone reporting once every `every_s` through `script`: walking in a
    walk, running in exercise, still otherwise."""
    out, t0 = [], start
    for ph in script:
        t = t0
        while t < t0 + ph.duration_s:
            out.append((t, PHONE_SAYS.get(ph.label, "still")))
            t += every_s
        t0 += ph.duration_s
    return out


@dataclass(frozen=True)
class SimulatedBeat:
    """A true beat with the phase it belongs to."""

    t: float
    rr_ms: float
    phase: str


def simulate(
    script: list[Phase], seed: int = 0, start: float = 0.0, tau_s: float = 25.0
) -> list[SimulatedBeat]:
    """Generate the clean beats of `script` starting at unix time `start`."""
    rng = np.random.default_rng(seed)
    mayer_phase = rng.uniform(0, 2 * math.pi)
    resp_phase = 0.0
    drift = 0.0
    t = start
    beats: list[SimulatedBeat] = []
    cur = script[0]
    mean_rr, rsa, mayer, f_resp, noise = _params(cur)
    end_of_phase = start
    for ph in script:
        end_of_phase += ph.duration_s
        target = _params(ph)
        while t < end_of_phase:
            rr = mean_rr
            dt = beats[-1].rr_ms / 1000.0 if beats else 0.8
            resp_phase += 2 * math.pi * f_resp * dt
            # Ornstein-Uhlenbeck drift with a 60 s time constant and ~15 ms spread.
            drift += -drift * dt / 60.0 + 15.0 * math.sqrt(2 * dt / 60.0) * rng.standard_normal()
            rr += rsa * math.sin(resp_phase) + mayer * math.sin(2 * math.pi * 0.1 * t + mayer_phase)
            rr += drift * (mean_rr / 900.0) + noise * rng.standard_normal()
            rr = min(max(rr, 300.0), 2000.0)
            t += rr / 1000.0
            beats.append(SimulatedBeat(t, rr, ph.name))
            a = 1.0 - math.exp(-(rr / 1000.0) / tau_s)
            mean_rr, rsa, mayer, f_resp, noise = (
                p + a * (q - p) for p, q in zip((mean_rr, rsa, mayer, f_resp, noise), target)
            )
    return beats


def _params(ph: Phase) -> tuple[float, float, float, float, float]:
    return (60000.0 / ph.hr_bpm, ph.rsa_ms, ph.mayer_ms, ph.breaths_per_min / 60.0, ph.noise_ms)


def to_beats(sim: list[SimulatedBeat], person: str = "me", device: str = "simulator") -> list[Beat]:
    """Beat events as a strap would report them: RR quantised to 1/1024 s, HR from RR."""
    out = []
    for b in sim:
        rr = round(b.rr_ms * 1.024) / 1.024
        out.append(
            Beat(person, device, b.t, rr, hr_bpm=round(60000.0 / rr), contact=True, source="simulator")
        )
    return out


# -- breathing exercises ----------------------------------------------------------------------


def breathing(minutes: float, breaths_per_min: float, name: str = "breathing", rsa_ms: float = 60.0) -> Phase:
    """Paced breathing: RSA at the paced rate, larger the slower the breathing (slow breathing
    near 6/min resonates with the baroreflex and gives the largest RSA: Lehrer & Gevirtz 2014,
    Front Psychol 5:756); HR a little below rest."""
    return phase("calm", minutes, name, breaths_per_min=breaths_per_min, rsa_ms=rsa_ms, hr_bpm=66)


def exercise_session(
    breaths_per_min: float,
    helps: float,
    before_min: float = 8.0,
    during_min: float = 5.0,
    after_min: float = 8.0,
) -> list[Phase]:
    """A stressed person at rest does a breathing exercise; `helps` (0-1) is how much of the way
    from the stressed state back to rest the person gets afterwards (0: no effect at all)."""
    stress, rest = PRESETS["stress"], PRESETS["rest"]

    def mix(a: float, b: float) -> float:
        return a + helps * (b - a)

    after = replace(
        stress,
        name="after",
        duration_s=after_min * 60.0,
        hr_bpm=mix(stress.hr_bpm, rest.hr_bpm),
        rsa_ms=mix(stress.rsa_ms, rest.rsa_ms),
        breaths_per_min=mix(stress.breaths_per_min, rest.breaths_per_min),
        noise_ms=mix(stress.noise_ms, rest.noise_ms),
        mayer_ms=mix(stress.mayer_ms, rest.mayer_ms),
    )
    return [phase("stress", before_min, "before"), breathing(during_min, breaths_per_min, "exercise"), after]


# -- days and weeks ---------------------------------------------------------------------------
#
# A day is a list of segments at local times (sleep, morning, work with stress episodes, an
# optional workout, evening). Values per person and day: a nightly lnRMSSD drawn around the
# person's mean with day-to-day SD `night_sd` (0.15 ln units, ours: ~4 % of a nightly lnRMSSD of
# ~4, the order of the day-to-day CV reported by Plews et al. 2012, Eur J Appl Physiol 112:3729),
# HR and RMSSD per activity as in PRESETS. A chronic-stress period (from a given day) lowers the
# nightly and daytime lnRMSSD and adds work stress episodes, as chronic stress lowers vagal tone
# (Kim et al. 2018, Psychiatry Investig 15:235).
#
# Two paths: `day_script` gives beat-level phases (exact, ~100 k beats a day, seconds per day
# through the pipeline); `simulate_minutes` gives one summary per minute (label, HR, RMSSD)
# directly, so weeks run in about a second: the chronic tests use it.


@dataclass(frozen=True)
class Person:
    """A simulated wearer's typical values; RMSSD in ms, HR in bpm, times as local minutes."""

    night_ln_rmssd: float = 4.1  # ln(60 ms) asleep
    night_sd: float = 0.15
    rest_rmssd_ms: float = 42.0  # Nunan et al. 2010
    rest_hr_bpm: float = 64.0
    sleep_hr_bpm: float = 54.0
    stress_episodes: float = 1.5  # per working day (mean of a Poisson count)
    workout_prob: float = 0.4


@dataclass(frozen=True)
class Chronic:
    """A chronic-stress period from day `start` (inclusive) for `days` days."""

    start: int
    days: int = 10_000
    ln_drop: float = 0.3  # of the nightly lnRMSSD
    rest_drop: float | None = None  # of the daytime resting lnRMSSD (default: ln_drop)
    extra_episodes: float = 3.0
    sd_factor: float = 1.0  # the morning readings' day-to-day SD is this much larger (plan_mornings)


@dataclass(frozen=True)
class Segment:
    """A stretch of one day: label, start and length in seconds after local midnight, values."""

    label: str  # sleep / rest / stress / active / recovery / off
    start_s: float
    duration_s: float
    hr_bpm: float
    rmssd_ms: float


def plan_day(
    day: int, person: Person, rng: np.random.Generator, chronic: Chronic | None = None
) -> list[Segment]:
    """One local day's segments, ordered, covering 00:00-24:00."""
    hit = chronic is not None and chronic.start <= day < chronic.start + chronic.days
    drop = chronic.ln_drop if hit else 0.0
    rest_drop = (drop if chronic.rest_drop is None else chronic.rest_drop) if hit else 0.0
    night = math.exp(person.night_ln_rmssd - drop + person.night_sd * rng.standard_normal())
    rest = person.rest_rmssd_ms * math.exp(-rest_drop + 0.05 * rng.standard_normal())
    wake = 6.75 * 3600 + rng.normal(0, 900)
    bed = 23.0 * 3600 + rng.normal(0, 900)
    stress_hr, stress_rmssd = person.rest_hr_bpm + 20, rest * 0.3
    marks: list[Segment] = [
        Segment("sleep", 0.0, wake, person.sleep_hr_bpm, night),
        Segment("rest", wake, 7.5 * 3600 - wake, person.rest_hr_bpm, rest),
        Segment("off", 7.5 * 3600, 900, 0.0, 0.0),  # a shower: strap off
        Segment("rest", 7.75 * 3600, 3600 * 0.75, person.rest_hr_bpm + 2, rest),
    ]
    work_start, work_end = 8.5 * 3600, 17.0 * 3600
    episodes = rng.poisson(person.stress_episodes + (chronic.extra_episodes if hit else 0.0))
    starts = np.sort(rng.uniform(work_start, work_end - 2700, episodes))
    t = work_start
    for s in starts:
        if s < t:
            continue
        length = float(rng.uniform(900, 2700))
        marks.append(Segment("rest", t, s - t, person.rest_hr_bpm + 4, rest * 0.9))
        marks.append(Segment("stress", s, length, stress_hr, stress_rmssd))
        t = s + length
    marks.append(Segment("rest", t, work_end - t, person.rest_hr_bpm + 4, rest * 0.9))
    t = work_end
    if rng.random() < person.workout_prob:
        marks.append(Segment("rest", t, 1800, person.rest_hr_bpm, rest))
        marks.append(Segment("active", t + 1800, 2700, 140.0, 5.0))
        marks.append(Segment("recovery", t + 4500, 900, 85.0, 15.0))
        t += 5400
    marks.append(Segment("rest", t, bed - t, person.rest_hr_bpm - 2, rest * 1.1))
    marks.append(Segment("sleep", bed, 86400 - bed, person.sleep_hr_bpm, night))
    return [m for m in marks if m.duration_s > 0]


def plan_days(
    n_days: int, seed: int = 0, person: Person = Person(), chronic: Chronic | None = None
) -> list[list[Segment]]:
    """`n_days` consecutive days (day 0 first), reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    return [plan_day(d, person, rng, chronic) for d in range(n_days)]


@dataclass(frozen=True)
class Minute:
    """One simulated minute: its end time (unix s), label, HR and RMSSD (coarse path)."""

    t: float
    label: str
    hr_bpm: float
    rmssd_ms: float


def simulate_minutes(days: list[list[Segment]], seed: int = 0, start: float = 0.0) -> list[Minute]:
    """Per-minute values of planned days from unix time `start` (local midnight of day 0): the
    segment's values with minute-to-minute noise (HR SD 1.5 bpm, lnRMSSD SD 0.08: ours, the
    spread of successive 1-minute windows at steady rest). Minutes with the strap off are absent."""
    rng = np.random.default_rng(seed)
    out: list[Minute] = []
    for d, segments in enumerate(days):
        for seg in segments:
            if seg.label == "off":
                continue
            # The minutes whose end lies in (start, end] belong to this segment.
            first = int(seg.start_s // 60.0) + 1
            n = int((seg.start_s + seg.duration_s) // 60.0) - first + 1
            if n <= 0:
                continue
            hr = seg.hr_bpm + 1.5 * rng.standard_normal(n)
            rm = seg.rmssd_ms * np.exp(0.08 * rng.standard_normal(n))
            base = start + d * 86400.0
            out.extend(
                Minute(base + (first + i) * 60.0, seg.label, float(hr[i]), float(rm[i])) for i in range(n)
            )
    return out


def day_script(segments: list[Segment]) -> list[Phase]:
    """Beat-level phases for one planned day (strap-off time becomes a gap-free rest here: use
    `simulate(...)` per worn stretch to model it). RSA amplitude ~ RMSSD / 0.76 (a sinusoid of
    amplitude A at 0.2 Hz sampled once per beat has an RMSSD of ~0.76 A)."""
    kinds = {
        "sleep": "sleep",
        "rest": "rest",
        "stress": "stress",
        "active": "exercise",
        "recovery": "recovery",
        "off": "rest",
    }
    out = []
    for seg in segments:
        ph = phase(kinds[seg.label], seg.duration_s / 60.0, seg.label)
        if seg.label != "off":
            ph = replace(ph, hr_bpm=seg.hr_bpm, rsa_ms=max(seg.rmssd_ms / 0.76, 1.0))
        out.append(ph)
    return out


# -- morning readings -------------------------------------------------------------------------
#
# People who wear a strap only for a short reading on waking (processing/morning.py). Per person
# and day: whether they measure (some mornings are missed: `missed_per_week`, drawn per week),
# when (minutes after local midnight), the morning's true lnRMSSD (around the person's mean with
# day-to-day SD `sd`; ours, 0.12 ln units: a day-to-day CV of ~3 % at lnRMSSD 4, inside the
# 2-10 % of lnRMSSD CVs reported by Plews et al. 2012, Eur J Appl Physiol 112:3729) and heart
# rate, and the attempts: a reading may be spoiled by movement or a noisy signal (`fail_prob`),
# after which the person takes it again (`retake_prob`) or not. A chronic-stress period
# (`Chronic`) lowers the mornings' lnRMSSD by `ln_drop` and widens their day-to-day spread by
# `sd_factor` (a rising CV of lnRMSSD goes with poorer coping: Flatt & Esco 2016, J Strength
# Cond Res 30:378), and raises heart rate a little (3 bpm per 0.3 of lnRMSSD, ours).


@dataclass(frozen=True)
class MorningPerson:
    """A simulated morning reader: mean seated morning lnRMSSD, its day-to-day SD, heart rate,
    missed mornings per week and how often a reading is spoiled, and retaken then."""

    ln_rmssd: float = 4.0  # RMSSD 55 ms seated on waking
    sd: float = 0.12
    hr_bpm: float = 60.0
    wake_min: float = 405.0  # 06:45 local
    missed_per_week: int = 2
    fail_prob: float = 0.1
    retake_prob: float = 0.7


@dataclass(frozen=True)
class MorningPlan:
    """One day's mornings: the local minute the first attempt starts, the true lnRMSSD and heart
    rate, and the attempts in order ("ok", "movement", "artifacts"; empty = a missed morning)."""

    day: int
    minute: float
    ln_rmssd: float
    hr_bpm: float
    attempts: tuple[str, ...]


def plan_mornings(
    n_days: int, seed: int = 0, person: MorningPerson = MorningPerson(), chronic: Chronic | None = None
) -> list[MorningPlan]:
    """`n_days` consecutive mornings (day 0 first), reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    missed: set[int] = set()
    for week in range(0, n_days, 7):
        k = min(person.missed_per_week, 7)
        missed.update(int(d) for d in week + rng.choice(7, size=k, replace=False))
    out = []
    for day in range(n_days):
        hit = chronic is not None and chronic.start <= day < chronic.start + chronic.days
        drop = chronic.ln_drop if hit else 0.0
        sd = person.sd * (chronic.sd_factor if hit else 1.0)
        ln = person.ln_rmssd - drop + sd * rng.standard_normal()
        hr = person.hr_bpm + 10.0 * drop + 2.0 * rng.standard_normal()
        minute = person.wake_min + 10.0 + rng.normal(0.0, 15.0)
        attempts: list[str] = []
        if day not in missed:
            while True:
                if rng.random() >= person.fail_prob:
                    attempts.append("ok")
                    break
                attempts.append("movement" if rng.random() < 0.5 else "artifacts")
                if rng.random() >= person.retake_prob:
                    break
        out.append(MorningPlan(day, float(minute), float(ln), float(hr), tuple(attempts)))
    return out


def morning_script(
    plan: MorningPlan,
    outcome: str,
    stabilise_s: float = 60.0,
    measure_s: float = 60.0,
    posture_hr_bpm: float = 0.0,
) -> list[Phase]:
    """Beat-level phases of one attempt of a morning reading: still rest whose 1 min lnRMSSD is
    about the plan's (breathing 12/min; RMSSD ~ 0.86 x the RSA amplitude at that rate, measured on
    this generator), then 30 s more. "movement": the person gets up as the measured window begins
    and walks about (heart rate +40 bpm). The caller injects artifacts (collector.artifacts.inject) for
    "artifacts", whose beats are otherwise still."""
    rsa = math.exp(plan.ln_rmssd) / 0.857
    rest = phase(
        "calm",
        (stabilise_s + measure_s + 30.0) / 60.0,
        "morning",
        hr_bpm=plan.hr_bpm + posture_hr_bpm,
        rsa_ms=rsa,
        breaths_per_min=12.0,
    )
    if outcome != "movement":
        return [rest]
    before = replace(rest, duration_s=stabilise_s)
    walk = phase("rest", (measure_s + 30.0) / 60.0, "walking", hr_bpm=plan.hr_bpm + 40.0, rsa_ms=8.0)
    return [before, walk]
