"""The breathing exercises (exact pacing and instructions) and the choice of one by what works for the person.

Catalogue:
- resonance-frequency breathing at ~6 breaths/min (5 s in, 5 s out), 5 or 10 minutes: breathing
  at the cardiovascular resonance frequency maximises the RSA oscillation and baroreflex gain
  (Lehrer & Gevirtz 2014, Front Psychol 5:756, doi:10.3389/fpsyg.2014.00756);
- cyclic physiological sighing: a nasal inhale, a short second top-up inhale, a long mouth
  exhale, 5 minutes; five minutes a day improved mood and lowered respiratory rate more than
  mindfulness meditation (Balban et al. 2023, Cell Rep Med 4:100895,
  doi:10.1016/j.xcrm.2022.100895). Their study was self-paced; the 3 s in / 6 s out pacing is ours;
- box breathing 4-4-4-4 (in, hold, out, hold), 5 minutes: the equal-phase arm of the same trial
  (Balban et al. 2023), which also improved mood, less than cyclic sighing.

More exercises can be defined in the settings (`extra_exercises`, checked by `custom`).

Choice (ours): Thompson sampling (Russo et al. 2018, Found Trends Mach Learn 11:1) over each
exercise's measured effects (change in resting lnRMSSD after vs before, alerts/effect.py), with a
normal prior N(0, 0.3^2) and a normal likelihood whose SD is the person's measurement noise; with
probability `explore` (default 0.1) a uniformly random candidate instead, so that an exercise that
was unlucky early is still tried now and then. Randomness comes from a numpy Generator passed in.
"""

from __future__ import annotations

import math

import numpy as np

from alerts.prompt import Exercise

CATALOGUE: dict[str, Exercise] = {
    "resonance breathing": Exercise(),  # the Prompt's default
    "resonance breathing (10 min)": Exercise(
        "resonance breathing (10 min)",
        5.0,
        0.0,
        5.0,
        0.0,
        60,
        "Sit comfortably. Breathe in slowly through your nose for 5 seconds, then out gently for "
        "5 seconds, without holding. That is 6 breaths a minute; keep going for 10 minutes.",
    ),
    "cyclic sighing": Exercise(
        "cyclic sighing",
        3.0,
        0.0,
        6.0,
        0.0,
        33,
        "Breathe in through your nose for about 2 seconds, then take a second short sniff to fill "
        "your lungs fully (1 second). Then breathe out slowly through your mouth for 6 seconds, "
        "until your lungs are empty. Repeat for 5 minutes.",
    ),
    "box breathing": Exercise(
        "box breathing",
        4.0,
        4.0,
        4.0,
        4.0,
        19,
        "Breathe in through your nose for 4 seconds, hold for 4 seconds, breathe out for "
        "4 seconds, hold empty for 4 seconds. Repeat for 5 minutes.",
    ),
}

EXERCISE_KEYS = ("name", "inhale_s", "hold_in_s", "exhale_s", "hold_out_s", "cycles", "instructions")


def custom(spec: dict, key: str) -> Exercise:
    """An exercise defined in the settings; ValueError naming `key` and the field for anything wrong."""
    if not isinstance(spec, dict):
        # Every settings error is a ValueError, which the CLI reports in one line.
        raise ValueError(f"{key}: each exercise is a table of {', '.join(EXERCISE_KEYS)}")  # noqa: TRY004
    missing = [k for k in EXERCISE_KEYS if k not in spec]
    unknown = sorted(set(spec) - set(EXERCISE_KEYS))
    if missing or unknown:
        raise ValueError(f"{key}: exercise {spec.get('name', '?')!r}: missing {missing}, unknown {unknown}")
    name = spec["name"]
    for k in EXERCISE_KEYS[1:5]:
        v = spec[k]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{key}: exercise {name!r}: {k} must be a number of seconds >= 0")
    if not isinstance(spec["cycles"], int) or spec["cycles"] < 1:
        raise ValueError(f"{key}: exercise {name!r}: cycles must be a whole number >= 1")
    if spec["inhale_s"] + spec["exhale_s"] <= 0 or not spec["instructions"] or not name:
        raise ValueError(f"{key}: exercise {name!r}: needs a name, instructions and a breath longer than 0 s")
    return Exercise(**{k: spec[k] for k in EXERCISE_KEYS})


PRIOR_SD = 0.3  # ln units: no exercise is expected to move resting lnRMSSD by more than ~0.6


def posterior(effects: list[float], noise_sd: float) -> tuple[float, float]:
    """Mean and SD of the normal posterior of an exercise's true effect (ln units)."""
    precision = 1.0 / PRIOR_SD**2 + len(effects) / noise_sd**2
    mean = (sum(effects) / noise_sd**2) / precision
    return mean, math.sqrt(1.0 / precision)


def choose(
    candidates: tuple[str, ...],
    effects: dict[str, list[float]],
    noise_sd: float,
    explore: float,
    rng: np.random.Generator,
) -> str:
    """The exercise to offer: Thompson sampling with an exploration floor (see module docstring)."""
    if len(candidates) == 1:
        return candidates[0]
    if rng.random() < explore:
        return candidates[int(rng.integers(len(candidates)))]
    draws = []
    for name in candidates:
        mean, sd = posterior(effects.get(name, []), noise_sd)
        draws.append(rng.normal(mean, sd))
    return candidates[int(np.argmax(draws))]
