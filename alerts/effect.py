"""The measured effect of a breathing exercise (rest before vs after) and whether paced breathing happened.

Windows: the resting readings of the `BEFORE_MIN` minutes before the prompt against those of
`AFTER_MIN` minutes starting `SETTLE_MIN` after the exercise was marked done. Never during the
exercise: slow breathing inflates RMSSD through respiratory sinus arrhythmia (Lehrer & Gevirtz
2014, Front Psychol 5:756), which is the exercise working, not a calmer resting state. Each window
needs >= `MIN_COVER_MIN` minutes of rest with good signal, else the effect is "not measurable".

Judgement (Hopkins 2000, Sports Med 30:1, doi:10.2165/00007256-200030010-00001): the typical
error TE of a 5-minute resting lnRMSSD is SD(difference of consecutive blocks) / sqrt(2), learned
from the person's own rest (`Noise`, robust estimates); the smallest worthwhile change SWC is
0.5 x the SD of their 5-minute resting values (Buchheit 2014, Front Physiol 5:73). A change
counts as an effect when it exceeds both SWC and 1.645 x sqrt(2) x TE (the one-sided 95 % limit
of a change between two noisy windows); otherwise the verdict is "no measurable effect". Until
`MIN_PAIRS` block pairs exist the defaults TE 0.08 and SWC 0.10 ln units are used (ours: the
order of the day-to-day CV of resting lnRMSSD, ~3-4 % of ~3.5-4.0, Plews et al. 2012).

Paced breathing: the peak of the RR spectrum (RR resampled at 4 Hz, linear trend removed, Hann
window, periodogram) between 0.03 and 0.5 Hz should lie within 0.015 Hz or 15 % of the
exercise's breathing rate (breathing sets the RSA frequency: Task Force 1996, Circulation 93:1043).
"""

from __future__ import annotations

import math

import numpy as np

BEFORE_MIN = 5.0
SETTLE_MIN = 1.0
AFTER_MIN = 5.0
MIN_COVER_MIN = 3.0
EXERCISE_EXCLUDE_MIN = 30.0
BLOCK_S = 300.0
MIN_PAIRS = 20
KEEP_BLOCKS = 288  # a day of 5-minute blocks
MIN_TE = 0.02  # ln units; ours: finer than a 5-minute lnRMSSD can be told apart (and never zero)
DEFAULT_TE = 0.08
DEFAULT_SWC = 0.10
FS_HZ = 4.0
BAND_HZ = (0.03, 0.5)


def window_stats(rows: list[list]) -> dict | None:
    """Weighted means of rows [time, minutes, ln_rmssd, hr_bpm, stress_score|None]; None if too short."""
    minutes = sum(r[1] for r in rows)
    if minutes < MIN_COVER_MIN:
        return None
    w = np.array([r[1] for r in rows])
    scores = [(r[1], r[4]) for r in rows if r[4] is not None]
    sw = sum(a for a, _ in scores)
    return {
        "ln_rmssd": float(np.average([r[2] for r in rows], weights=w)),
        "hr_bpm": float(np.average([r[3] for r in rows], weights=w)),
        "stress_score": sum(a * b for a, b in scores) / sw if sw > 0 else None,
        "minutes": round(minutes, 2),
    }


class Noise:
    """The person's typical error and between-block spread of 5-minute resting lnRMSSD.

    Robust (ours): over the last `KEEP_BLOCKS` blocks, TE = 1.4826 x median |d| / sqrt(2) for the
    differences d of consecutive blocks, and the spread 1.4826 x MAD of the block means (the MAD
    scaled to an SD for normal data), so that the few real changes between blocks (a stressful
    call, the end of one) do not count as measurement noise. The engine leaves out the
    `EXERCISE_EXCLUDE_MIN` after a prompt: an exercise changes HRV on purpose.
    """

    def __init__(self) -> None:
        self.block: list = [None, 0.0, 0.0]  # block index, minutes, ln*minutes
        self.prev: list | None = None  # [block index, mean]
        self.diffs: list[float] = []
        self.means: list[float] = []

    def add(self, time: float, minutes: float, ln_rmssd: float | None) -> None:
        """Add a rest reading (None for anything else, which breaks the current block)."""
        index = int(time // BLOCK_S)
        if index != self.block[0]:
            self._close()
            self.block = [index, 0.0, 0.0]
        if ln_rmssd is None:
            self.block[1] = -math.inf
            return
        self.block[1] += minutes
        self.block[2] += minutes * ln_rmssd

    def _close(self) -> None:
        index, minutes, total = self.block
        if index is None or minutes < 4.0:  # a block needs 4 of its 5 minutes at rest
            self.prev = None
            return
        mean = total / minutes
        if self.prev is not None and self.prev[0] == index - 1:
            self.diffs = [*self.diffs[-(KEEP_BLOCKS - 1) :], round(mean - self.prev[1], 5)]
        self.prev = [index, mean]
        self.means = [*self.means[-(KEEP_BLOCKS - 1) :], round(mean, 5)]

    def te(self) -> float:
        if len(self.diffs) < MIN_PAIRS:
            return DEFAULT_TE
        return max(1.4826 * float(np.median(np.abs(self.diffs))) / math.sqrt(2.0), MIN_TE)

    def swc(self) -> float:
        if len(self.diffs) < MIN_PAIRS:
            return DEFAULT_SWC
        m = np.asarray(self.means)
        return max(0.5 * 1.4826 * float(np.median(np.abs(m - np.median(m)))), MIN_TE)

    def to_dict(self) -> dict:
        block = list(self.block)
        block[1] = None if block[1] == -math.inf else block[1]
        return {"block": block, "prev": self.prev, "diffs": self.diffs, "means": self.means}

    def restore(self, data: dict) -> None:
        block = list(data["block"])
        block[1] = -math.inf if block[1] is None else block[1]
        self.block, self.prev = block, data["prev"]
        self.diffs, self.means = list(data["diffs"]), list(data["means"])


def judge(before: dict | None, after: dict | None, swc: float, te: float) -> dict:
    """The verdict and the changes (after - before) with the threshold used."""
    threshold = max(swc, 1.645 * math.sqrt(2.0) * te)
    if before is None or after is None:
        return {
            "verdict": "not measurable",
            "threshold": round(threshold, 4),
            "before": before,
            "after": after,
        }
    d_ln = after["ln_rmssd"] - before["ln_rmssd"]
    verdict = "improved" if d_ln >= threshold else "worse" if d_ln <= -threshold else "no measurable effect"
    d_score = (
        None
        if before["stress_score"] is None or after["stress_score"] is None
        else round(after["stress_score"] - before["stress_score"], 2)
    )
    return {
        "verdict": verdict,
        "d_ln_rmssd": round(d_ln, 4),
        "d_hr_bpm": round(after["hr_bpm"] - before["hr_bpm"], 2),
        "d_stress_score": d_score,
        "threshold": round(threshold, 4),
        "before": before,
        "after": after,
    }


def breathing_peak_hz(times_s, rr_ms) -> float | None:
    """The dominant RR-oscillation frequency (Hz) in 0.03-0.5 Hz; None for < 60 s or < 40 beats."""
    t = np.asarray(times_s, dtype=float)
    rr = np.asarray(rr_ms, dtype=float)
    if len(t) < 40 or t[-1] - t[0] < 60.0:
        return None
    grid = np.arange(t[0], t[-1], 1.0 / FS_HZ)
    x = np.interp(grid, t, rr)
    x = x - np.polyval(np.polyfit(grid - grid[0], x, 1), grid - grid[0])
    n = len(x)
    nfft = max(4096, 1 << (n - 1).bit_length())  # zero-padding for a finer frequency grid
    power = np.abs(np.fft.rfft(x * np.hanning(n), nfft)) ** 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / FS_HZ)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    return float(freqs[band][np.argmax(power[band])])


def paced(peak_hz: float | None, breaths_per_min: float) -> bool | None:
    """Whether the spectrum peak matches the exercise's breathing rate (None: no spectrum)."""
    if peak_hz is None:
        return None
    expected = breaths_per_min / 60.0
    return abs(peak_hz - expected) <= max(0.015, 0.15 * expected)


def describe(exercise: str, result: dict) -> str:
    """The measured effect as a sentence a person understands."""
    if result["verdict"] == "not measurable":
        return f"The effect of {exercise} could not be measured: too little resting data before or after it."
    b, a = result["before"], result["after"]
    text = (
        f"After {exercise} your resting HRV (lnRMSSD) went from {b['ln_rmssd']:.2f} to {a['ln_rmssd']:.2f} "
        f"and your heart rate from {b['hr_bpm']:.0f} to {a['hr_bpm']:.0f} bpm"
    )
    if result["verdict"] == "no measurable effect":
        text += (
            f": no measurable effect (a change needs at least {result['threshold']:.2f} "
            "to exceed your measurement noise)."
        )
    else:
        text += f": {result['verdict']} beyond your smallest worthwhile change ({result['threshold']:.2f})."
    if result.get("paced") is False:
        text += " Your heart rhythm did not follow the paced breathing rate, so this session is not counted."
    return text
