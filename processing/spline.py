"""The quadratic interpolating spline that resamples RR(t) at 4 Hz for LF/HF, solved incrementally.

The same spline as scipy's `interp1d(kind="quadratic")` (`make_interp_spline(k=2)`), which
neurokit2 uses: knots at x0 (triple), the midpoints between x1..x-2, and x-1 (triple). Its
B-spline coefficients solve a tridiagonal collocation system (row j: the three basis functions
that are non-zero at data site x_j) that is strongly diagonally dominant: for evenly spaced
beats the rows are [1/8, 3/4, 1/8], so a change in one row moves the solution by a factor
~0.17 less with every row away from it (the root of t^2 - 6t + 1 = 0; de Boor 2001, "A
Practical Guide to Splines", ch. XIII).

That locality is what makes a sliding window cheap (our addition; LF/HF is recomputed every
10 s over a 300 s window): between two steps only the first rows (a new first beat, whose
triple knot moves) and the last rows (new beats) change, and the rows between are identical
because their knots are midpoints of the same beats. `SplineCache` keeps the previous
coefficients; the interior is reused and only the two ends are solved, exactly, with the
reused coefficient next to each as a boundary value. Rows farther than `EDGE_ROWS` (14) from an
end are moved by less than 0.17^14 ~ 2e-11 of the data scale by the changes at the ends: 50
times below the tolerance of the full solve (1e-9, `_gauss_seidel`), which bounds how exact the
coefficients are anyway. (20 rows, 5e-16, cost ~5 % more per LF/HF step and changed no result:
the difference from a full solve over 3 h of nsr001 stays 3.4e-5 ms, set by that tolerance.)

The 4 Hz samples are reused the same way (`sample_grid`, our addition): on a grid fixed in time
(multiples of 1/rate seconds) rather than starting at the window's first beat, a sample whose
knot span lies between the two re-solved ends has the same knots and coefficients as in the
previous window, hence the same value, bit for bit; only the samples near the ends are evaluated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Rows re-solved next to each end of a sliding window (see the module docstring).
EDGE_ROWS = 14


@dataclass
class SplineCache:
    """The last solve of one stream (beat times and coefficients); reset it at a gap."""

    x: np.ndarray | None = None
    coef: np.ndarray | None = None
    full_solves: int = 0
    edge_solves: int = 0
    # `sample_grid`'s last output: the samples at k / rate for k = first, first + 1, ...
    rate: float = 0.0
    first: int = 0
    samples: np.ndarray | None = None

    def clear(self) -> None:
        self.x = self.coef = self.samples = None


def resample(x: np.ndarray, y: np.ndarray, xn: np.ndarray, cache: SplineCache | None = None) -> np.ndarray:
    """The interpolating quadratic spline through (x, y), evaluated at the sorted points xn
    (inside [x0, x-1]; past x-1 the last value, as scipy's fill value). With a `cache` from
    the previous window of the same stream, only the rows near the ends are solved."""
    knots, h, r10, r20, r31 = _knots(x)
    coef, _ = _coefficients(x, y, knots, r10, r20, r31, cache)
    return _evaluate(x, y, xn, knots, h, coef, r10, r20, r31)


def sample_grid(x: np.ndarray, y: np.ndarray, rate: float, cache: SplineCache | None = None) -> np.ndarray:
    """The interpolating quadratic spline through (x, y) sampled at the times k / rate (s), k
    integer, from the first at or after x0: a grid fixed in time. As many samples as
    `np.arange(x0, x-1 + 1/rate, 1/rate)` has (neurokit2's grid, which starts at x0): the count
    decides how many Welch segments fit, so it must not differ; the one or two samples past x-1
    take the last value, as scipy's fill value does on neurokit2's grid. With a `cache` from the previous window of
    the same stream, only the rows near the ends are solved and only the samples whose knot span
    they touch are evaluated; the others are copied from the previous window (the module
    docstring). `rate` must be a power of two (k / rate exact in floating point)."""
    first = math.ceil(x[0] * rate)
    last = first + math.ceil((x[-1] + 1.0 / rate - x[0]) * rate) - 1  # numpy's arange length
    knots, h, r10, r20, r31 = _knots(x)
    coef, kept = _coefficients(x, y, knots, r10, r20, r31, cache)
    prev = cache.samples if cache is not None and cache.rate == rate else None
    if kept is None or prev is None:
        out = _evaluate(x, y, np.arange(first, last + 1) / rate, knots, h, coef, r10, r20, r31)
    else:
        # Knot spans e+2 .. m-e-1 use only reused coefficients (span l uses c[l-2..l]): samples in
        # [knots[e+2], knots[m-e]) are the previous window's (which covered them: its first beat is
        # before, its last after).
        e, m = EDGE_ROWS, kept
        a, b = math.ceil(knots[e + 2] * rate), math.ceil(knots[m - e] * rate)
        out = np.empty(last - first + 1)
        out[a - first : b - first] = prev[a - cache.first : b - cache.first]
        ends = np.concatenate((np.arange(first, a), np.arange(b, last + 1))) / rate
        fresh = _evaluate(x, y, ends, knots, h, coef, r10, r20, r31)
        out[: a - first] = fresh[: a - first]
        out[b - first :] = fresh[a - first :]
    if cache is not None:
        cache.rate, cache.first, cache.samples = rate, first, out
    return out


def _knots(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Knots, and per non-empty span the width and the reciprocal knot distances."""
    n = len(x)
    knots = np.empty(n + 3)
    knots[:3] = x[0]
    knots[n:] = x[-1]
    np.add(x[1:-2], x[2:-1], out=knots[3:n])
    knots[3:n] *= 0.5  # exact, as a division by 2
    # Reciprocal knot distances of the non-empty spans l = 2..n-1 (index l-2):
    # 1/(t[l+1]-t[l]), 1/(t[l+1]-t[l-1]), 1/(t[l+2]-t[l]); all distances are > 0 there.
    h = knots[3 : n + 1] - knots[2:n]
    r10 = 1.0 / h
    # 1/(t[l+2]-t[l]) of span l is 1/(t[l'+1]-t[l'-1]) of span l' = l+1: one array for both.
    r2 = 1.0 / (knots[3 : n + 2] - knots[1:n])
    return knots, h, r10, r2[: n - 2], r2[1:]


def _collocation(x, knots, r10, r20, r31, j: np.ndarray) -> np.ndarray:
    """Sub-, main and super-diagonal (rows 0, 1, 2) of the collocation matrix for the rows `j`
    (sorted, from row 0 to row n-1, which are identity rows): data site j (1 <= j <= n-2) lies
    in knot span j+1."""
    ji = j[1:-1]
    jm = ji - 1
    u = x[ji]
    r = r10[jm]
    d0 = knots[2:][ji] - u  # t[j+2] - u
    d2 = u - knots[1:][ji]  # u - t[j+1]
    b0 = d0 * d0 * r20[jm] * r
    b2 = d2 * d2 * r31[jm] * r
    band = np.zeros((3, len(j)))
    band[0, 1:-1] = b0
    band[1] = 1.0
    band[1, 1:-1] -= b0
    band[1, 1:-1] -= b2
    band[2, 1:-1] = b2
    return band


def _coefficients(x, y, knots, r10, r20, r31, cache: SplineCache | None) -> tuple[np.ndarray, int | None]:
    """The B-spline coefficients, and after an edge solve the number m of beats this window
    shares with the previous one (coefficients EDGE_ROWS .. m-EDGE_ROWS-1 were reused)."""
    n = len(x)
    if cache is not None and cache.x is not None:
        solved = _edge_solve(x, y, knots, r10, r20, r31, cache)
        if solved is not None:
            cache.x, cache.coef = x, solved[0]
            cache.edge_solves += 1
            return solved
    lo, mid, hi = _collocation(x, knots, r10, r20, r31, np.arange(n))
    coef = _gauss_seidel(lo, mid, hi, y)
    if cache is not None:
        cache.x, cache.coef = x, coef
        cache.full_solves += 1
    return coef, None


_FRONT_ROWS = np.arange(EDGE_ROWS)


def _edge_solve(x, y, knots, r10, r20, r31, cache: SplineCache) -> tuple[np.ndarray, int] | None:
    """Reuse the interior of the previous solve when this window is the previous one with
    beats dropped at the front and added at the end; None when it is not.

    Both ends are solved as one tridiagonal system: rows 0..e-1 and m-e..n-1, decoupled where
    they meet (the reused coefficient next to each block moved to its right-hand side).
    """
    prev_x, prev_c = cache.x, cache.coef
    k = int(np.searchsorted(prev_x, x[0]))
    if k >= len(prev_x) or prev_x[k] != x[0]:
        return None
    m = min(len(prev_x) - k, len(x))  # beats both windows share
    e = EDGE_ROWS
    if m < 3 * e or not (prev_x[k : k + m] == x[:m]).all():
        return None
    n = len(x)
    coef = np.empty(n)
    coef[e : m - e] = prev_c[k + e : k + m - e]
    rows = np.concatenate((_FRONT_ROWS, np.arange(m - e, n)))
    lo, mid, hi = _collocation(x, knots, r10, r20, r31, rows).tolist()
    rhs = y[rows].tolist()
    rhs[e - 1] -= hi[e - 1] * float(coef[e])
    rhs[e] -= lo[e] * float(coef[m - e - 1])
    lo[e] = hi[e - 1] = 0.0
    ends = np.array(_thomas(lo, mid, hi, rhs))
    coef[:e] = ends[:e]
    coef[m - e :] = ends[e:]
    return coef, m


def _thomas(lo: list[float], mid: list[float], hi: list[float], rhs: list[float]) -> list[float]:
    """Tridiagonal solve by forward elimination and back substitution (Thomas algorithm),
    stable without pivoting because the collocation rows are diagonally dominant. For the
    ~50 rows of a sliding window's ends a Python loop costs half of building a dense matrix
    for LAPACK."""
    n = len(rhs)
    up = [0.0] * n
    x = [0.0] * n
    m = mid[0]
    u = up[0] = hi[0] / m
    v = x[0] = rhs[0] / m
    for i in range(1, n):
        a = lo[i]
        m = mid[i] - a * u
        u = up[i] = hi[i] / m
        v = x[i] = (rhs[i] - a * v) / m
    for i in range(n - 2, -1, -1):
        v = x[i] = x[i] - up[i] * v
    return x


def _gauss_seidel(lo, mid, hi, y) -> np.ndarray:
    """Red-black Gauss-Seidel (even rows from odd neighbours, then odd rows; ~10x less error
    per sweep than Jacobi) until the change is below 1e-9 of the data scale: far below what
    moves LF/HF, and tight enough that the interior a sliding window reuses stays exact."""
    n = len(y)
    inv = 1.0 / mid
    rhs, lo_s, hi_s = y * inv, lo * inv, hi * inv
    c = rhs.copy()
    ev, ev_l, ev_r = slice(2, n - 1, 2), slice(1, n - 2, 2), slice(3, n, 2)
    od, od_l, od_r = slice(1, n - 1, 2), slice(0, n - 2, 2), slice(2, n, 2)
    tol = 1e-9 * max(1.0, float(np.abs(y).max()))
    rhs_e, lo_e, hi_e = rhs[ev], lo_s[ev], hi_s[ev]
    rhs_o, lo_o, hi_o = rhs[od], lo_s[od], hi_s[od]
    for sweep in range(200):
        c[ev] = rhs_e - lo_e * c[ev_l] - hi_e * c[ev_r]
        new_od = rhs_o - lo_o * c[od_l] - hi_o * c[od_r]
        if sweep >= 4:  # test the change of the odd rows once the first sweeps are done
            change = np.abs(new_od - c[od]).max()
            c[od] = new_od
            if change < tol:
                break
        else:
            c[od] = new_od
    return c


def _evaluate(x, y, xn, knots, h, c, r10, r20, r31) -> np.ndarray:
    """Piecewise quadratic per knot span l in [2, n-1] (width h): value s0, slope d0 and
    half the second derivative at t[l] from the B-spline identities, then Horner on the output
    points. With a = r20 (c0 - c1): s0 = c1 + h a, d0 = -2 a and (s1 - s0 - d0 h) / h^2 =
    (r31 (c2 - c1) + a) / h, where s1 = c1 + h r31 (c2 - c1) is the value at t[l+1]."""
    n = len(x)
    tl = knots[2:n]
    c1 = c[1 : n - 1]
    a = c[: n - 2] - c1
    a *= r20
    poly = np.empty((3, n - 2))
    np.multiply(a, h, out=poly[0])
    poly[0] += c1
    np.multiply(a, -2.0, out=poly[1])
    np.subtract(c[2:], c1, out=poly[2])
    poly[2] *= r31
    poly[2] += a
    poly[2] *= r10
    # Span of each output point: the last knot at or before it (xn starts at t[2] = x0).
    k = np.searchsorted(tl, xn, side="right") - 1
    np.maximum(k, 0, out=k)
    v = xn - tl[k]
    s0, d0, curv = poly[:, k]
    out = curv * v
    out += d0
    out *= v
    out += s0
    out[np.searchsorted(xn, x[-1], side="right") :] = y[-1]  # as scipy's fill value past the last beat
    return out
