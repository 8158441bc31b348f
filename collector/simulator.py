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
    label: str = ""  # what the phase is, for summaries and plots (rest/stress/active/recovery/sleep)


# Typical parameter sets; HR and RMSSD ranges follow Nunan et al. 2010 (PACE 33:1407, resting
# RMSSD 42 +- 15 ms) and the stress/exercise directions cited in the module docstring.
PRESETS: dict[str, Phase] = {
    "rest": Phase("rest", 600, 64, 50, 22, 12, label="rest"),
    "stress": Phase("stress", 600, 84, 9, 26, 18, noise_ms=4, label="stress"),
    "exercise": Phase("exercise", 600, 138, 3, 6, 28, noise_ms=2.5, label="active"),
    "recovery": Phase("recovery", 600, 82, 14, 18, 16, noise_ms=4, label="recovery"),
    "calm": Phase("calm", 600, 60, 62, 22, 9, label="rest"),
    "sleep": Phase("sleep", 600, 54, 70, 20, 12, label="rest"),
}


def phase(kind: str, minutes: float, name: str | None = None, **overrides: float) -> Phase:
    """A preset phase of `kind` lasting `minutes`, optionally renamed or with parameters overridden."""
    base = PRESETS[kind]
    return replace(base, name=name or base.name, duration_s=minutes * 60.0, **overrides)


def demo_day() -> list[Phase]:
    """The demo script: a compressed day of rest, work stress, exercise, recovery and evening calm."""
    return [
        phase("rest", 12, "morning rest"),
        phase("stress", 12, "work stress"),
        phase("rest", 6, "break"),
        phase("exercise", 10, "exercise"),
        phase("recovery", 8, "recovery"),
        phase("calm", 12, "evening calm"),
    ]


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
        out.append(Beat(person, device, b.t, rr, hr_bpm=round(60000.0 / rr), contact=True, source="simulator"))
    return out
