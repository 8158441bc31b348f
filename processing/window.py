"""A person's recent beats as arrays, and the time-domain HRV of trailing windows over them, many at once.

Formulas, units and references of the time-domain and Poincare statistics (all in ms unless
stated; conventions as Kubios HRV 3.1, Tarvainen et al. 2014, Comput Methods Programs Biomed
113:210, and neurokit2, see processing/hrv.py for where the two differ):
- mean RR = sum(RR) / N; heart rate = 60000 / mean RR (beats/min);
- SDNN = sqrt(sum((RR - mean RR)^2) / (N - 1)) (Task Force 1996, Circulation 93:1043);
- RMSSD = sqrt(mean(dRR^2)) over the successive differences dRR = RR[k] - RR[k-1]
  (Task Force 1996);
- pNNx (%) = 100 * #(|dRR| > x ms) / #(dRR) (pNN50: Task Force 1996; pNN20 and other
  thresholds: Mietus et al. 2002, Heart 88:378, doi:10.1136/heart.88.4.378);
- SD1 / SD2 = sample SDs (ddof = 1) of dRR / sqrt(2) and of (RR[k] + RR[k-1]) / sqrt(2)
  (Poincare plot axes; Brennan et al. 2001, IEEE Trans Biomed Eng 48:1342).

Successive pairs: a difference is taken only between two beats that follow each other with no
gap between them (`append(..., successive=False)` marks the first beat after a gap). Beats on
both sides of a gap stay in a window (so a wrist device that drops beats still yields a reading
from the pairs it has), but no pair ever spans a gap and nothing is interpolated. Every
pair-based statistic (RMSSD, pNNx, SD1, SD2) is over the valid pairs whose two beats are both
inside the window.

How (ours): for the windows asked for together, the per-beat terms (RR - ref, its square, and
for a valid pair dRR, dRR^2, RR[k-1] + RR[k] - 2 ref, its square, |dRR| > 50 and > 20) of the
beats they span go into prefix sums, so each window's sums are two lookups (`BeatLog.stats`):
one pass over a chunk's beats for all its readings when a file is analysed, one over the long
window for a live reading. The sums are relative to a reference interval `ref` (the first RR
of the span) against the cancellation of sum-of-squares formulas, and nothing is carried from
one call to the next, so round-off cannot accumulate and a person costs only the beat arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Columns of the prefix sums.
_X, _X2, _D, _D2, _P, _P2, _PAIRS, _NN50, _NN20, _ART = range(10)


def quantile(s: list[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, interpolating linearly between order statistics
    (numpy's and pandas' default)."""
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class BeatLog:
    """Beat times (s), RR (ms), artifact flags and pair flags (`paired[k]`: beat k and beat k-1
    form a valid successive pair) in arrays.

    The arrays are never written below `n`: a slice handed out stays valid (LF/HF keeps some),
    and `compact` moves the beats still needed to new arrays.
    """

    def __init__(self, capacity: int = 1024):
        self._allocate(capacity)
        self.n = 0

    def _allocate(self, capacity: int) -> None:
        self.t = np.empty(capacity)
        self.rr = np.empty(capacity)
        self.artifact = np.zeros(capacity, dtype=bool)
        self.paired = np.zeros(capacity, dtype=bool)
        self.capacity = capacity

    def append(self, t: float, rr_ms: float, artifact: bool, successive: bool) -> None:
        n = self.n
        self.t[n] = t
        self.rr[n] = rr_ms
        self.artifact[n] = artifact
        self.paired[n] = successive and n > 0
        self.n = n + 1

    def compact(self, keep_from: int) -> None:
        """Keep beats keep_from..n-1 (now 0..), in new arrays with room to grow."""
        live = self.n - keep_from
        old = (self.t, self.rr, self.artifact, self.paired)
        self._allocate(max(1024, 2 * live))
        for new, src in zip((self.t, self.rr, self.artifact, self.paired), old):
            new[:live] = src[keep_from : keep_from + live]
        if live:
            self.paired[0] = False  # its partner stayed behind
        self.n = live

    def start_after(self, time: float) -> int:
        """Index of the first beat later than `time`."""
        return int(np.searchsorted(self.t[: self.n], time, side="right"))

    def _prefix_sums(self, a: int, b: int) -> tuple[np.ndarray, float]:
        """Prefix sums of the per-beat terms of beats a..b-1 (column k: the sums over a..a+k-1),
        relative to ref = RR of beat a; and ref. The pair (a-1, a) is left out: no window
        asked for starts before a."""
        rr = self.rr[a:b]
        ref = float(rr[0])
        pair = self.paired[a:b]
        prefix = np.zeros((10, b - a + 1))
        terms = prefix[:, 1:]
        x = terms[_X]
        np.subtract(rr, ref, out=x)
        np.multiply(x, x, out=terms[_X2])
        d = terms[_D]
        np.subtract(rr[1:], rr[:-1], out=d[1:])
        d *= pair
        np.multiply(d, d, out=terms[_D2])
        p = terms[_P]
        np.add(rr[1:], rr[:-1], out=p[1:])
        p[1:] -= 2.0 * ref
        p *= pair
        np.multiply(p, p, out=terms[_P2])
        terms[_PAIRS] = pair
        terms[_PAIRS, 0] = 0.0
        ad = np.abs(d)
        terms[_NN50] = ad > 50.0
        terms[_NN20] = ad > 20.0
        terms[_ART] = self.artifact[a:b]
        np.cumsum(prefix, axis=1, out=prefix)
        return prefix, ref

    def stats(self, lo: list[int], short_lo: list[int], hi: list[int], recent_beats: int) -> list[WindowStats]:
        """The statistics of windows ending at beats hi[k] - 1: the long window [lo[k], hi[k]),
        the short one [short_lo[k], hi[k]) (short_lo >= lo), and the heart rate of the short
        window's last `recent_beats` beats. The prefix lookups are one numpy call for all the
        windows; the arithmetic is per window, on Python floats."""
        a = min(lo)
        prefix, ref = self._prefix_sums(a, max(hi))
        recent_lo = [max(s, h - recent_beats) for s, h in zip(short_lo, hi)]
        at = prefix[:, np.array((lo, short_lo, recent_lo, hi)) - a]  # (column, bound, window)
        # Pair sums start one beat later: the pair (lo - 1, lo) is not inside the window.
        pairs_at = prefix[:, np.array((lo, short_lo)) + (1 - a)]
        sums = (at[:, 3:] - np.concatenate((at[:, :3], pairs_at), axis=1)).transpose(2, 1, 0).tolist()
        return [_window_stats(w, h - l, h - s, h - r, ref) for w, l, s, r, h in zip(sums, lo, short_lo, recent_lo, hi)]


@dataclass(slots=True)
class WindowStats:
    """Time-domain statistics of a reading's windows (ms, %; None where undefined: too few
    beats or valid pairs). Long window: mean_rr, sdnn, rmssd, sd1, sd2, n_beats, n_artifacts;
    short window: short_mean_rr, short_rmssd, pnn50, pnn20, short_pairs; recent_hr (beats/min)
    over its last few beats."""

    n_beats: int
    mean_rr: float
    sdnn: float | None
    rmssd: float | None
    sd1: float | None
    sd2: float | None
    n_artifacts: int
    short_mean_rr: float
    short_rmssd: float | None
    pnn50: float | None
    pnn20: float | None
    short_pairs: int
    recent_hr: float


def _window_stats(sums: list[list[float]], n: int, n_short: int, n_recent: int, ref: float) -> WindowStats:
    """From the column sums of the long window, short window, recent beats, long pairs and short
    pairs (in that order) and their beat counts."""
    whole, short, recent, pairs, short_pairs = sums
    np_, nsp = pairs[_PAIRS], short_pairs[_PAIRS]
    return WindowStats(
        n_beats=n,
        mean_rr=ref + whole[_X] / n,
        sdnn=_sd(whole[_X], whole[_X2], n),
        rmssd=math.sqrt(max(0.0, pairs[_D2] / np_)) if np_ else None,
        sd1=_sd(pairs[_D], pairs[_D2], np_, 2.0),
        sd2=_sd(pairs[_P], pairs[_P2], np_, 2.0),
        n_artifacts=round(whole[_ART]),
        short_mean_rr=ref + short[_X] / n_short,
        short_rmssd=math.sqrt(max(0.0, short_pairs[_D2] / nsp)) if nsp else None,
        pnn50=100.0 * short_pairs[_NN50] / nsp if nsp else None,
        pnn20=100.0 * short_pairs[_NN20] / nsp if nsp else None,
        short_pairs=round(nsp),
        recent_hr=60000.0 * n_recent / (recent[_X] + n_recent * ref),
    )


def _sd(s: float, s2: float, n: float, over: float = 1.0) -> float | None:
    """sqrt(sample variance / over) (ddof = 1) from the sum and sum of squares of n values;
    None below 2 values."""
    if n < 2:
        return None
    return math.sqrt(max(0.0, (s2 - s * s / n) / (n - 1)) / over)
