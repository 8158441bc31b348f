"""A trailing time window of beats with running sums, so time-domain HRV costs O(1) per beat.

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
gap between them (`add(..., successive=False)` marks the first beat after a gap). Beats on both
sides of a gap stay in the window (so a wrist device that drops beats still yields a reading
from the pairs it has), but no pair ever spans a gap and nothing is interpolated. Every
pair-based statistic (RMSSD, pNNx, SD1, SD2) is over `n_pairs`, the valid pairs only.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

# Rebuild the running sums from the beats this often, so float round-off cannot accumulate.
_REBUILD_EVERY = 4096


def quantile(s: list[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, interpolating linearly between order statistics
    (numpy's and pandas' default)."""
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


class BeatWindow:
    """The beats of the last `duration_s` seconds (all beats when it is infinite).

    Sums are kept relative to a reference interval `ref` (the first RR seen) to avoid the
    cancellation of sum-of-squares formulas. `paired[k]` says whether beat k and the beat
    before it form a valid successive pair (see the module docstring).
    With `keep_sorted`, the RR values are also kept sorted for median, percentiles and the
    histogram of the Baevsky stress index.
    """

    def __init__(self, duration_s: float, keep_sorted: bool = False):
        self.duration_s = duration_s
        self.keep_sorted = keep_sorted
        self.clear()

    def clear(self) -> None:
        self.times: deque[float] = deque()
        self.rrs: deque[float] = deque()
        self.artifacts: deque[bool] = deque()
        self.paired: deque[bool] = deque()
        self.sorted: list[float] = []
        self.ref: float | None = None
        self.s1 = self.s2 = 0.0  # sum of (rr-ref), (rr-ref)^2
        self.d1 = self.d2 = 0.0  # sum of d, d^2 over successive differences d = rr[k]-rr[k-1]
        self.p1 = self.p2 = 0.0  # sum of (rr[k-1]+rr[k]-2ref) and its square (Poincare SD2)
        self.nn50 = self.nn20 = 0
        self.n_pairs = 0
        self.n_artifacts = 0
        self._changes = 0

    def __len__(self) -> int:
        return len(self.rrs)

    @property
    def n_diffs(self) -> int:
        """Valid successive differences (pairs that span no gap)."""
        return self.n_pairs

    def span_s(self) -> float:
        """Time covered by the beats in the window: from the start of the first interval."""
        if not self.rrs:
            return 0.0
        return self.times[-1] - self.times[0] + self.rrs[0] / 1000.0

    def add(self, t: float, rr_ms: float, artifact: bool = False, successive: bool = True) -> None:
        """Append a beat and drop those that fell out of the window. `successive=False`: a gap
        lies between this beat and the previous one, so the two make no pair."""
        if self.ref is None:
            self.ref = rr_ms
        x = rr_ms - self.ref
        self.s1 += x
        self.s2 += x * x
        rrs = self.rrs
        if successive and rrs:
            # A new successive pair (previous, this); inlined _pair for the per-beat hot path.
            a = rrs[-1]
            d = rr_ms - a
            p = a + rr_ms - 2 * self.ref
            self.d1 += d
            self.d2 += d * d
            self.p1 += p
            self.p2 += p * p
            self.n_pairs += 1
            ad = d if d >= 0 else -d
            if ad > 20.0:
                self.nn20 += 1
                if ad > 50.0:
                    self.nn50 += 1
            self.paired.append(True)
        else:
            self.paired.append(False)
        self.times.append(t)
        rrs.append(rr_ms)
        self.artifacts.append(artifact)
        self.n_artifacts += artifact
        if self.keep_sorted:
            insort(self.sorted, rr_ms)
        horizon = t - self.duration_s
        while self.times and self.times[0] <= horizon:
            self._drop_oldest()
        self._changes += 1
        if self._changes >= _REBUILD_EVERY:
            self._rebuild()

    def _pair(self, a: float, b: float, sign: int) -> None:
        d = b - a
        p = a + b - 2 * self.ref  # type: ignore[operator]
        self.d1 += sign * d
        self.d2 += sign * d * d
        self.p1 += sign * p
        self.p2 += sign * p * p
        self.n_pairs += sign
        ad = abs(d)
        self.nn50 += sign * (ad > 50.0)
        self.nn20 += sign * (ad > 20.0)

    def _drop_oldest(self) -> None:
        self.times.popleft()
        rr = self.rrs.popleft()
        self.paired.popleft()
        self.n_artifacts -= self.artifacts.popleft()
        x = rr - self.ref  # type: ignore[operator]
        self.s1 -= x
        self.s2 -= x * x
        if self.rrs and self.paired[0]:
            # The pair (dropped, new first) leaves; inlined _pair for the per-beat hot path.
            self.paired[0] = False
            b = self.rrs[0]
            d = b - rr
            p = rr + b - 2 * self.ref  # type: ignore[operator]
            self.d1 -= d
            self.d2 -= d * d
            self.p1 -= p
            self.p2 -= p * p
            self.n_pairs -= 1
            ad = d if d >= 0 else -d
            if ad > 20.0:
                self.nn20 -= 1
                if ad > 50.0:
                    self.nn50 -= 1
        if self.keep_sorted:
            del self.sorted[bisect_left(self.sorted, rr)]

    def _rebuild(self) -> None:
        rrs = list(self.rrs)
        self.ref = rrs[0] if rrs else None
        self.s1 = self.s2 = self.d1 = self.d2 = self.p1 = self.p2 = 0.0
        self.nn50 = self.nn20 = self.n_pairs = 0
        for k, (rr, paired) in enumerate(zip(rrs, self.paired)):
            x = rr - self.ref  # type: ignore[operator]
            self.s1 += x
            self.s2 += x * x
            if paired:
                self._pair(rrs[k - 1], rr, +1)
        self._changes = 0

    def pairs(self):
        """The valid successive pairs (previous RR, RR) in the window, oldest first."""
        rrs, paired = self.rrs, self.paired
        return ((rrs[k - 1], rrs[k]) for k in range(1, len(rrs)) if paired[k])

    # -- statistics (ms) ---------------------------------------------------------------------

    def mean_rr(self) -> float:
        """Mean RR (ms) of the beats in the window."""
        return self.ref + self.s1 / len(self.rrs)  # type: ignore[operator]

    def sdnn(self) -> float | None:
        """SDNN (ms): sample standard deviation of RR (ddof=1, as Kubios and neurokit2)."""
        n = len(self.rrs)
        if n < 2:
            return None
        return math.sqrt(max(0.0, (self.s2 - self.s1 * self.s1 / n) / (n - 1)))

    def rmssd(self) -> float | None:
        """RMSSD (ms): root mean square of the valid successive differences (Task Force 1996)."""
        nd = self.n_pairs
        return math.sqrt(max(0.0, self.d2 / nd)) if nd else None

    def _pair_var(self, s: float, s2: float) -> float | None:
        nd = self.n_pairs
        if nd < 2:
            return None
        return max(0.0, (s2 - s * s / nd) / (nd - 1))

    def sd1(self) -> float | None:
        """Poincare SD1 (ms): std (ddof=1) of (rr[k]-rr[k+1])/sqrt(2) (Brennan et al. 2001)."""
        v = self._pair_var(self.d1, self.d2)
        return None if v is None else math.sqrt(v / 2.0)

    def sd2(self) -> float | None:
        """Poincare SD2 (ms): std (ddof=1) of (rr[k]+rr[k+1])/sqrt(2) (Brennan et al. 2001)."""
        v = self._pair_var(self.p1, self.p2)
        return None if v is None else math.sqrt(v / 2.0)

    def pnn(self, threshold_ms: float) -> float | None:
        """pNNx (%): percent of valid successive differences with |dRR| > `threshold_ms`, over
        the number of differences (Kubios' N-1 convention; Mietus et al. 2002 for x != 50).
        20 and 50 ms come from running counts; any other threshold scans the window."""
        nd = self.n_pairs
        if not nd:
            return None
        if threshold_ms == 50:
            count = self.nn50
        elif threshold_ms == 20:
            count = self.nn20
        else:
            count = sum(abs(b - a) > threshold_ms for a, b in self.pairs())
        return 100.0 * count / nd

    def percentile(self, q: float) -> float:
        """Linear-interpolated percentile (numpy's default) of the RR values (ms)."""
        return quantile(self.sorted, q / 100.0)

    def modal_bin_count(self, width_ms: float) -> int:
        """Beats in the fullest bin of a histogram with bins of `width_ms` starting at the minimum."""
        s = self.sorted
        lo = s[0]
        best = 0
        start = 0
        edge = lo
        while start < len(s):
            edge += width_ms
            end = bisect_left(s, edge, start)
            best = max(best, end - start)
            start = end
        return best
