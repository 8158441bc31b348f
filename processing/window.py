"""A person's recent beats as arrays with prefix sums, so the time-domain HRV of any trailing window costs O(1).

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

How (ours): every beat's terms (RR - ref, its square, and for a valid pair dRR, dRR^2,
RR[k-1] + RR[k] - 2 ref, its square, |dRR| > 50 and > 20) go into prefix sums, brought up to
date when a window is asked for, so any window's sums are two lookups (`BeatLog.stats`): a
reading at every beat costs O(1), and a chunk of a file's readings one pass over its beats. The
sums are relative to a reference interval `ref` (the first RR of the arrays) against the
cancellation of sum-of-squares formulas, and are recomputed from the beats at every compaction,
so round-off cannot accumulate.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

# Columns of the prefix sums.
_X, _X2, _D, _D2, _P, _P2, _PAIRS, _NN50, _NN20, _ART = range(10)
# Up to this many new beats, the prefix sums are extended in Python: numpy's ~20 calls would
# cost more (a reading at every beat, or every 10 s, adds 1-40 beats). Measured factor (ours,
# benchmarks/processing.py part (a), the time-domain metrics read at every beat): 51 us per beat
# with both paths, 112 us with numpy alone, which would take that figure from ~230x neurokit2's
# hrv_time to ~120x against the goal of 200x. Both paths give equal sums to the bit
# (tests/processing/test_window.py test_the_sums_do_not_depend_on_how_the_beats_arrive_between_reads).
_FEW_BEATS = 48
# Up to this many windows, `stats` takes the differences of the sums in Python.
_FEW_WINDOWS = 4


def quantile(s: list[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, interpolating linearly between order statistics
    (numpy's and pandas' default)."""
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class BeatLog:
    """Beat times (s), RR (ms), artifact flags and pair flags (`paired[k]`: beat k and beat k-1
    form a valid successive pair) in arrays, with the prefix sums of their terms.

    The arrays are never written below `n`: a slice handed out stays valid (LF/HF keeps some),
    and `compact` moves the beats still needed to new arrays.
    """

    def __init__(self, capacity: int = 512):
        self._allocate(capacity)
        self.n = 0

    def _allocate(self, capacity: int) -> None:
        self.t = np.empty(capacity)
        self.rr = np.empty(capacity)
        self.artifact = np.zeros(capacity, dtype=bool)
        self.paired = np.zeros(capacity, dtype=bool)
        self._prefix = np.zeros((capacity + 1, 10))  # row k: the sums over beats 0..k-1
        self._summed = 0  # beats the prefix sums cover
        self.ref = 0.0
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
        # Room for 256 more beats (~3-4 min) or half as many again: compacting costs O(live), so
        # this stays O(1) per beat, and a person's arrays stay near the window's size (a live
        # service keeps 1000s of them).
        self._allocate(live + max(256, live // 2))
        for new, src in zip((self.t, self.rr, self.artifact, self.paired), old):
            new[:live] = src[keep_from : keep_from + live]
        if live:
            self.paired[0] = False  # its partner stayed behind
        self.n = live

    def start_after(self, time: float) -> int:
        """Index of the first beat later than `time`."""
        return bisect_right(self.t, time, 0, self.n)

    def _extend_prefix(self) -> None:
        """Bring the prefix sums up to the last beat. A few new beats (a live reading) are added
        in Python, many (a chunk of a file) with numpy: both add the same terms one at a time,
        in order, so the sums do not depend on how the beats were split between calls."""
        a, n = self._summed, self.n
        if a == n:
            return
        if a == 0:
            self.ref = float(self.rr[0])
        if n - a <= _FEW_BEATS:
            self._extend_in_python(a, n)
        else:
            self._extend_with_numpy(a, n)
        self._summed = n

    def _extend_in_python(self, a: int, n: int) -> None:
        ref, prefix = self.ref, self._prefix
        sums = prefix[a].tolist()
        first = max(a - 1, 0)
        rrs = self.rr[first:n].tolist()
        for k, pair, art in zip(range(a, n), self.paired[a:n].tolist(), self.artifact[a:n].tolist()):
            rr = rrs[k - first]
            prev = rrs[k - first - 1] if k else rr
            on = 1.0 if pair else 0.0
            x = rr - ref
            d = (rr - prev) * on
            p = (rr + prev - 2.0 * ref) * on
            ad = abs(d)
            terms = (x, x * x, d, d * d, p, p * p, on, ad > 50.0, ad > 20.0, art)
            sums = [s + v for s, v in zip(sums, terms)]
            prefix[k + 1] = sums

    def _extend_with_numpy(self, a: int, n: int) -> None:
        rr = self.rr[a:n]
        prev = self.rr[a - 1 : n - 1] if a else np.concatenate(([rr[0]], rr[:-1]))
        pair = self.paired[a:n]
        prefix = self._prefix[a : n + 1]  # the terms go after the sums at a, then accumulate
        terms = prefix[1:].T
        x = np.subtract(rr, self.ref)
        d = np.subtract(rr, prev)
        d *= pair
        p = np.add(rr, prev)
        p -= 2.0 * self.ref
        p *= pair
        ad = np.abs(d)
        for column, values in (
            (_X, x),
            (_X2, x * x),
            (_D, d),
            (_D2, d * d),
            (_P, p),
            (_P2, p * p),
            (_PAIRS, pair),
            (_NN50, ad > 50.0),
            (_NN20, ad > 20.0),
            (_ART, self.artifact[a:n]),
        ):
            terms[column] = values
        np.cumsum(prefix, axis=0, out=prefix)

    def stats(
        self, lo: list[int], short_lo: list[int], hi: list[int], recent_beats: int
    ) -> list[WindowStats]:
        """The statistics of windows ending at beats hi[k] - 1: the long window [lo[k], hi[k]),
        the short one [short_lo[k], hi[k]) (short_lo >= lo), and the heart rate of the short
        window's last `recent_beats` beats. Many windows' prefix lookups are one numpy call, a
        few windows' (a live reading) rows read one by one; the arithmetic is per window, on
        Python floats."""
        self._extend_prefix()
        recent_lo = [max(s, h - recent_beats) for s, h in zip(short_lo, hi)]
        # Sums from bound to hi: the long, short and recent windows, then the pairs of the long
        # and short ones, which start one beat later (the pair (lo - 1, lo) is not inside).
        bounds = (lo, short_lo, recent_lo, [x + 1 for x in lo], [x + 1 for x in short_lo])
        prefix = self._prefix
        if len(hi) <= _FEW_WINDOWS:  # a live reading: the rows one by one, the differences in Python
            sums = []
            for k, h in enumerate(hi):
                top = prefix[h].tolist()
                sums.append([[u - v for u, v in zip(top, prefix[b[k]].tolist())] for b in bounds])
        else:
            sums = (
                (prefix[hi] - prefix[np.array(bounds)]).transpose(1, 0, 2).tolist()
            )  # (window, bound, column)
        ref = self.ref
        return [
            _window_stats(w, h - a, h - s, h - r, ref)
            for w, a, s, r, h in zip(sums, lo, short_lo, recent_lo, hi)
        ]


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
