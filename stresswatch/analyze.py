"""`stresswatch analyze` and `stresswatch motion`: a recorded file through the same streaming code
as the service, as fast as possible; one line (or one JSON object) per reading or motion window."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alerts.timeofday import zone
from collector.events import Beat
from collector.files import RecordingError, RecordingStream
from processing.baseline import Baseline
from processing.pipeline import CHUNK_EVENTS, Pipeline, Settings
from processing.reading import Reading
from stresswatch import config as configuration
from stresswatch import report
from stresswatch.command import EXIT_OK, CommandError


def analyze(args) -> int:
    """Streams: one line of the file, and the pipeline's trailing windows, in memory at a time."""
    cfg = configuration.load(args.config)
    base = cfg.processing.settings()
    if args.whole:
        settings = Settings.whole(correction=not args.no_correction)
    else:
        window = args.window or base.window_s
        step = base.step_s if args.step is None else args.step
        if step > window:
            raise CommandError(
                f"--step {step:g} is longer than the window ({window:g} s): beats between "
                "windows would never be analysed"
            )
        settings = Settings(
            window, min(base.rmssd_window_s, window), step, max(step, 10.0), not args.no_correction
        )
    # The recording's local time (day/night baseline) in the configured zone, else the machine's.
    pipe = Pipeline(
        args.person,
        settings,
        cfg.person(args.person).model(zone(cfg.service.zone_name()), rr_gate=cfg.processing.rr_gate),
    )
    span = _calibration(args, pipe)
    out = sys.stdout
    with RecordingStream(args.file, args.format, person=args.person) as stream:
        progress = _Progress() if sys.stderr.isatty() and stream.size > 1 << 20 else None
        if not args.json:
            print(f"# {args.file}: format {stream.format}", file=out)
        t0 = None
        try:
            # Chunks of events, so that LF/HF is computed for many windows at once (Pipeline.feed_many);
            # on a bad line, the chunk read before it is analysed and written before the error.
            chunk: list = []
            try:
                for ev in stream:
                    chunk.append(ev)
                    if len(chunk) == CHUNK_EVENTS:
                        t0 = _analyze_chunk(pipe, chunk, t0, span, args.json, out)
                        chunk = []
                        if progress:
                            progress.update(stream.progress())
            finally:
                t0 = _analyze_chunk(pipe, chunk, t0, span, args.json, out)
            for r in pipe.finish():
                _emit(r, args.json, t0, out)
        finally:
            if progress:
                progress.done()
    if not args.json:
        print(
            f"# {stream.n_beats} beats; corrected beats: {pipe.corrector.counts}; gaps: {pipe.n_gaps}",
            file=out,
        )
    if args.save_baseline:
        Path(args.save_baseline).write_text(json.dumps(pipe.model.baseline.to_dict()) + "\n")
    return EXIT_OK


def _analyze_chunk(pipe: Pipeline, chunk: list, t0: float | None, span, as_json: bool, out) -> float | None:
    """Feed a chunk of events and write its readings; the recording's start time t0 (set by its
    first beat, which also places a --calibrate span)."""
    if t0 is None and (first := next((ev for ev in chunk if isinstance(ev, Beat)), None)):
        t0 = first.t - first.rr_ms / 1000.0
        if span:  # minutes from the start of the recording
            pipe.calibration = (t0 + 60.0 * span[0], t0 + 60.0 * span[1])
    for r in pipe.feed_many(chunk):
        _emit(r, as_json, t0, out)
    return t0


def _calibration(args, pipe: Pipeline) -> tuple[float, float] | None:
    """--baseline loads a saved baseline into `pipe`; --calibrate N or A-B is returned as a span of
    minutes from the recording's start (known rest), which is set once the first beat is read."""
    if args.baseline:
        try:
            pipe.model.baseline = Baseline.from_dict(
                json.loads(Path(args.baseline).read_text()), pipe.model.tz
            )
        except (OSError, ValueError) as exc:
            raise RecordingError(args.baseline, None, f"cannot use as a baseline: {exc}") from None
    if not args.calibrate:
        return None
    try:
        a, _, b = args.calibrate.partition("-")
        lo, hi = (0.0, float(a)) if not b else (float(a), float(b))
    except ValueError:
        lo = hi = -1.0
    if not 0 <= lo < hi:
        raise RecordingError(
            args.file, None, f"--calibrate {args.calibrate!r}: expected minutes N or A-B with A < B"
        )
    return lo, hi


def _json_encoder():
    """json.dumps' output for a reading's dict, from one C encoder made once: json.dumps makes
    a new one per call, which cost about as much as encoding a reading."""
    from json import encoder

    if encoder.c_make_encoder is None:  # a Python without the _json accelerator
        return lambda d: json.dumps(d)
    enc = encoder.c_make_encoder(
        None,
        encoder.JSONEncoder().default,
        encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )
    return lambda d: "".join(enc(d, 0))


_json_dumps = _json_encoder()


def _emit(r: Reading, as_json: bool, t0: float, out) -> None:
    if as_json:
        out.write(_json_dumps(r.to_dict()) + "\n")
    else:
        out.write(report.live_line(r, t0) + "\n")


class _Progress:
    """A progress bar on stderr for long files (only when stderr is a terminal), by bytes read."""

    def __init__(self):
        self.last = -1

    def update(self, fraction: float) -> None:
        pct = int(100 * fraction)
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r[{bar:<25s}] {pct:3d}%")
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r" + " " * 40 + "\r")


def motion(args) -> int:
    """What an accelerometer export says, window by window (processing/motion.py), and the shares."""
    from collections import Counter

    from collector.files import read_polar_acc
    from processing.motion import AccelerometerClassifier, says

    classifier = AccelerometerClassifier("me", "file", source="file")
    seconds: Counter = Counter()
    moving = total = 0.0
    t0 = None
    for acc in read_polar_acc(args.file):
        for m in classifier.feed(acc):
            verdict = says(m)
            seconds[m.kind.value] += m.span_s
            total += m.span_s
            moving += m.span_s if verdict == "moving" else 0.0
            if args.json:
                print(
                    _json_dumps(
                        {
                            "time": round(m.t, 3),
                            "kind": m.kind.value,
                            "says": verdict.value,
                            "span_s": round(m.span_s, 3),
                            "intensity_mg": round(m.intensity_mg, 2),
                            "cadence_spm": None if m.cadence_spm is None else round(m.cadence_spm, 1),
                        }
                    )
                )
                continue
            t0 = m.t - m.span_s if t0 is None else t0
            el = int(m.t - t0)
            cadence = "-" if m.cadence_spm is None else f"{m.cadence_spm:.0f}/min"
            print(
                f"{el // 3600:02d}:{el % 3600 // 60:02d}:{el % 60:02d}  {m.kind.value:<8s} {verdict.value:<8s} "
                f"intensity {m.intensity_mg:7.1f} mg  cadence {cadence}"
            )
    if not args.json:
        if not total:
            print("no 10 s window of contiguous samples in the file")
            return EXIT_OK
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in seconds.most_common())
        print(f"\n{total:.0f} s: {shares}; moving {moving / total:.0%}")
    return EXIT_OK
