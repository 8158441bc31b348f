"""One person's streaming core: Beat/Gap (and motion) events in, a `Reading` per step out (pure, no I/O)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from collector.events import GAP_TOLERANCE_S, Acceleration, Beat, Event, Gap, HeartRate, Motion
from processing import hrv
from processing.correction import ArtifactCorrector
from processing.motion import MotionTrack
from processing.reading import NO_RR, MotionState, Reading, StressState
from processing.spline import SplineCache
from processing.stress import StressModel
from processing.window import BeatLog, WindowStats

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
# A reading from a strap's heart rates alone (`HeartRate` events: a strap that sends no RR
# intervals) needs this many of them in the short window; ours: 10 s of the usual 1 Hz
# notifications, each already the strap's average over recent beats.
MIN_HR_SAMPLES = 10


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
    that store beats, and `motion_out` the `Motion` events it added to the person's motion (a
    Motion as it came, or those classified from accelerometer samples), for the morning reading.

    Stages: gap detection -> artifact correction (Lipponen & Tarvainen 2019) -> trailing
    windows -> HRV metrics (processing.hrv) -> activity, stress score and state
    (processing.stress).

    Gaps: the corrector is flushed at a gap and no successive pair spans it, but the trailing
    windows keep the beats on both sides (a gappy wrist recording still gets readings from the
    pairs it has); LF/HF uses only the beats since the last gap, because its spline would
    otherwise interpolate across it. In whole-recording mode windows restart at each gap (one
    reading per continuous segment, as Kubios).

    A clock set back: beats (or heart rates) after a gap that are earlier than those in the
    windows (a gap ending before the last of them, as the beat timer marks a step of the wall
    clock back) start the windows afresh, with nothing before them; see `_clock_went_back`.

    `calibration` = (start, end) unix seconds: a span the user declares as rest (a lab
    baseline, or the first minutes of a recording). Readings whose RMSSD window lies inside it
    (all its beats) are learned from as rest whatever the heart rate, and never called
    stressed. They are held back until the span is over (the first reading after it, or
    `finish`), then scored against the finished calibration: a reading of the calibration is
    compared with all of it, not with the part learned before it (issue 17: a seated rest
    declared as calibration scored 99.9 while it was being learned). A live stream with a
    calibration span gets those readings late, all at once.

    A stress score needs a full RMSSD window of the stream: the readings of its first
    `rmssd_window_s` (the first minute after a strap is put on, or of a file) have HRV metrics
    but no score (ours: the baseline is made of 60 s heart rates, a shorter window's swings more,
    and people settle in that minute: in GUDB seated rests heart rate fell from 84-87 to 73 bpm
    over the first minute in two of 13 people, benchmarks/gudb.py).

    Motion: `Motion` events (a foot pod, the phone) and accelerometer samples (`Acceleration`,
    classified per device by processing/motion.py) are kept for the RMSSD window; each reading
    says what they said over its window (`Reading.motion`), and the stress model treats a
    window known moving as activity (processing/stress.py). Without motion nothing changes.

    Quality (0-1) = (1 - 3 x the fraction of corrected beats in the long window) x
    min(1, valid pairs in the RMSSD window / (2 MIN_PAIRS)): a score needs quality >= 0.5.

    Heart rate without beats (`HeartRate` events, from a strap that sends no RR intervals): when
    a step is due and the short window holds too few beats for a reading, a reading is made from
    the heart rates of the short window (at least MIN_HR_SAMPLES): `hr_bpm` is their mean,
    activity comes from it (heart-rate reserve, processing/stress.py), every beat-based field is
    None, quality 0, no stress score, state `unknown`, and `hrv_unavailable` says why. Never in
    whole-recording mode (a recording has beats).
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
        # The beats the windows and LF/HF can still use. The long window is [its start, n),
        # the short one a suffix of it, LF/HF's [max(long start, _seg_i), n).
        self.log = BeatLog()
        self.n_gaps = 0
        self.n_dropped = 0
        self._seg_i = 0  # the first beat after the last gap
        self._stream_start: float | None = None  # where the first beat's interval began
        self._held: list[Reading] = []  # readings of the calibration span, until it ends
        self._last_t: float | None = None
        self._next_emit = -math.inf
        self._next_spectral = -math.inf
        self._lf_hf: float | _LfHfJob | None = None
        self._spline = SplineCache()
        self._energy: float | None = None
        self.motion = MotionTrack(person, keep_s=settings.rmssd_window_s)
        self._pending_whole = False
        self._whole = math.isinf(settings.step_s)
        self._heart_rates: deque[tuple[float, float]] = deque()  # (t, bpm) of the short window
        self._after_gap = False
        # Readings due but not computed yet: `feed` computes them before it returns,
        # `feed_many` at its end, all at once (and before the arrays are compacted).
        self._due: list[_Due] = []
        self._ready: list[Reading] = []
        # While `feed_many` runs: the LF/HF windows due, and the readings that wait for them.
        self._jobs: list[_LfHfJob] | None = None
        self._waiting: list[Reading] = []
        self.beats_out: list[Beat] = []
        self.motion_out: list[Motion] = []

    # -- input ---------------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Reading]:
        self.beats_out = []
        self.motion_out = []
        self._process(event)
        return self._take_readings()

    def feed_many(self, events: Iterable[Event]) -> list[Reading]:
        """`feed` each event in turn; the same readings, but their statistics and LF/HF are
        computed at the end for all of them at once (`BeatLog.stats`, `hrv.lf_hf_many`). For
        analysing a file in chunks of events; a live stream uses `feed`, whose readings cannot
        wait. `beats_out` holds the beats released by all the events.

        A second path kept for its factor: ~2.2x less CPU per reading than `feed` on a file
        (nsr001 24 h: ~0.30 vs ~0.65 ms; benchmarks/peers.py, rows "Pipeline (library)" and
        "Pipeline.feed, an event at a time"), which keeps `stresswatch analyze` and the library
        above the floor of 5x and 8x hrv-analysis per reading (with `feed` alone the library
        would be ~4x). Equal results: tests/processing/test_spline.py
        `test_feeding_a_chunk_of_events_gives_the_readings_of_feeding_them_one_by_one` (LF/HF to
        the spline's tolerance, the rest to round-off) and tests/processing/test_pipeline.py
        `test_feed_many_gives_the_same_readings_as_feed`."""
        self._jobs, self._waiting = [], []
        self.beats_out = []
        self.motion_out = []
        try:
            for event in events:
                self._process(event)
        finally:
            self._compute_due()
            self._settle_lf_hf()
        return self._take_readings()

    def finish(self) -> list[Reading]:
        """End of input: process what the corrector holds back; in whole mode emit the reading."""
        self.beats_out = []
        self.motion_out = []
        self._drain()
        self._compute_due()
        self._release_held()
        return self._take_readings()

    def window_stats(self) -> WindowStats | None:
        """The time-domain statistics of the windows ending at the last beat, at any moment
        (O(1): prefix sums), e.g. to follow them beat by beat between readings."""
        log = self.log
        if not log.n:
            return None
        t = float(log.t[log.n - 1])
        lo = self._window_start(self.settings.window_s, t)
        short_lo = self._window_start(self.settings.rmssd_window_s, t)
        return log.stats([lo], [short_lo], [log.n], RECENT_BEATS)[0]

    def window(self, duration_s: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Times (s), RR (ms) and pair flags of the beats in the trailing window of `duration_s`
        (default: the long window) now, as copies: for tests and analyses."""
        log = self.log
        if not log.n:
            return np.empty(0), np.empty(0), np.empty(0, dtype=bool)
        lo = self._window_start(
            self.settings.window_s if duration_s is None else duration_s, log.t[log.n - 1]
        )
        paired = log.paired[lo : log.n].copy()
        if len(paired):
            paired[0] = False  # its partner is outside
        return log.t[lo : log.n].copy(), log.rr[lo : log.n].copy(), paired

    # -- snapshot: what a worker keeps per person (stresswatch/worker.py) -------------------------

    def snapshot(self) -> dict:
        """Everything the next readings depend on, JSON-ready: the beats in the arrays (the RR
        window and what compaction kept with it, a few hundred beats), the corrector's held-back
        beats and thresholds, the stress model's baseline and activity, and the step clocks.
        `Pipeline.restored(snapshot)` fed the same events gives the same readings, to the bit:
        the arrays keep their capacity (so they compact at the same beats) and their first beat
        (the prefix sums add the same terms in the same order).

        The motion track (processing/motion.py `MotionTrack.snapshot`) goes with it: motion travels
        with the beats through Kafka. Between calls of `feed` only (nothing due), in live mode."""
        if self._whole or self._due or self._ready or self._held or self._jobs is not None:
            raise ValueError("a snapshot is taken between feeds of a live pipeline")
        log = self.log
        n = log.n
        return {
            "version": 1,
            "log": {
                "capacity": log.capacity,
                "t": log.t[:n].tolist(),
                "rr": log.rr[:n].tolist(),
                "artifact": log.artifact[:n].tolist(),
                "paired": log.paired[:n].tolist(),
            },
            "corrector": self.corrector.snapshot(),
            "baseline": self.model.baseline.to_dict(exact=True),
            "model": self.model.snapshot(),
            "n_gaps": self.n_gaps,
            "n_dropped": self.n_dropped,
            "seg_i": self._seg_i,
            "last_t": self._last_t,
            "next_emit": _finite(self._next_emit),
            "next_spectral": _finite(self._next_spectral),
            "lf_hf": self._lf_hf,
            "energy": self._energy,
            "after_gap": self._after_gap,
            "stream_start": self._stream_start,
            "heart_rates": [list(x) for x in self._heart_rates],
            # LF/HF's spline is solved incrementally (processing/spline.py): the next solve
            # reuses this one, so an equal result needs it (the largest part, ~2000 numbers).
            "spline": _spline_snapshot(self._spline),
            "motion": self.motion.snapshot(),
        }

    @classmethod
    def restored(cls, data: dict, person: str, settings: Settings, model: StressModel) -> Pipeline:
        """The pipeline `snapshot` described; `model` is the person's, with the snapshot's
        baseline (`Baseline.from_dict(data["baseline"], tz)`) given to it by the caller."""
        if data.get("version") != 1:
            raise ValueError(f"pipeline snapshot version {data.get('version')!r} is not 1")
        p = cls(person, settings, model)
        model.restore(data["model"])
        lg = data["log"]
        log = p.log = BeatLog(int(lg["capacity"]))
        for t, rr, artifact, paired in zip(lg["t"], lg["rr"], lg["artifact"], lg["paired"], strict=True):
            log.append(t, rr, artifact, paired)
        if log.n:
            log.paired[0] = lg["paired"][0]
        p.corrector = ArtifactCorrector.restored(data["corrector"])
        p.n_gaps, p.n_dropped, p._seg_i = int(data["n_gaps"]), int(data["n_dropped"]), int(data["seg_i"])
        p._last_t = data["last_t"]
        p._next_emit = -math.inf if data["next_emit"] is None else data["next_emit"]
        p._next_spectral = -math.inf if data["next_spectral"] is None else data["next_spectral"]
        p._lf_hf, p._energy, p._after_gap = data["lf_hf"], data["energy"], bool(data["after_gap"])
        p._stream_start = data["stream_start"]
        p._heart_rates = deque((float(t), float(bpm)) for t, bpm in data["heart_rates"])
        sp = data["spline"]
        p._spline = SplineCache(
            x=None if sp["x"] is None else np.asarray(sp["x"], dtype=float),
            coef=None if sp["coef"] is None else np.asarray(sp["coef"], dtype=float),
            rate=float(sp["rate"]),
            first=int(sp["first"]),
            samples=None if sp["samples"] is None else np.asarray(sp["samples"], dtype=float),
        )
        if data.get("motion") is not None:  # a snapshot from before motion travelled has none
            p.motion = MotionTrack.restored(data["motion"], person, p.motion.keep_s)
        return p

    # -- internals -----------------------------------------------------------------------------

    def _process(self, event: Event) -> None:
        if isinstance(event, (Motion, Acceleration)):
            self.motion_out += self.motion.feed(event)
            return
        if isinstance(event, HeartRate):
            self._heart_rate(event)
            return
        if isinstance(event, Gap):
            self.motion.gap(event.device)
            self._gap()
            last = self._last_time()
            if last is not None and event.end < last:
                self._clock_went_back(event.start - last)
            return
        beat = event
        if self._last_t is not None:
            if beat.t <= self._last_t:
                self.n_dropped += 1  # duplicate or out of order: the earlier copy counts
                return
            if beat.t - self._last_t > beat.rr_ms / 1000.0 + GAP_TOLERANCE_S:
                self._gap()
        else:
            last = self._last_logged()
            if last is not None and beat.t <= last:  # after a gap that did not say the clock went back
                self._clock_went_back(beat.t - last)
        if beat.rr_ms > MAX_RR_MS or beat.rr_ms <= 0:
            self._gap()
            self._last_t = beat.t
            return
        self._last_t = beat.t
        if beat.energy_kj is not None:
            self._energy = beat.energy_kj
        if self.settings.correction:
            for b in self.corrector.push(beat):
                self._add(b)
        else:
            self._add(beat)

    def _heart_rate(self, e: HeartRate) -> None:
        """A strap's heart rate without beats: a reading from heart rates when one is due and
        the beats cannot make it (the class docstring)."""
        rates = self._heart_rates
        if self._whole or (rates and e.t <= rates[-1][0]):
            return
        if e.energy_kj is not None:
            self._energy = e.energy_kj
        rates.append((e.t, e.hr_bpm))
        window = self.settings.rmssd_window_s
        while rates[0][0] <= e.t - window:
            rates.popleft()
        if e.t < self._next_emit or len(rates) < MIN_HR_SAMPLES:
            return
        if self.log.n - self._window_start(window, e.t) >= MIN_BEATS:
            return  # the beats make this step's reading
        step = self.settings.step_s
        self._next_emit = (math.floor(e.t / step) + 1) * step if step > 0 else e.t
        self._compute_due()  # readings leave in time order
        hr = sum(bpm for _, bpm in rates) / len(rates)
        motion = self.motion.over(e.t - window, e.t)
        verdict = self.model.assess_heart_rate(
            e.t, hr, self._energy, e.hr_bpm, self._known_rest(e.t, None), motion
        )
        self._ready.append(
            Reading(
                person=self.person,
                time=e.t,
                window_s=self.settings.window_s,
                n_beats=0,
                mean_rr_ms=None,
                hr_bpm=hr,
                rmssd_ms=None,
                ln_rmssd=None,
                sdnn_ms=None,
                pnn50_pct=None,
                pnn20_pct=None,
                sd1_ms=None,
                sd2_ms=None,
                baevsky_si=None,
                stress_index=None,
                pns_index=None,
                sns_index=None,
                lf_hf=None,
                artifact_pct=None,
                activity=verdict.activity,
                stress_score=None,
                state=StressState.UNKNOWN,
                quality=0.0,
                motion=motion,
                hrv_unavailable=NO_RR,
            )
        )

    def _take_readings(self) -> list[Reading]:
        if self._jobs is None:
            self._compute_due()
        out, self._ready = self._ready, []
        return out

    def _drain(self) -> None:
        for b in self.corrector.flush():
            self._add(b)
        if self._pending_whole:
            self._reading_due(self.log.n, self._seg_i)
            self._pending_whole = False

    def _gap(self) -> None:
        self._drain()
        self._after_gap = True
        self.n_gaps += 1
        self._next_spectral = -math.inf
        self._lf_hf = None
        self._spline.clear()
        self._seg_i = self.log.n
        self._last_t = None

    def _last_logged(self) -> float | None:
        return float(self.log.t[self.log.n - 1]) if self.log.n else None

    def _last_time(self) -> float | None:
        """The time of the last beat or heart rate the windows hold."""
        times = [
            t
            for t in (self._last_logged(), self._heart_rates[-1][0] if self._heart_rates else None)
            if t is not None
        ]
        return max(times) if times else None

    def _clock_went_back(self, step: float) -> None:
        """Beats (or a strap's heart rates) after a gap are earlier than those the windows hold:
        the wall clock was set back (collector/beat_timing.py marks a step with a gap).
        Time-ordered windows cannot hold both, so a new segment starts with nothing before it:
        readings come again once the new beats fill the short window (MIN_BEATS), or the new
        heart rates (MIN_HR_SAMPLES), scored once they fill a full RMSSD window, and the stress
        model moves its own times by `step` (about how far the clock went; negative)."""
        self._compute_due()  # they index the arrays about to be left
        self.log.compact(self.log.n)
        self._heart_rates.clear()
        self._seg_i = 0
        self._next_emit = -math.inf
        self._next_spectral = -math.inf
        self._stream_start = None  # the new segment's first minute is a stream's first minute
        self.model.clock_stepped(step)

    def _add(self, beat: Beat) -> None:
        self.beats_out.append(beat)
        log = self.log
        if self._stream_start is None:
            self._stream_start = beat.t - beat.rr_ms / 1000.0
        if log.n == log.capacity:
            self._compact()
        log.append(beat.t, beat.rr_ms, bool(beat.artifact), not self._after_gap)
        self._after_gap = False
        if self._whole:
            self._pending_whole = True
            return
        if beat.t < self._next_emit:
            return
        short_lo = self._window_start(self.settings.rmssd_window_s, beat.t)
        if log.n - short_lo < MIN_BEATS:
            return
        step = self.settings.step_s
        self._next_emit = (math.floor(beat.t / step) + 1) * step if step > 0 else beat.t
        self._reading_due(log.n, short_lo)

    def _window_start(self, duration_s: float, t: float) -> int:
        """The first beat of the window of `duration_s` ending at time t: those later than
        t - duration_s, or all since the last gap when the duration is infinite."""
        return self._seg_i if math.isinf(duration_s) else self.log.start_after(t - duration_s)

    def _reading_due(self, hi: int, short_lo: int) -> None:
        """A reading of the windows ending at beat hi - 1: LF/HF now (or as a job for feed_many),
        the rest later with the other readings due (`_compute_due`)."""
        log = self.log
        if hi < 1:
            return
        t = float(log.t[hi - 1])
        lo = self._window_start(self.settings.window_s, t)
        if hi - lo < 3:
            return
        if t >= self._next_spectral or math.isinf(self.settings.spectral_step_s):
            first = max(self._seg_i, lo)
            if self._jobs is None:
                self._lf_hf = hrv.lf_hf(log.t[first:hi], log.rr[first:hi], self._spline)
            else:
                self._lf_hf = _LfHfJob(log.t, log.rr, self.n_gaps, first, hi)
                self._jobs.append(self._lf_hf)
            sp = self.settings.spectral_step_s
            self._next_spectral = (math.floor(t / sp) + 1) * sp if 0 < sp < math.inf else t
        horizon = self.settings.rmssd_window_s
        motion = self.motion.over(float(log.t[short_lo]) if math.isinf(horizon) else t - horizon, t)
        full = math.isinf(horizon) or t - horizon >= self._stream_start - _TIME_EPS_S
        self._due.append(
            _Due(t, lo, short_lo, hi, self._energy, self._known_rest(t, short_lo), full, self._lf_hf, motion)
        )

    def _compute_due(self) -> None:
        """Readings for the windows due: their statistics together (`BeatLog.stats`), then the
        stress model in time order."""
        due, self._due = self._due, []
        if not due:
            return
        log = self.log
        stats = log.stats([d.lo for d in due], [d.short_lo for d in due], [d.hi for d in due], RECENT_BEATS)
        for d, w in zip(due, stats):
            n, mean_rr = w.n_beats, w.mean_rr
            hr = 60000.0 / w.short_mean_rr
            sd1, sd2 = w.sd1, w.sd2
            si = hrv.baevsky_si(log.rr[d.lo : d.hi])
            stress_index = math.sqrt(si) if si is not None else None
            pns = sns = None
            if w.rmssd is not None and sd1 is not None and sd2 is not None and stress_index is not None:
                pns = hrv.pns_index(mean_rr, w.rmssd, sd1)
                sns = hrv.sns_index(60000.0 / mean_rr, stress_index, sd2, mean_rr)
            artifact_frac = w.n_artifacts / n
            quality = max(0.0, 1.0 - 3.0 * artifact_frac) * min(1.0, w.short_pairs / (2.0 * MIN_PAIRS))
            ln_rmssd = hrv.ln(w.short_rmssd)
            verdict = self.model.assess(
                d.t, hr, ln_rmssd, quality, d.energy, w.recent_hr, d.known_rest, d.motion, d.full_window
            )
            reading = Reading(
                person=self.person,
                time=d.t,
                window_s=self.settings.window_s,
                n_beats=n,
                mean_rr_ms=w.short_mean_rr,
                hr_bpm=hr,
                rmssd_ms=w.short_rmssd,
                ln_rmssd=ln_rmssd,
                sdnn_ms=w.sdnn,
                pnn50_pct=w.pnn50,
                pnn20_pct=w.pnn20,
                sd1_ms=sd1,
                sd2_ms=sd2,
                baevsky_si=si,
                stress_index=stress_index,
                pns_index=pns,
                sns_index=sns,
                lf_hf=d.lf_hf,  # type: ignore[arg-type]  (a job until _settle_lf_hf)
                artifact_pct=100.0 * artifact_frac,
                activity=verdict.activity,
                stress_score=verdict.score,
                state=verdict.state,
                quality=quality,
                motion=d.motion,
            )
            if isinstance(d.lf_hf, _LfHfJob):
                self._waiting.append(reading)
            if d.known_rest:
                self._held.append(reading)
                continue
            self._release_held()
            self._ready.append(reading)

    def _release_held(self) -> None:
        """The calibration span is over: score its readings against the finished calibration
        and hand them on (readings leave the pipeline in time order)."""
        for r in self._held:
            if r.stress_score is not None:
                verdict = self.model.rescore_rest(r.time, r.hr_bpm, r.ln_rmssd, r.quality)
                # Readings are frozen for their users; these have not left the pipeline yet.
                object.__setattr__(r, "stress_score", verdict.score)
                object.__setattr__(r, "state", verdict.state)
        self._ready += self._held
        self._held = []

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

    def _compact(self) -> None:
        """Move the beats the windows can still use to new arrays (with room to grow); the
        readings due are computed first, since they index the old ones."""
        self._compute_due()
        log = self.log
        keep = self._window_start(self.settings.window_s, log.t[log.n - 1]) if log.n else 0
        log.compact(keep)
        self._seg_i = max(0, self._seg_i - keep)

    def _known_rest(self, t: float, short_lo: int | None) -> bool:
        """The RMSSD window ending at t (from beat short_lo; None: a window of heart rates without
        beats, `rmssd_window_s` long) lies in the calibration span: its first beat's interval (or
        the window) starts in it, and t is not after its end."""
        if self.calibration is None:
            return False
        start, end = self.calibration
        if short_lo is None:
            first = t - self.settings.rmssd_window_s
        else:
            first = float(self.log.t[short_lo] - self.log.rr[short_lo] / 1000.0)
        return first >= start - _TIME_EPS_S and t <= end


def _spline_snapshot(c: SplineCache) -> dict:
    def listed(a):
        return None if a is None else a.tolist()

    return {
        "x": listed(c.x),
        "coef": listed(c.coef),
        "rate": c.rate,
        "first": c.first,
        "samples": listed(c.samples),
    }


def _finite(x: float) -> float | None:
    """-inf (not yet) as None: JSON has no infinity."""
    return x if math.isfinite(x) else None


@dataclass(slots=True)
class _Due:
    """A reading due: its time, window bounds in the beat arrays, and what was known then."""

    t: float
    lo: int
    short_lo: int
    hi: int
    energy: float | None
    known_rest: bool
    full_window: bool
    lf_hf: float | _LfHfJob | None
    motion: MotionState


@dataclass(eq=False, slots=True)
class _LfHfJob:
    """An LF/HF window `feed_many` computes later: beats first..n-1 of the arrays t, rr (never
    overwritten, see `BeatLog`) of the segment after gap number `segment`."""

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


# Times within this are the same instant (float round-off of t - rr / 1000).
_TIME_EPS_S = 1e-6

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
