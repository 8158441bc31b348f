"""The 4 Hz spline samples of many sliding windows of one series at once, for LF/HF over a file.

`spline.sample_grid` with its cache gives one window per call: right for a live stream, where
a window is due every 10 s, but the ~60 numpy calls of a step then cost more than their
arithmetic. Analysing a file, the windows of a chunk of beats are known together; this module
computes their samples with a fixed number of numpy calls per chunk (our addition, same
locality argument as spline.py's docstring):
- one solve over the union of the windows' beats gives the interior coefficients of every
  window (a window's own solution differs from it only within EDGE_ROWS rows of its ends, by
  less than the full solve's tolerance further in);
- the EDGE_ROWS rows at both ends of every window are solved as in `spline._edge_solve`, with
  the union's coefficient next to each block as its boundary value: one Thomas elimination
  vectorised over all the windows;
- the samples between a window's re-solved ends are the union's samples on the same fixed
  grid (their knot spans use only interior coefficients); those near the ends are evaluated
  from the window's own knots and coefficients.
The samples equal `sample_grid`'s to the full solve's tolerance (tests/processing/test_spline.py
`test_a_chunk_of_windows_sampled_together_equals_one_at_a_time`).

A second path beside `spline.sample_grid` with its cache (whose edge solve a live stream needs:
one window per step, no full solve), kept for its factor: ~4x less CPU per window (the 24 h
of nsr001 every 10 s: ~46 vs ~176 us; benchmarks/processing.py, "LF/HF of the 24 h windows"),
the larger part of what `hrv.lf_hf_many` saves.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from processing.spline import EDGE_ROWS, _collocation, _evaluate, _gauss_seidel, _knots, sample_grid

# Windows with fewer beats than this are sampled one at a time (their ends would overlap).
MIN_BATCH_BEATS = 3 * EDGE_ROWS


def sample_grids(
    x: np.ndarray, y: np.ndarray, windows: list[tuple[int, int]], rate: float
) -> list[tuple[list[int], np.ndarray]]:
    """For the windows [i, j) of the series (x, y) (beat times in s, sorted, no gap inside; RR
    in ms), what `spline.sample_grid(x[i:j], y[i:j], rate)` returns, as groups of windows with
    as many samples: (their indices in `windows`, a C-contiguous array of their samples, one row
    per window), ready for Welch's method."""
    groups: list[tuple[list[int], np.ndarray]] = []
    big = [k for k, (i, j) in enumerate(windows) if j - i >= MIN_BATCH_BEATS]
    for k, (i, j) in enumerate(windows):
        if j - i < MIN_BATCH_BEATS:
            groups.append(([k], sample_grid(x[i:j], y[i:j], rate)[None, :]))
    if big:
        lo = min(windows[k][0] for k in big)
        hi = max(windows[k][1] for k in big)
        starts = np.array([windows[k][0] for k in big]) - lo
        ends = np.array([windows[k][1] for k in big]) - lo
        for rows, samples in _batch(x[lo:hi], y[lo:hi], starts, ends, rate):
            groups.append(([big[r] for r in rows], samples))
    return groups


def _batch(x, y, starts, ends, rate) -> list[tuple[list[int], np.ndarray]]:
    e = EDGE_ROWS
    knots, h, r10, r20, r31 = _knots(x)
    lo, mid, hi = _collocation(x, knots, r10, r20, r31, np.arange(len(x)))
    coef = _gauss_seidel(lo, mid, hi, y)
    # Each window's 4 Hz grid (as in sample_grid): `count` samples from `first` / rate on. Those
    # from inner_a to inner_b (knot spans e+2 .. n-e-1 of the window) are the union's; the others
    # are evaluated from the window's own spline.
    first = np.ceil(x[starts] * rate).astype(np.int64)
    count = np.ceil((x[ends - 1] + 1.0 / rate - x[starts]) * rate).astype(np.int64)
    inner_a = np.ceil(knots[starts + e + 2] * rate).astype(np.int64)
    inner_b = np.ceil(knots[ends - e] * rate).astype(np.int64)
    g0 = int(first.min())
    union = _evaluate(x, y, np.arange(g0, int((first + count).max())) / rate, knots, h, coef, r10, r20, r31)

    # The samples near the ends: window w[i], sample at[i] of its grid.
    front, back = _edge_coefficients(x, y, knots, coef, starts, ends)
    n_front, n_back = inner_a - first, first + count - inner_b
    windows = np.arange(len(starts))
    w = np.concatenate((np.repeat(windows, n_front), np.repeat(windows, n_back)))
    at = np.concatenate((np.zeros(int(n_front.sum()), np.int64), np.repeat(inner_b - first, n_back)))
    at += np.concatenate((_ranges(n_front), _ranges(n_back)))
    values = _evaluate_ends(x, y, knots, coef, front, back, starts, ends, w, (first[w] + at) / rate)

    out = []
    for c in sorted(set(count.tolist())):  # np.unique would import numpy.ma (~8 ms per process)
        rows = np.flatnonzero(count == c)
        samples = sliding_window_view(union, c)[first[rows] - g0]  # a copy, one row per window
        mine = np.flatnonzero(count[w] == c)
        samples.ravel()[np.searchsorted(rows, w[mine]) * c + at[mine]] = values[mine]
        out.append((rows.tolist(), samples))
    return out


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for every c in counts, concatenated."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


def _window_knot(x, knots, start, end, k):
    """Knot k of the windows [start, end) of x: their own triple end knots, the union's midpoint
    knots between them (knot k of a window is knot start + k of the union for 3 <= k <= n-1)."""
    n = end - start
    inner = knots[np.clip(start + k, 0, len(knots) - 1)]
    return np.where(k <= 2, x[start], np.where(k >= n, x[end - 1], inner))


def _edge_coefficients(x, y, knots, coef, starts, ends) -> tuple[np.ndarray, np.ndarray]:
    """The coefficients of rows 0..e-1 and n-e..n-1 of every window, solved as `spline._edge_solve`
    does (the same rows and boundary values), one elimination step for all windows at a time."""
    e = EDGE_ROWS
    # Stacked: the front blocks, then the back blocks; row j of a block is the window's row j.
    j = np.concatenate(
        (np.broadcast_to(np.arange(e), (len(starts), e)), (ends - starts)[:, None] - e + np.arange(e))
    )
    s = np.concatenate((starts, starts))[:, None]
    end = np.concatenate((ends, ends))[:, None]
    n = end - s
    u = x[np.clip(s + j, 0, len(x) - 1)]
    t = [_window_knot(x, knots, s, end, j + d) for d in range(4)]  # knots j .. j+3 of row j
    d0 = t[2] - u
    d2 = u - t[1]
    with np.errstate(divide="ignore", invalid="ignore"):  # the identity rows' coinciding knots
        r = 1.0 / (t[2] - t[1])
        b0 = d0 * d0 * (1.0 / (t[2] - t[0])) * r
        b2 = d2 * d2 * (1.0 / (t[3] - t[1])) * r
    ident = (j == 0) | (j == n - 1)  # the first and last rows are identity rows
    b0[ident] = 0.0
    b2[ident] = 0.0
    mid = 1.0 - b0
    mid -= b2
    lo, hi = b0, b2
    rhs = y[np.clip(s + j, 0, len(y) - 1)].copy()
    m = len(starts)
    # Boundary values: the union's coefficient next to each block moves to the right-hand side.
    rhs[:m, e - 1] -= hi[:m, e - 1] * coef[starts + e]
    hi[:m, e - 1] = 0.0
    rhs[m:, 0] -= lo[m:, 0] * coef[ends - e - 1]
    lo[m:, 0] = 0.0
    sol = _thomas_rows(lo, mid, hi, rhs)
    return sol[:m], sol[m:]


def _thomas_rows(lo, mid, hi, rhs) -> np.ndarray:
    """`spline._thomas` on every row of the (blocks, e) arrays at once (the same operations in
    the same order, so the same results)."""
    k = lo.shape[1]
    up = np.empty_like(rhs)
    xs = np.empty_like(rhs)
    m = mid[:, 0]
    u = up[:, 0] = hi[:, 0] / m
    v = xs[:, 0] = rhs[:, 0] / m
    for i in range(1, k):
        a = lo[:, i]
        m = mid[:, i] - a * u
        u = up[:, i] = hi[:, i] / m
        v = xs[:, i] = (rhs[:, i] - a * v) / m
    for i in range(k - 2, -1, -1):
        v = xs[:, i] = xs[:, i] - up[:, i] * v
    return xs


def _evaluate_ends(x, y, knots, coef, front, back, starts, ends, w, times) -> np.ndarray:
    """Window w[i]'s own spline at times[i], a time in its first or last EDGE_ROWS + 2 knot
    spans: `spline._evaluate`'s formula (the same operations, so the same values) on the
    window's knots and coefficients near each end, gathered into a small table first; past the
    window's last beat, its last value."""
    e = EDGE_ROWS
    m = len(starts)
    n = ends - starts
    # The window's span of each time: the union's span shifted by the window's start, clipped
    # to 2 .. n-1 (the window's first and last spans reach its triple end knots).
    nw = n[w]
    span = np.searchsorted(knots[2 : len(x)], times, side="right") + 1 - starts[w]
    np.clip(span, 2, nw - 1, out=span)
    # Table rows: knots and coefficients k = 0 .. e+5 of every window's front, then
    # k = n-e-4 .. n+1 of its back.
    base = np.concatenate((np.zeros(m, np.int64), n - e - 4))
    k = base[:, None] + np.arange(e + 6)
    s2, e2, n2 = np.tile(starts, 2)[:, None], np.tile(ends, 2)[:, None], np.tile(n, 2)[:, None]
    knot = _window_knot(x, knots, s2, e2, k).ravel()
    ends_c = np.concatenate((front, back))
    cf = np.take_along_axis(ends_c, np.clip(k, 0, e - 1), 1)
    cb = np.take_along_axis(ends_c, np.clip(k - (n2 - e), 0, e - 1), 1)
    c = np.where(k < e, cf, np.where(k >= n2 - e, cb, coef[np.clip(s2 + k, 0, len(coef) - 1)])).ravel()
    row = np.where(span < nw // 2, w, w + m)
    at = row * (e + 6) + span - base[row]
    t0, t1, t2, t3 = knot[at - 1], knot[at], knot[at + 1], knot[at + 2]
    c0, c1, c2 = c[at - 2], c[at - 1], c[at]
    h = t2 - t1
    a = c0 - c1
    a *= 1.0 / (t2 - t0)
    s0 = a * h
    s0 += c1
    d0 = a * -2.0
    curv = c2 - c1
    curv *= 1.0 / (t3 - t1)
    curv += a
    curv *= 1.0 / h
    v = times - t1
    out = curv * v
    out += d0
    out *= v
    out += s0
    last = ends[w] - 1
    past = times > x[last]
    out[past] = y[last[past]]
    return out
