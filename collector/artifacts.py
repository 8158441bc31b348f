"""Inject the artifacts real beat detectors make (missed, extra, ectopic beats) into a clean series.

Kinds, as classified by Lipponen & Tarvainen 2019 (J Med Eng Technol 43(3):173-181,
doi:10.1080/03091902.2019.1640306):
- missed: a beat the detector did not see; two RR intervals merge into one long interval;
- extra: a spurious detection (T wave, motion) splits one interval into a short pair;
- ectopic: a premature beat (e.g. a PVC) arrives 20-35 % early and is followed by a
  compensatory pause, so the short-long pair sums to the two normal intervals.

Used by the simulator, the tests and the benchmarks; the true beat times are returned with the
corrupted series so a correction can be scored beat by beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("missed", "extra", "ectopic")


@dataclass(frozen=True)
class Injected:
    """One artifact: its kind and the true beat times around it (seconds)."""

    kind: str
    true_times: tuple[float, ...]  # the true beats the corrected series must reproduce
    t_from: float  # the true beat before the artifact
    t_to: float  # the true beat after the artifact


def inject(
    times: np.ndarray, rate: float, kinds: tuple[str, ...] = KINDS, seed: int = 0
) -> tuple[np.ndarray, list[Injected]]:
    """Return corrupted beat times and what was injected, `rate` artifacts of each kind per beat.

    `times` are the true beat times (s). Artifacts are spaced at least 12 beats apart so each
    can be scored on its own.
    """
    rng = np.random.default_rng(seed)
    n = len(times)
    per_kind = round(rate * n)
    slots = np.arange(14, n - 14, 12)
    chosen = rng.choice(slots, size=min(len(slots), per_kind * len(kinds)), replace=False)
    rng.shuffle(chosen)
    plan = {int(i): kinds[k % len(kinds)] for k, i in enumerate(chosen)}
    out: list[float] = []
    injected: list[Injected] = []
    for i in range(n):
        kind = plan.get(i)
        t_prev, t, t_next = times[i - 1], times[i], times[i + 1] if i + 1 < n else times[i]
        if kind == "missed":
            injected.append(Injected(kind, (float(t),), float(t_prev), float(t_next)))
            continue  # beat i is not detected
        if kind == "extra":
            frac = rng.uniform(0.3, 0.7)
            out.append(float(t_prev + frac * (t - t_prev)))
            out.append(float(t))
            injected.append(Injected(kind, (), float(t_prev), float(t)))
            continue
        if kind == "ectopic":
            early = rng.uniform(0.2, 0.35) * (t - t_prev)
            out.append(float(t - early))
            injected.append(Injected(kind, (float(t),), float(t_prev), float(t_next)))
            continue
        out.append(float(t))
    return np.asarray(out), injected


def score_repairs(
    corrected_times: np.ndarray, injected: list[Injected], tolerance_s: float = 0.05
) -> dict[str, tuple[int, int]]:
    """Per kind: (repaired, total). Repaired means: between the true neighbours the corrected
    series has exactly the true beats, each within `tolerance_s` (50 ms by default)."""
    ct = np.asarray(corrected_times)
    result: dict[str, list[int]] = {}
    for inj in injected:
        lo = np.searchsorted(ct, inj.t_from + tolerance_s, side="left")
        hi = np.searchsorted(ct, inj.t_to - tolerance_s, side="right")
        inside = ct[lo:hi]
        ok = len(inside) == len(inj.true_times) and all(
            abs(a - b) <= tolerance_s for a, b in zip(inside, inj.true_times)
        )
        r = result.setdefault(inj.kind, [0, 0])
        r[0] += ok
        r[1] += 1
    return {k: (v[0], v[1]) for k, v in result.items()}
