"""One person's streaming core: Beat/Gap events in, a `Reading` per step out (pure, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

import numpy as np

from collector.events import GAP_TOLERANCE_S, Beat, Event, Gap
from processing import hrv
from processing.correction import ArtifactCorrector
from processing.reading import Reading
from processing.spline import SplineCache
from processing.stress import StressModel
from processing.window import BeatWindow

# RR beyond this cannot be one heartbeat (or a few missed ones): it is a dropout.
MAX_RR_MS = 3000.0
# Readings start once the short window holds this many beats.
MIN_BEATS = 20
# Valid successive pairs the RMSSD window needs for a stress score (quality 0.5; quality 1 at
# twice as many). Ultra-short RMSSD agrees closely with 5 min RMSSD from 10-30 s of beats at
# rest (Nussinovitch et al. 2011, Ann Noninvasive Electrocardiol 16:117,
# doi:10.1111/j.1542-474X.2011.00417.x; Munoz et al. 2015, PLoS One 10:e0138921; Baek et al.
# 2015, Telemed J E Health 21:404); what matters is how many differences are averaged, not the
# seconds they cover, so a window that lost beats to gaps still counts the pairs it has.
# 25 pairs (~20 s of beats at 75 bpm) is ours, inside that range: on Stress-Predict (E4 wrist)
# 20 pairs scored one more subject but the noisier readings cost ~0.05 AUC; 40 pairs scored
# three fewer (benchmarks/stress_predict.py).
MIN_PAIRS = 25
# Activity is judged on the heart rate of the last few beats, so the onset of exercise is seen
# within seconds rather than after the 60 s window catches up.
RECENT_BEATS = 8
# Initial capacity of the LF/HF beat arrays (they grow when a window holds more).
_BUFFER_BEATS = 1024


@dataclass(frozen=True)
class Settings:
    """Window lengths in seconds (`math.inf` = since the last gap, for whole-recording analysis).

    Defaults: RMSSD over 60 s (ultra-short lnRMSSD is valid from 60 s: Esco & Flatt 2014,
    J Sports Sci Med 13:535; Munoz et al. 2015, PLoS One 10:e0138921), the rest over 300 s
    (the Task Force 1996 short-term recording), a reading every 10 s, LF/HF every 10 s.
    """

    window_s: float = 300.0
    rmssd_window_s: float = 60.0
    step_s: float = 10.0
    spectral_step_s: float = 10.0
    correction: bool = True

    @classmethod
    def whole(cls, correction: bool = True) -> Settings:
        """One reading per continuous segment of a recording (like a Kubios single sample)."""
        return cls(math.inf, math.inf, math.inf, math.inf, correction)


class Pipeline:
    """Feed one person's events in time order; collect readings.

    After each `feed`/`finish`, `beats_out` holds the beats that call released from artifact
    correction (delayed by its look-ahead, each with the correction applied), for the sinks
    that store beats.

    Stages: gap detection -> artifact correction (Lipponen & Tarvainen 2019) -> trailing
    windows -> HRV metrics (processing.hrv) -> activity, stress score and state
    (processing.stress).

    Gaps: the corrector is flushed at a gap and no successive pair spans it, but the trailing
    windows keep the beats on both sides (a gappy wrist recording still gets readings from the
    pairs it has); LF/HF uses only the beats since the last gap, because its spline would
    otherwise interpolate across it. In whole-recording mode windows restart at each gap (one
    reading per continuous segment, as Kubios).

    `calibration` = (start, end) unix seconds: a span the user declares as rest (a lab
    baseline, or the first minutes of a recording). Readings whose RMSSD window lies inside it
    are learned from as rest whatever the heart rate, and never called stressed.

    Quality (0-1) = (1 - 3 x the fraction of corrected beats in the long window) x
    min(1, valid pairs in the RMSSD window / (2 MIN_PAIRS)): a score needs quality >= 0.5.
    """

    def __init__(
        self,
        person: str,
        settings: Settings = Settings(),
        model: StressModel | None = None,
        calibration: tuple[float, float] | None = None,
    ):
        self.person = person
        self.settings = settings
        self.model = model or StressModel()
        self.calibration = calibration
        self.corrector = ArtifactCorrector()
        self.long = BeatWindow(settings.window_s, keep_sorted=True)
        self.short = BeatWindow(settings.rmssd_window_s)
        self.n_gaps = 0
        self.n_dropped = 0
        self._last_t: float | None = None
        self._next_emit = -math.inf
        self._next_spectral = -math.inf
        self._lf_hf: float | _LfHfJob | None = None
        self._spline = SplineCache()
        # Beat times and RR since the last gap, kept as arrays for LF/HF (converting the
        # window's deques every step cost more than appending here). Live beats are
        # [_seg_i:_n]; slices handed to LF/HF are never overwritten (the spline cache keeps
        # them): appends go past _n and compaction moves to new arrays.
        self._t_buf = np.empty(_BUFFER_BEATS)
        self._rr_buf = np.empty(_BUFFER_BEATS)
        self._n = self._seg_i = 0
        self._energy: float | None = None
        self._pending_whole = False
        self._after_gap = False
        # While `feed_many` runs: the LF/HF windows due, and the readings that wait for them.
        self._jobs: list[_LfHfJob] | None = None
        self._waiting: list[Reading] = []
        self.beats_out: list[Beat] = []

    # -- input ---------------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Reading]:
        self.beats_out = []
        if isinstance(event, Gap):
            return self._gap()
        beat = event
        out: list[Reading] = []
        if self._last_t is not None:
            if beat.t <= self._last_t:
                self.n_dropped += 1  # duplicate or out of order: the earlier copy counts
                return out
            if beat.t - self._last_t > beat.rr_ms / 1000.0 + GAP_TOLERANCE_S:
                out += self._gap()
        if beat.rr_ms > MAX_RR_MS or beat.rr_ms <= 0:
            out += self._gap()
            self._last_t = beat.t
            return out
        self._last_t = beat.t
        if beat.energy_kj is not None:
            self._energy = beat.energy_kj
        beats = self.corrector.push(beat) if self.settings.correction else [beat]
        for b in beats:
            out += self._add(b)
        return out

    def feed_many(self, events: Iterable[Event]) -> list[Reading]:
        """`feed` each event in turn; the same readings, but LF/HF is computed for all of them
        at the end, together (`hrv.lf_hf_many`: ~5x less CPU per window than one at a time).
        For analysing a file in chunks of events; a live stream uses `feed`, whose readings
        cannot wait. `beats_out` holds the beats released by all the events."""
        self._jobs, self._waiting = [], []
        out: list[Reading] = []
        beats: list[Beat] = []
        try:
            for event in events:
                out += self.feed(event)
                beats += self.beats_out
        finally:
            self._settle_lf_hf()
        self.beats_out = beats
        return out

    def finish(self) -> list[Reading]:
        """End of input: process what the corrector holds back; in whole mode emit the reading."""
        self.beats_out = []
        return self._drain()

    # -- internals -----------------------------------------------------------------------------

    def _drain(self) -> list[Reading]:
        out: list[Reading] = []
        for b in self.corrector.flush():
            out += self._add(b)
        if self._pending_whole:
            out += self._reading()
            self._pending_whole = False
        return out

    def _gap(self) -> list[Reading]:
        out = self._drain()
        for window in (self.long, self.short):
            if math.isinf(window.duration_s):  # "since the last gap"
                window.clear()
        self._after_gap = True
        self.n_gaps += 1
        self._next_spectral = -math.inf
        self._lf_hf = None
        self._spline.clear()
        self._seg_i = self._n
        self._last_t = None
        return out

    def _add(self, beat: Beat) -> list[Reading]:
        self.beats_out.append(beat)
        artifact = bool(beat.artifact)
        successive = not self._after_gap
        if self._after_gap:
            self._after_gap = False
        self.long.add(beat.t, beat.rr_ms, artifact, successive)
        n = self._n
        if n == len(self._t_buf):
            n = self._compact()
        self._t_buf[n] = beat.t
        self._rr_buf[n] = beat.rr_ms
        self._n = n + 1
        self.short.add(beat.t, beat.rr_ms, artifact, successive)
        if math.isinf(self.settings.step_s):
            self._pending_whole = True
            return []
        if beat.t < self._next_emit or len(self.short) < MIN_BEATS:
            return []
        step = self.settings.step_s
        self._next_emit = (math.floor(beat.t / step) + 1) * step if step > 0 else beat.t
        return self._reading()

    def _reading(self) -> list[Reading]:
        long, short = self.long, self.short
        if len(long) < 3:
            return []
        t = long.times[-1]
        if t >= self._next_spectral or math.isinf(self.settings.spectral_step_s):
            first, n = self._lf_hf_first(), self._n
            if self._jobs is None:
                self._lf_hf = hrv.lf_hf(self._t_buf[first:n], self._rr_buf[first:n], self._spline)
            else:
                self._lf_hf = _LfHfJob(self._t_buf, self._rr_buf, self.n_gaps, first, n)
                self._jobs.append(self._lf_hf)
            sp = self.settings.spectral_step_s
            self._next_spectral = (math.floor(t / sp) + 1) * sp if 0 < sp < math.inf else t
        mean_rr = long.mean_rr()
        short_mean = short.mean_rr()
        hr = 60000.0 / short_mean
        rmssd_short = short.rmssd()
        rmssd_long = long.rmssd()
        sd1, sd2 = long.sd1(), long.sd2()
        si = hrv.baevsky_si(long)
        stress_index = math.sqrt(si) if si is not None else None
        pns = sns = None
        if rmssd_long is not None and sd1 is not None and sd2 is not None and stress_index is not None:
            pns = hrv.pns_index(mean_rr, rmssd_long, sd1)
            sns = hrv.sns_index(60000.0 / mean_rr, stress_index, sd2, mean_rr)
        artifact_frac = long.n_artifacts / len(long)
        quality = max(0.0, 1.0 - 3.0 * artifact_frac) * min(1.0, short.n_pairs / (2.0 * MIN_PAIRS))
        ln_rmssd = hrv.ln(rmssd_short)
        recent = list(islice(reversed(short.rrs), RECENT_BEATS))
        recent_hr = 60000.0 * len(recent) / sum(recent)
        verdict = self.model.assess(t, hr, ln_rmssd, quality, self._energy, recent_hr, self._known_rest(t))
        reading = Reading(
                person=self.person,
                time=t,
                window_s=self.settings.window_s,
                n_beats=len(long),
                mean_rr_ms=short_mean,
                hr_bpm=hr,
                rmssd_ms=rmssd_short,
                ln_rmssd=ln_rmssd,
                sdnn_ms=long.sdnn(),
                pnn50_pct=short.pnn(50),
                pnn20_pct=short.pnn(20),
                sd1_ms=sd1,
                sd2_ms=sd2,
                baevsky_si=si,
                stress_index=stress_index,
                pns_index=pns,
                sns_index=sns,
                lf_hf=self._lf_hf,
                artifact_pct=100.0 * artifact_frac,
                activity=verdict.activity,
                stress_score=verdict.score,
                state=verdict.state,
                quality=quality,
            )
        if isinstance(self._lf_hf, _LfHfJob):
            self._waiting.append(reading)
        return [reading]

    def _settle_lf_hf(self) -> None:
        """End of `feed_many`: compute the LF/HF windows due, one `hrv.lf_hf_many` call per
        segment (between gaps), and fill them into the waiting readings."""
        jobs, waiting = self._jobs or [], self._waiting
        self._jobs, self._waiting = None, []
        k = 0
        while k < len(jobs):
            run = [jobs[k]]
            while k + len(run) < len(jobs) and jobs[k + len(run)].segment == run[0].segment:
                run.append(jobs[k + len(run)])
            t, rr, windows = _union(run)
            for job, value in zip(run, hrv.lf_hf_many(t, rr, windows)):
                job.value = value
            k += len(run)
        for r in waiting:
            # Readings are frozen for their users; this one has not left the pipeline yet.
            object.__setattr__(r, "lf_hf", r.lf_hf.value)  # type: ignore[union-attr]
        if isinstance(self._lf_hf, _LfHfJob):
            self._lf_hf = self._lf_hf.value


    def _lf_hf_first(self) -> int:
        """Index of the first beat LF/HF uses: in the long window and after the last gap. Every
        beat goes to both the arrays and the long window, so the window's beats are the
        arrays' last len(long)."""
        return max(self._seg_i, self._n - len(self.long))

    def _compact(self) -> int:
        """Move the beats LF/HF can still use to new arrays (with room to grow); their count."""
        first = self._lf_hf_first()
        live = self._n - first
        size = max(_BUFFER_BEATS, 2 * live)
        t_buf, rr_buf = np.empty(size), np.empty(size)
        t_buf[:live] = self._t_buf[first : self._n]
        rr_buf[:live] = self._rr_buf[first : self._n]
        self._t_buf, self._rr_buf = t_buf, rr_buf
        self._seg_i, self._n = 0, live
        return live

    def _known_rest(self, t: float) -> bool:
        if self.calibration is None:
            return False
        start, end = self.calibration
        horizon = self.settings.rmssd_window_s
        return start + (0.0 if math.isinf(horizon) else horizon) <= t <= end


@dataclass(eq=False, slots=True)
class _LfHfJob:
    """An LF/HF window `feed_many` computes later: beats first..n-1 of the arrays t, rr (never
    overwritten, see `Pipeline.__init__`) of the segment after gap number `segment`."""

    t: np.ndarray
    rr: np.ndarray
    segment: int
    first: int
    n: int
    value: float | None = None


def _union(jobs: list[_LfHfJob]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """The beats of a segment's windows as one series, and each window as (i, j) in it. The
    windows may lie in several arrays (the pipeline compacts into new ones as they fill); a
    later array starts with copies of beats an earlier one holds, which are skipped by time."""
    t_parts, rr_parts, last = [], [], -math.inf
    k = 0
    while k < len(jobs):
        m = k
        while m < len(jobs) and jobs[m].t is jobs[k].t:
            m += 1
        ts, rrs, b = jobs[k].t, jobs[k].rr, jobs[m - 1].n
        a = max(jobs[k].first, int(np.searchsorted(ts[:b], last, side="right")))
        t_parts.append(ts[a:b])
        rr_parts.append(rrs[a:b])
        if b > a:
            last = float(ts[b - 1])
        k = m
    t = np.concatenate(t_parts)
    first = np.searchsorted(t, [j.t[j.first] for j in jobs])
    return t, np.concatenate(rr_parts), [(int(i), int(i) + j.n - j.first) for i, j in zip(first, jobs)]


# Events per `feed_many` call in `run`: enough to share the fixed cost of LF/HF's batch, few
# enough to keep its arrays small.
CHUNK_EVENTS = 4096


def run(events: list[Event], person: str, settings: Settings = Settings(), **kw) -> list[Reading]:
    """Convenience: all readings for a list of events of one person."""
    p = Pipeline(person, settings, **kw)
    out: list[Reading] = []
    for k in range(0, len(events), CHUNK_EVENTS):
        out += p.feed_many(events[k : k + CHUNK_EVENTS])
    return out + p.finish()
