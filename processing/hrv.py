"""HRV metrics over a window of NN intervals: Baevsky stress index, PNS/SNS indices, LF/HF.

Time-domain and Poincare statistics come from `window.BeatLog` (prefix sums); conventions, all
as Kubios HRV 3.1 reports them (Tarvainen et al. 2014, Comput Methods Programs Biomed
113:210, doi:10.1016/j.cmpb.2013.07.024) and as neurokit2 computes them except where noted:
- mean RR (ms); heart rate hr_bpm = 60000 / mean RR (Kubios' "Mean HR");
- SDNN: sample standard deviation, ddof = 1;
- RMSSD: sqrt(mean(dRR^2)) over the N-1 successive differences; ln_rmssd = ln(RMSSD in ms)
  (Plews et al. 2013, Sports Med 43:773);
- pNN50 / pNN20 (%): differences > 50 / > 20 ms divided by the number of differences (N-1),
  as Kubios. neurokit2 divides by N (its HRV_pNN50 = ours * (N-1)/N); we follow Kubios
  because the Task Force 1996 definition is a proportion of difference pairs;
- SD1 / SD2: ddof = 1 standard deviations along the Poincare axes (Brennan et al. 2001,
  IEEE Trans Biomed Eng 48:1342).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from processing import spline, spline_batch
from processing.spline import SplineCache
from processing.window import quantile

# -- Baevsky stress index ---------------------------------------------------------------------

HISTOGRAM_BIN_MS = 50.0


def baevsky_si(rr_ms: np.ndarray) -> float | None:
    """Baevsky's stress index SI = AMo / (2 Mo MxDMn) of a window's RR (dimensionless, Kubios'
    convention).

    Baevsky & Chernikova 2017 (Cardiometry 10:66, doi:10.12710/cardiometry.2017.6676);
    Kubios HRV user's guide: AMo is the height of the modal bin of a histogram with 50 ms bins
    (from the shortest RR) in % of beats, Mo the median RR (s), MxDMn the spread of RR (s).
    Kubios does not publish how it takes the spread; the range between the 2.5th and 97.5th
    percentiles (which drops outliers a max-min range would be ruled by) reproduces its report
    on the reference sample to 1e-4 (stress index 7.7190 vs 7.7198), whereas max-min gives
    5.66. Kubios' "Stress index" is sqrt(SI) (see `stress_index`). Needs >= 20 beats.
    """
    n = len(rr_ms)
    if n < 20:
        return None
    s = np.sort(rr_ms)
    spread_s = float(quantile(s, 0.975) - quantile(s, 0.025)) / 1000.0
    mode_s = float(quantile(s, 0.5)) / 1000.0
    if spread_s <= 0 or mode_s <= 0:
        return None
    amo_pct = 100.0 * _modal_bin_count(s, HISTOGRAM_BIN_MS) / n
    return amo_pct / (2.0 * mode_s * spread_s)


def _modal_bin_count(s: np.ndarray, width: float) -> int:
    """Values of the sorted `s` in the fullest histogram bin [s0 + k width, s0 + (k+1) width).
    The edges are summed one width at a time: recordings stored with RR rounded to decimals put
    many beats exactly on an edge, so which side they fall on must not depend on how the edge
    is computed (s0 + k width rounds differently and moved 13 of 298 beats on nsr001)."""
    edge, last = float(s[0]), float(s[-1])
    edges = []
    while edge <= last:
        edge += width
        edges.append(edge)
    below = np.searchsorted(s, edges, side="left")  # the values below each edge
    return int(np.diff(below, prepend=0).max())


# -- PNS / SNS indices -------------------------------------------------------------------------

# Normal resting values (mean, SD) used to turn each parameter into a z-score.
# Mean RR and RMSSD: Nunan, Sandercock & Brodie 2010, "A quantitative systematic review of
# normal values for short-term heart rate variability in healthy adults", PACE 33:1407,
# doi:10.1111/j.1540-8159.2010.02841.x (RR 926 +- 90 ms, RMSSD 42 +- 15 ms, SDNN 50 +- 16 ms).
# Mean HR is 60000/926 with the SD carried through (delta method). SD1 and SD2 in normalised
# units (% of mean RR) follow from those: SD1 = RMSSD/sqrt(2) = 29.7 ms -> 3.2 +- 1.1 %, SD2 =
# sqrt(2 SDNN^2 - SD1^2) = 64 ms -> 6.9 +- 2.2 %. sqrt(SI): Baevsky's resting norm SI 50-150
# -> 10 +- 3. Kubios states its PNS/SNS indices use these parameters compared with normal
# population values but does not publish the values, so ours do not reproduce its numbers:
# see `pns_index` for why the signs differ on its reference sample.
NORMS = {
    "mean_rr_ms": (926.0, 90.0),
    "rmssd_ms": (42.0, 15.0),
    "sd1_pct": (3.2, 1.1),
    "hr_bpm": (64.8, 6.3),
    "stress_index": (10.0, 3.0),
    "sd2_pct": (6.9, 2.2),
}


def _z(name: str, value: float) -> float:
    mean, sd = NORMS[name]
    return (value - mean) / sd


def pns_index(mean_rr: float, rmssd: float, sd1: float) -> float:
    """Parasympathetic (PNS) index: mean z-score of mean RR, RMSSD and SD1 (% of mean RR).

    0 = normal resting population average; positive = more vagal activity. After the Kubios
    HRV "PNS index" (kubios.com/hrv-ans-function): parasympathetic activity lengthens RR and
    raises the respiratory (fast) variability that RMSSD and SD1 capture.

    Against Kubios (README "Kubios parity"): on its reference sample both our indices have the
    opposite sign (PNS +0.28 vs -0.88, SNS -0.83 vs +1.42) with the same inputs to 0.1 %. The
    z-scores against NORMS are mean RR -2.43, RMSSD +0.99, SD1 % +2.26 and HR +3.18, sqrt SI
    -0.76, SD2 % +4.89 (entered negated). Without the SD1 % / SD2 % terms the indices would be
    -0.72 and +1.21, Kubios' signs. If Kubios' other norms were ours, its values would need
    z(SD1 %) = -1.20 and z(SD2 %) = -1.85, i.e. this sample's SD1 (5.7 % of mean RR) and SD2
    (17.7 %) would lie below Kubios' normal values, whereas they lie far above ours (3.2 % and
    6.9 %, derived from Nunan's RMSSD and SDNN at a mean RR of 926 ms; the sample has SDNN
    93 ms at a mean RR of 708 ms). Two reported values cannot identify six unpublished norms,
    so we keep the published ones (our choice: checkable, and not fitted to one report).
    """
    return (_z("mean_rr_ms", mean_rr) + _z("rmssd_ms", rmssd) + _z("sd1_pct", 100.0 * sd1 / mean_rr)) / 3.0


def sns_index(hr_bpm: float, stress_index: float, sd2: float, mean_rr: float) -> float:
    """Sympathetic (SNS) index: mean z-score of mean HR, sqrt(Baevsky SI) and SD2 (% of mean RR).

    After the Kubios HRV "SNS index": sympathetic activity raises HR and narrows the RR
    histogram (higher stress index). Kubios enters SD2 so that lower SD2 raises the index,
    so its z-score is negated here.
    """
    return (
        _z("hr_bpm", hr_bpm) + _z("stress_index", stress_index) - _z("sd2_pct", 100.0 * sd2 / mean_rr)
    ) / 3.0


# -- Frequency domain --------------------------------------------------------------------------

LF_BAND = (0.04, 0.15)
HF_BAND = (0.15, 0.40)
INTERPOLATION_HZ = 4.0
# Task Force 1996: LF needs at least 2 min of data (10 cycles of its lowest frequency ~ 4 min
# is better); below this LF/HF is not reported.
MIN_SPECTRAL_SPAN_S = 120.0
# Below this total LF + HF power (ms^2) the ratio is not reported: it would be a ratio of
# numerical noise (a constant series gives powers of ~1e-17 ms^2 and an "LF/HF" of ~1).
# Our choice of value, with margin on both sides: 1 ms^2 is three orders of magnitude below
# the Task Force 1996 normal values for 5 min supine recordings (LF 1170 +- 416 ms^2, HF
# 975 +- 203 ms^2, Table 2), and about ten times what the recording resolution alone yields
# (RR rounded to 1 ms or 1/1024 s on a near-constant series: LF + HF ~ 0.05-0.14 ms^2).
MIN_LF_HF_POWER_MS2 = 1.0


def lf_hf(times_s: np.ndarray, rr_ms: np.ndarray, cache: SplineCache | None = None) -> float | None:
    """LF/HF power ratio of RR intervals (Task Force 1996, Circulation 93:1043, bands
    LF 0.04-0.15 Hz, HF 0.15-0.40 Hz).

    Following neurokit2 `hrv_frequency(..., interpolation_rate=4)` (Welch method): RR(t) at
    the beat times is resampled at 4 Hz, the mean removed, and Welch's periodogram taken with
    a Hann window of half the series, 50 % overlap and zero padding to twice the segment;
    band powers are trapezoidal integrals over [low, high). The quadratic interpolating
    spline and Welch's method are re-implemented in numpy (same knots, window and scaling as
    scipy) because importing scipy's interpolate and signal modules would add ~80 MB to a
    process meant to stay under 100 MB on a Raspberry Pi. Kubios instead uses a cubic spline
    and a 300 s Welch window, so its LF/HF differs (3.03 vs 2.55 on its reference sample).
    One difference from neurokit2, ours: its 4 Hz grid starts at the first beat, ours at the
    first multiple of 0.25 s at or after it (`spline.sample_grid`; as many samples, since
    their number decides how many Welch segments fit), so that successive windows share their
    samples and a step evaluates only those near the window's ends. The shift (< 0.25 s)
    changed LF/HF by 7e-6 relative on the Kubios sample, and the worst difference from
    neurokit2 on the nsr2db windows of tests/processing/test_hrv_reference.py from 1.027 % to
    1.033 %.
    None below 2 min of data or below `MIN_LF_HF_POWER_MS2` of LF + HF power.
    With a `cache` (processing/spline.py) successive windows of one stream re-solve the spline
    only near their ends and copy the samples between them; the result is the same to
    floating-point precision.
    """
    if not _spectral_span(times_s, 0, len(rr_ms)):
        return None
    y = spline.sample_grid(times_s, rr_ms, INTERPOLATION_HZ, cache)
    lf, hf = _welch_band_powers(y - np.add.reduce(y) / len(y))
    return _ratio(lf, hf)


# Windows whose 4 Hz samples go through one FFT call in `lf_hf_many` (bounds its memory: ~30 kB
# of spectra per window).
_WELCH_BATCH = 64


def lf_hf_many(times_s: np.ndarray, rr_ms: np.ndarray, windows: list[tuple[int, int]]) -> list[float | None]:
    """`lf_hf(times_s[i:j], rr_ms[i:j])` for every window (i, j) of one series with no gap inside,
    computed together: for analysing a file, where the windows of a chunk of beats are known at
    once (`Pipeline.feed_many`). The spline samples come from processing/spline_batch.py, and
    the windows with as many samples share the FFT calls.

    A second path kept for its factor: ~3.5x less CPU per window than `lf_hf` with a
    `SplineCache` (the 24 h of nsr001 every 10 s: ~85 vs ~300 us; benchmarks/processing.py,
    "LF/HF of the 24 h windows"), ~2/3 of what `feed_many` saves (its docstring). Equal to
    `lf_hf` per window to ~1e-8 relative, the tolerance of the spline's solve
    (tests/processing/test_spline.py `test_lf_hf_of_many_windows_equals_lf_hf_of_each`)."""
    out: list[float | None] = [None] * len(windows)
    due = [k for k, (i, j) in enumerate(windows) if _spectral_span(times_s, i, j)]
    for rows, y in spline_batch.sample_grids(times_s, rr_ms, [windows[k] for k in due], INTERPOLATION_HZ):
        y -= (np.add.reduce(y, axis=1) / y.shape[1])[:, None]
        for b in range(0, len(rows), _WELCH_BATCH):
            powers = _band_power_rows(y[b : b + _WELCH_BATCH]).tolist()
            for r, (lf, hf) in zip(rows[b : b + _WELCH_BATCH], powers):
                out[due[r]] = _ratio(lf, hf)
    return out


def _spectral_span(times_s: np.ndarray, i: int, j: int) -> bool:
    """Enough beats and time in [i, j) for LF/HF."""
    return j - i >= 16 and times_s[j - 1] - times_s[i] >= MIN_SPECTRAL_SPAN_S


def _ratio(lf: float, hf: float) -> float | None:
    if not hf or not lf or lf + hf < MIN_LF_HF_POWER_MS2:
        return None
    return lf / hf


def _welch_band_powers(y: np.ndarray) -> tuple[float, float]:
    """LF and HF power (ms^2) of the Welch PSD of `y` (sampled at INTERPOLATION_HZ): density
    scaling, periodic Hann window, 50 % overlap, mean of segments, trapezoidal band integrals.
    `y` must be a contiguous float64 array (see `_band_power_rows`)."""
    lf, hf = _band_power_rows(y.reshape(1, -1))[0]
    return float(lf), float(hf)


def _band_power_rows(y: np.ndarray) -> np.ndarray:
    """`_welch_band_powers` of every row of the contiguous (windows, samples) array `y`: an
    array (windows, 2) of LF and HF.

    Everything but the samples depends only on their number (`_spectral_setup`), and only the
    bins inside the bands are squared and summed. The overlapping segments are a strided view
    of `y`, not a copy."""
    rows, n = y.shape
    shape, win, nfft, lo, hi, weights = _spectral_setup(n)
    step = (shape[1] - shape[1] // 2) * 8
    segments = np.ndarray((rows, *shape), np.float64, y, 0, (n * 8, step, 8))
    spec = np.fft.rfft(segments * win, n=nfft, axis=-1)[..., lo:hi].view(np.float64)  # (re, im) pairs
    spec *= spec
    return spec.reshape(rows, -1) @ weights


@lru_cache(maxsize=64)
def _spectral_setup(n: int) -> tuple[tuple[int, int], np.ndarray, int, int, int, np.ndarray]:
    """For n samples: (segments, segment length), Hann window, FFT length, the bins lo..hi-1 spanning both
    bands and the weights (one column per band) that turn the squared real and imaginary parts
    of every segment's bins into the band's trapezoidal integral of the mean density (cached:
    successive windows of a stream have the same few n)."""
    min_freq = 4.0 * INTERPOLATION_HZ / n  # neurokit2's default: (2 fs) / (N / 2)
    nperseg = min(int(2.0 / min_freq * INTERPOLATION_HZ), n // 2)
    win, scale, freqs, nfft = _welch_setup(nperseg, INTERPOLATION_HZ)
    step = nperseg - nperseg // 2
    n_segments = (n - nperseg) // step + 1
    # neurokit2 keeps frequencies in [min_freq, 0.5] before integrating each band.
    bands = [(max(LF_BAND[0], min_freq), LF_BAND[1]), (max(HF_BAND[0], min_freq), HF_BAND[1])]
    edges = [(int(np.searchsorted(freqs, b[0])), int(np.searchsorted(freqs, b[1]))) for b in bands]
    lo, hi = min(e[0] for e in edges), max(e[1] for e in edges)
    weights = []
    for b_lo, b_hi in edges:
        w = np.zeros(hi - lo)
        if b_hi - b_lo >= 2:  # trapezoid: each interval's width / 2 to both of its ends
            half = np.diff(freqs[b_lo:b_hi]) / 2.0
            w[b_lo - lo : b_hi - lo - 1] += half
            w[b_lo - lo + 1 : b_hi - lo] += half
        weights.append(w * scale[lo:hi] / n_segments)
    # Bin power = re^2 + im^2, summed over the segments: each bin's weight twice (re, im), per segment.
    matrix = np.tile(np.repeat(np.stack(weights, axis=1), 2, axis=0), (n_segments, 1))
    return (n_segments, nperseg), win, nfft, lo, hi, matrix


def _welch_setup(nperseg: int, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Hann window, one-sided density scale per bin, frequencies and FFT length.

    Segments are zero-padded to at least 2 nperseg as in neurokit2, rounded up to a length
    with only factors 2, 3 and 5: FFTs of lengths with a large prime factor are several
    times slower, and the finer frequency grid changes band powers by < 0.1 %.
    """
    nfft = _fast_length(2 * nperseg)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nperseg) / nperseg)
    scale = np.full(nfft // 2 + 1, 2.0 / (fs * (win * win).sum()))
    scale[0] /= 2.0
    if nfft % 2 == 0:
        scale[-1] /= 2.0  # the Nyquist bin has no mirror image
    return win, scale, np.fft.rfftfreq(nfft, 1.0 / fs), nfft


def _fast_length(n: int) -> int:
    """The smallest m >= n whose prime factors are all 2, 3 or 5."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def ln(x: float | None) -> float | None:
    return math.log(x) if x and x > 0 else None
