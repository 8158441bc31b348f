"""What the body is doing, from motion: accelerometer samples -> still / walking / running, and what a
person's motion says over a reading's window (pure, no I/O).

Movement intensity is the mean amplitude deviation (MAD) of the acceleration's vector magnitude
over a window, MAD = mean |r_i - mean(r)|, r = sqrt(x^2 + y^2 + z^2) in mg: orientation-free,
gravity drops out with the mean, and it is the raw-acceleration measure that separated sedentary
behaviour and walking and running speeds best and alike across accelerometer brands (Vähä-Ypyä
et al. 2015, Clin Physiol Funct Imaging 35:64, doi:10.1111/cpf.12127). Cut-points, from
hip-worn accelerometers (a chest strap sits on the trunk too):
- still below STILL_MAX_MG = 25 mg: ours, just under the sedentary / light-activity cut-point
  of 27-29 mg (Aittasalo et al. 2015, BMC Sports Sci Med Rehabil 7:18,
  doi:10.1186/s13102-015-0010-0, where lying supine measured 3 mg). Checked on a real still
  recording (tests/processing/test_motion.py: a Polar Verity Sense at rest, MAD median 1.8 mg);
- MODERATE_MG = 91 mg is 3 METs and VIGOROUS_MG = 414 mg is 6 METs (Vähä-Ypyä et al. 2015,
  PLoS ONE 10:e0134813, doi:10.1371/journal.pone.0134813, against measured oxygen uptake from
  slow walking to running). Running is periodic movement at >= 6 METs; walking periodic movement
  below that (ordinary walking is 3-5 METs: Ainsworth et al. 2011, Med Sci Sports Exerc 43:1575).

Step cadence: the autocorrelation of the vector magnitude, whose first dominant peak is the step
period (Moe-Nilssen & Helbostad 2004, J Biomech 37:121, doi:10.1016/S0021-9290(03)00233-1:
trunk acceleration, first peak = step, second = stride), searched between 1.2 and 3.5 Hz (72-210
steps/min: slow walking to sprinting; 100 steps/min is about 3 METs of walking, Tudor-Locke et
al. 2018, Br J Sports Med 52:776) and refined by a parabola through the peak. Ours: a peak counts
as steps when its autocorrelation is >= PERIODIC_MIN_R (0.4; healthy adults' step regularity at
the trunk is ~0.6-0.8 in that study, so irregular gaits still count); when the peak half as far
is nearly as high, the longer one was the stride and the cadence is taken from the shorter.

Windows: WINDOW_S = 10 s, ours: 15 or more steps even at 90 steps/min, and a reading (every
10 s over a 60 s window) sees several; MAD was validated on 6 s epochs (Vähä-Ypyä 2015).

What a reading's window says (`MotionTrack.over`), ours: `moving` when motion known moving fills
>= MOVING_SHARE (a quarter) of it: heart rate rises within seconds of starting to walk, so a
window a quarter filled by walking already carries its heart rate; `still` when motion known
still fills >= STILL_SHARE (80 %) of it and nothing moved; otherwise `unknown`. Known moving is
walking, running or cycling from any source, or a window whose intensity is moderate or more
(>= MODERATE_MG) without steps (a hand bike, carrying things). Light movement without steps
(25-91 mg: fidgeting, gestures while talking) is neither still nor moving: it says nothing a
stress reading should be discounted for. In a vehicle says nothing about the body either.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from collector.events import Acceleration, Motion, MotionKind
from processing.reading import MotionState

STILL_MAX_MG = 25.0
MODERATE_MG = 91.0
VIGOROUS_MG = 414.0
WINDOW_S = 10.0
MIN_CADENCE_HZ = 1.2
MAX_CADENCE_HZ = 3.5
PERIODIC_MIN_R = 0.4
# Ours: the half-lag peak is the step when it reaches this share of the longer (stride) peak.
HALF_LAG_SHARE = 0.7
# Samples further apart than this are not one stream: the window restarts (a lost frame, a gap).
MAX_SAMPLE_GAP_S = 1.0
# Fewer samples per window than this is no measurement (under 1 Hz).
MIN_SAMPLES = 10
MOVING_SHARE = 0.25
STILL_SHARE = 0.8

_MOVING_KINDS = (MotionKind.WALKING, MotionKind.RUNNING, MotionKind.CYCLING)


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    kind: MotionKind
    intensity_mg: float
    cadence_spm: float | None


def mean_amplitude_deviation(vm: np.ndarray) -> float:
    """MAD of a vector magnitude series (mg): mean |r - mean(r)|."""
    return float(np.mean(np.abs(vm - vm.mean())))


def step_cadence(vm: np.ndarray, rate_hz: float) -> float | None:
    """Steps per minute from the autocorrelation of the vector magnitude, or None when no step
    period stands out between MIN_CADENCE_HZ and MAX_CADENCE_HZ (or the rate cannot resolve it)."""
    n = len(vm)
    lo = max(1, math.floor(rate_hz / MAX_CADENCE_HZ))
    hi = math.ceil(rate_hz / MIN_CADENCE_HZ)
    if rate_hz < 2.5 * MAX_CADENCE_HZ or hi + 2 >= n // 2:
        return None
    x = vm - vm.mean()
    energy = float(np.dot(x, x))
    if energy <= 0.0:
        return None
    spectrum = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[: hi + 2]
    r = ac / (n - np.arange(hi + 2)) / (energy / n)  # unbiased, r[0] = 1
    peaks = [k for k in range(max(lo, 1), hi + 1) if r[k] >= r[k - 1] and r[k] >= r[k + 1]]
    if not peaks:
        return None
    best = max(peaks, key=lambda k: r[k])
    if r[best] < PERIODIC_MIN_R:
        return None
    shorter = [k for k in peaks if abs(k - best / 2) <= 1.0 and r[k] >= HALF_LAG_SHARE * r[best]]
    if shorter:
        best = max(shorter, key=lambda k: r[k])
    a, b, c = r[best - 1], r[best], r[best + 1]
    curve = a - 2 * b + c
    shift = 0.5 * (a - c) / curve if curve < 0 else 0.0
    return float(60.0 * rate_hz / (best + shift))


def classify_window(t: np.ndarray, vm: np.ndarray) -> WindowVerdict | None:
    """Kind, intensity and cadence of one window of samples (times in s, vector magnitude in mg)."""
    if len(vm) < MIN_SAMPLES or t[-1] <= t[0]:
        return None
    mad = mean_amplitude_deviation(vm)
    if mad < STILL_MAX_MG:
        return WindowVerdict(MotionKind.STILL, mad, None)
    cadence = step_cadence(vm, (len(t) - 1) / (t[-1] - t[0]))
    if cadence is None:
        return WindowVerdict(MotionKind.UNKNOWN, mad, None)
    return WindowVerdict(MotionKind.RUNNING if mad >= VIGOROUS_MG else MotionKind.WALKING, mad, cadence)


class AccelerometerClassifier:
    """One device's accelerometer stream -> a `Motion` per WINDOW_S of contiguous samples."""

    def __init__(self, person: str, device: str, window_s: float = WINDOW_S, source: str = "acc"):
        self.person, self.device, self.window_s, self.source = person, device, window_s, source
        self._t: list[float] = []
        self._vm: list[float] = []

    def feed(self, acc: Acceleration) -> list[Motion]:
        out: list[Motion] = []
        ts, vms = self._t, self._vm
        for t, x, y, z in zip(acc.t, acc.x, acc.y, acc.z):
            if ts and (t <= ts[-1] or t - ts[-1] > MAX_SAMPLE_GAP_S):
                self.gap()
            elif ts and t - ts[0] >= self.window_s:
                m = self._classify()
                if m is not None:
                    out.append(m)
                self.gap()
            ts.append(t)
            vms.append(math.sqrt(x * x + y * y + z * z))
        return out

    def gap(self) -> None:
        """Samples stopped (or went back in time): a window never spans the break."""
        self._t.clear()
        self._vm.clear()

    def _classify(self) -> Motion | None:
        t, vm = np.asarray(self._t), np.asarray(self._vm)
        verdict = classify_window(t, vm)
        if verdict is None:
            return None
        span = float(t[-1] - t[0]) * len(t) / (len(t) - 1)  # the samples' own spacing included
        return Motion(
            self.person,
            self.device,
            float(t[-1]),
            verdict.kind,
            span,
            verdict.intensity_mg,
            verdict.cadence_spm,
            None,
            self.source,
        )


def says(m: Motion) -> MotionState:
    """Whether one Motion says the body is moving, still, or nothing either way."""
    if m.kind in _MOVING_KINDS:
        return MotionState.MOVING
    if m.kind == MotionKind.STILL:
        return MotionState.STILL
    if m.kind == MotionKind.UNKNOWN and m.intensity_mg is not None and m.intensity_mg >= MODERATE_MG:
        return MotionState.MOVING
    return MotionState.UNKNOWN


class MotionTrack:
    """One person's motion from every device: accelerometer samples are classified per device,
    and what each `Motion` says is kept for `keep_s` seconds, to be asked over a window."""

    def __init__(self, person: str, keep_s: float = math.inf):
        self.person = person
        self.keep_s = keep_s
        self._classifiers: dict[str, AccelerometerClassifier] = {}
        self._spans: deque[list] = deque()  # [start, end, what it says, device]
        self.latest: Motion | None = None

    def feed(self, event: Motion | Acceleration) -> list[Motion]:
        """Take a Motion, or classify accelerometer samples; returns the Motion events added."""
        if isinstance(event, Acceleration):
            c = self._classifiers.get(event.device)
            if c is None:
                c = self._classifiers[event.device] = AccelerometerClassifier(self.person, event.device)
            found = c.feed(event)
        else:
            found = [event]
        for m in found:
            # A report held past its time (the phone's) lasts until the device's next report.
            for span in self._spans:
                if span[3] == m.device and span[1] > m.t:
                    span[1] = max(span[0], m.t)
            self._spans.append([m.t - m.span_s, m.t + m.hold_s, says(m), m.device])
            if self.latest is None or m.t >= self.latest.t:
                self.latest = m
        if found and math.isfinite(self.keep_s):
            newest = max(span[1] for span in self._spans)
            while self._spans and self._spans[0][1] < newest - self.keep_s:
                self._spans.popleft()
        return found

    def gap(self, device: str) -> None:
        c = self._classifiers.get(device)
        if c is not None:
            c.gap()

    def snapshot(self) -> dict:
        """Everything `over` and the next `feed` depend on, JSON-ready: the kept spans, the latest
        Motion, each accelerometer's samples of its unfinished window. `MotionTrack.restored`
        gives a track that says and does the same."""
        latest = self.latest
        return {
            "spans": [[a, b, state.value, device] for a, b, state, device in self._spans],
            "latest": None
            if latest is None
            else [
                latest.device,
                latest.t,
                latest.kind.value,
                latest.span_s,
                latest.intensity_mg,
                latest.cadence_spm,
                latest.speed_m_s,
                latest.source,
                latest.hold_s,
            ],
            "classifiers": {
                d: [c.window_s, c.source, list(c._t), list(c._vm)] for d, c in self._classifiers.items()
            },
        }

    @classmethod
    def restored(cls, data: dict, person: str, keep_s: float = math.inf) -> MotionTrack:
        track = cls(person, keep_s)
        track._spans = deque(
            [float(a), float(b), MotionState(state), device] for a, b, state, device in data["spans"]
        )
        if data["latest"] is not None:
            device, t, kind, span, intensity, cadence, speed, source, hold = data["latest"]
            track.latest = Motion(
                person, device, t, MotionKind(kind), span, intensity, cadence, speed, source, hold
            )
        for device, (window_s, source, ts, vms) in data["classifiers"].items():
            c = track._classifiers[device] = AccelerometerClassifier(person, device, window_s, source)
            c._t, c._vm = [float(t) for t in ts], [float(v) for v in vms]
        return track

    def over(self, start: float, end: float) -> MotionState:
        """What the motion of [start, end] says (module docstring)."""
        length = end - start
        if length <= 0 or not self._spans:
            return MotionState.UNKNOWN
        moving = _union_length([(a, b) for a, b, s, _ in self._spans if s == MotionState.MOVING], start, end)
        if moving >= MOVING_SHARE * length:
            return MotionState.MOVING
        known = _union_length([(a, b) for a, b, s, _ in self._spans if s != MotionState.UNKNOWN], start, end)
        if moving == 0.0 and known >= STILL_SHARE * length:
            return MotionState.STILL
        return MotionState.UNKNOWN


def _union_length(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] that the spans cover (overlaps counted once)."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total
