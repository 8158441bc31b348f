"""The `stresswatch` command line: demo, analyze, simulate and config check."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Before numpy is first imported: OpenBLAS starts a thread per core at import, which cost ~0.1 s
# of CPU here (2 cores) for nothing: every array the product handles is small (the largest
# matrix product is LF/HF's ~650 x 2) and runs on one thread anyway. A value set by the user wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from alerts.timeofday import zone
from collector.events import Beat
from collector.files import FORMATS, RecordingError, RecordingStream
from processing.baseline import Baseline
from processing.pipeline import CHUNK_EVENTS, Pipeline, Settings
from processing.reading import Reading
from sinks.redact import redact_url
from sinks.store import StateLock, StoreError
from stresswatch import config as configuration
from stresswatch import report
from stresswatch.number import finite_number

EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except (RecordingError, StoreError, CommandError) as exc:
        print(f"stresswatch: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except configuration.ConfigError as exc:
        _print_config_problems(exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


class CommandError(ValueError):
    """A command cannot do what was asked (options that clash, an unwritable output); one line says why."""


def _number(text: str) -> float:
    try:
        return finite_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_seconds(text: str) -> float:
    x = _number(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return x


def _replay_seconds(text: str) -> float:
    x = _number(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no pauses) or more seconds, got {text!r}")
    return x


# Our bound. inject() spaces artifacts >= 12 beats apart, so more than 1/12 per beat in total is
# capped anyway; a larger rate would only look like it did something.
MAX_ARTIFACT_RATE = 0.2


def _artifact_rate(text: str) -> float:
    x = _number(text)
    if not 0 <= x <= MAX_ARTIFACT_RATE:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_ARTIFACT_RATE:g} per beat, got {text!r}")
    return x


def _writable_file(text: str) -> str:
    """A path a file can be written to, checked before a long run rather than after it."""
    if not text:
        return text
    path = Path(text).expanduser()
    folder = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file name")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"directory {str(folder)!r} is not writable")
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stresswatch", description=__doc__)
    p.add_argument("--config", help="TOML configuration file (default: built-in defaults)")
    sub = p.add_subparsers(metavar="COMMAND")

    d = sub.add_parser("demo", help="a simulated day (or a recording) through the whole pipeline")
    d.add_argument("--recording", help="replay this RR file instead of the simulated wearer")
    d.add_argument("--format", choices=FORMATS, default="auto")
    d.add_argument("--seconds", type=_replay_seconds, default=25.0,
                   help="wall time to spread the replay over (0 = no pauses)")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--artifacts", type=_artifact_rate, default=0.005,
                   help=f"injected artifacts of each kind per beat (0-{MAX_ARTIFACT_RATE:g})")
    d.add_argument("--plot", type=_writable_file, default="stresswatch-demo.png", help="PNG path ('' for none)")
    d.add_argument("--mqtt", metavar="URL", help="also publish to this MQTT broker (mqtt://host:1883)")
    d.add_argument("--influx", metavar="URL", help="also write to this InfluxDB (http://host:8086)")
    d.set_defaults(func=cmd_demo)

    sd = sub.add_parser("seed-demo", help="write a simulated month into InfluxDB (every Grafana panel filled)")
    sd.add_argument("--influx", metavar="URL", required=True, help="the InfluxDB to fill (http://host:8086)")
    sd.add_argument("--api", choices=("v1", "v2"), help="InfluxDB API (default: [influx] api, v2)")
    sd.add_argument("--bucket", help="bucket, or the database with --api v1 (default: [influx] bucket)")
    sd.add_argument("--org", help="organisation (v2; default: [influx] org)")
    sd.add_argument("--person", help="whose month (default: the first configured person, else 'me')")
    sd.add_argument("--days", type=int, default=30, help="days to simulate, ending now (at least 23)")
    sd.add_argument("--seed", type=int, default=1)
    sd.set_defaults(func=cmd_seed_demo)

    a = sub.add_parser("analyze", help="HRV and stress readings of a recorded RR file")
    a.add_argument("file")
    a.add_argument("--format", choices=FORMATS, default="auto")
    a.add_argument("--window", type=_positive_seconds, help="window of SDNN/SD1/SD2/SI/LF/HF in s (default 300)")
    a.add_argument("--step", type=_positive_seconds, help="seconds between readings (default 10)")
    a.add_argument("--whole", action="store_true",
                   help="one reading over the whole recording (per segment; holds a segment's beats in memory)")
    a.add_argument("--no-correction", action="store_true", help="skip artifact correction")
    a.add_argument("--json", action="store_true", help="one JSON object per line with the Reading fields")
    a.add_argument("--person", default="me")
    a.add_argument("--calibrate", metavar="MIN[-MIN]",
                   help="a known rest to calibrate on: the first N minutes, or minutes A-B from the start")
    a.add_argument("--baseline", metavar="FILE", help="start from a baseline saved with --save-baseline")
    a.add_argument("--save-baseline", metavar="FILE", help="write the learned baseline (JSON) at the end")
    a.set_defaults(func=cmd_analyze)

    mo = sub.add_parser("motion", help="activity from an accelerometer export (Polar Sensor Logger ACC file)")
    mo.add_argument("file")
    mo.add_argument("--json", action="store_true",
                    help="one JSON object per 10 s window: time, kind, says, span_s, intensity_mg, cadence_spm")
    mo.set_defaults(func=cmd_motion)

    s = sub.add_parser("simulate", help="write a simulated day as a CSV recording")
    s.add_argument("out")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--artifacts", type=_artifact_rate, default=0.0,
                   help=f"injected artifacts of each kind per beat (0-{MAX_ARTIFACT_RATE:g})")
    s.set_defaults(func=cmd_simulate)

    sc = sub.add_parser("scan", help="list nearby heart-rate straps (Bluetooth)")
    sc.add_argument("--timeout", type=_positive_seconds, default=8.0, help="seconds to scan")
    sc.add_argument("--details", action="store_true",
                    help="connect briefly: model, firmware, battery, RR and energy support, motion sources")
    sc.add_argument("--adapter", help="Bluetooth adapter, e.g. hci1")
    sc.set_defaults(func=cmd_scan)

    r = sub.add_parser("run", help="the service: configured straps -> HRV and stress -> MQTT / InfluxDB")
    r.add_argument("--readings", action="store_true", help="also a line per reading on stdout")
    r.add_argument("--quiet", action="store_true", help="no line per reading (the default; kept for old units)")
    r.set_defaults(func=cmd_run)

    me = sub.add_parser("measure", help="take a morning reading now (1 min still, then 1 min measured)")
    me.add_argument("--person", help="whose reading (default: the one person with a strap)")
    me.add_argument("--timeout", type=_positive_seconds,
                    help="give up after this many seconds (default: the protocol's wait and length + 60 s)")
    me.set_defaults(func=cmd_measure)

    co = sub.add_parser("collect", help="more than one machine: the straps' beats to Kafka, no processing here")
    co.add_argument("--simulate", type=int, metavar="N", default=0,
                    help="instead of straps, N simulated wearers (sim1..simN) replayed at real time from now")
    co.set_defaults(func=cmd_collect)

    wo = sub.add_parser("worker", help="more than one machine: the per-person pipeline and alerts on Kafka (Quix Streams)")
    wo.set_defaults(func=cmd_worker)
    de = sub.add_parser("deliver", help="more than one machine: the workers' outputs to InfluxDB or to the phones (MQTT)")
    de.add_argument("target", choices=("influx", "mqtt"))
    de.set_defaults(func=cmd_deliver)

    dr = sub.add_parser("doctor", help="check Python, Bluetooth, the broker, InfluxDB and the state directory")
    dr.set_defaults(func=cmd_doctor)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(metavar="ACTION")
    ck = csub.add_parser("check", help="validate a configuration file and the environment overrides")
    ck.add_argument("path", nargs="?")
    ck.set_defaults(func=cmd_config_check)
    ex = csub.add_parser("example", help="print an example configuration")
    ex.set_defaults(func=lambda _a: print(configuration.EXAMPLE, end="") or 0)
    return p


# `scan --details`: what `sends_rr` means for the person choosing a strap.
SENDS_RR_SAYS = {
    True: "True",
    False: "False (heart rate only: no HRV or stress state from this strap)",
    None: "unknown (no heart rate came: is the strap worn, with moist electrodes?)",
}


def cmd_scan(args) -> int:
    import asyncio

    from collector.ble import BluetoothUnavailable, scan

    try:
        rows = asyncio.run(scan(args.timeout, args.details, args.adapter))
    except BluetoothUnavailable as exc:
        print(f"stresswatch: error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("no heart-rate wearables found (is the strap worn, and not connected to a phone?)")
        return 1
    for row in rows:
        extra = "".join(
            f"  {k} {row[k]}" for k in ("manufacturer", "model", "firmware", "battery_pct", "hr_bpm", "sends_energy",
                                        "motion") if k in row
        )
        if "sends_rr" in row:
            extra += "  sends_rr " + SENDS_RR_SAYS[row["sends_rr"]]
        if "error" in row:
            extra += f"  error {row['error']}"
        print(f"{row['address']}  {row['rssi']:>4} dBm  {row['name'] or '(no name)'}{extra}")
    print('\nadd one to the config as [[devices]] with address = "..." and the person who wears it')
    return 0


def cmd_run(args) -> int:
    import logging

    # One line per connection change, prompt, day and error; journald adds its own timestamps.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=logging.INFO, format=stamp + "%(levelname)s %(name)s: %(message)s")
    warnings: list[str] = []
    cfg = configuration.load(args.config, warnings=warnings)
    for warning in warnings:
        logging.getLogger("stresswatch.config").warning(warning)
    if not cfg.devices:
        raise configuration.ConfigError(
            args.config or "<defaults>", ["devices: no [[devices]] configured; `stresswatch scan` lists nearby straps"])
    # Before anything connects: a second copy must not take the first one's MQTT session.
    with StateLock(Path(cfg.state.directory).expanduser()):
        return _run_service(args, cfg)


def _run_service(args, cfg: configuration.Config) -> int:
    import asyncio
    import logging
    import signal

    from collector.ble import bluetooth_problem
    from stresswatch.service import Service

    problem = asyncio.run(bluetooth_problem(cfg.bluetooth.adapter))
    if problem:
        print(f"stresswatch: error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from stresswatch import timesync

    # said once the service is sure to start: a refusal above stays the one line a person sees
    timesync.log_state(timesync.kernel_clock_state())
    t0 = time.time()
    logging.getLogger("stresswatch.service").info(
        "local time zone %s (%s): quiet hours, days and the day/night baseline follow it", cfg.service.zone_name(),
        "[service] timezone" if cfg.service.timezone else "the machine's; set [service] timezone to change it")

    def show(r: Reading) -> None:
        if args.readings and not args.quiet:
            print(f"{r.person:<10s} " + report.live_line(r, t0), flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Service.with_straps(cfg, on_reading=show).run(stop)

    asyncio.run(main())  # under cmd_run's StateLock: `measure` asks the service that holds it
    return 0


def cmd_measure(args) -> int:
    """A morning reading for one person. The service owns the strap: when one runs on this state
    directory (its lock is held), the request goes to it over MQTT (`<base>/<person>/measure`) and
    its answers on `<base>/<person>/measurement` are printed; with none running, this command runs
    the service itself for that person's strap until the reading ends. Exit 0 for a valid reading,
    1 for a failed one (the reason is printed), 2 for bad input."""
    from stresswatch import measure

    cfg = configuration.load(args.config)
    protocol = cfg.morning.protocol()
    timeout = args.timeout or protocol.wait_s + protocol.duration_s + 60.0
    try:
        return measure.run(cfg, measure.person_of(cfg, args.person), timeout)
    except measure.MeasureError as exc:
        raise CommandError(str(exc)) from None


def cmd_collect(args) -> int:
    import asyncio
    import logging
    import signal

    from sinks.kafka import ensure_topics
    from stresswatch import collect
    from stresswatch.sources import ReplaySource, shifted, simulated_day

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _kafka_config(args, "collect")
    k = cfg.kafka
    if not cfg.devices and not args.simulate:
        raise configuration.ConfigError(args.config or "<defaults>", [
            "devices: no [[devices]] configured; `stresswatch scan` lists nearby straps"])
    with StateLock(Path(cfg.state.directory).expanduser()):
        ensure_topics(k.client_config(), [k.beats_topic, k.devices_topic], k.partitions, k.replication)
        outbox = collect.outbox(cfg)
        if args.simulate:
            now = time.time()
            sources = []
            for n in range(1, args.simulate + 1):
                beats, _ = simulated_day(seed=n, artifacts=0.0, person=f"sim{n}")
                sources.append(ReplaySource(shifted(beats, now - beats[0].t), pace=1.0))
            collector = collect.Collector(cfg, sources, outbox)
        else:
            collector = collect.Collector.with_straps(cfg, outbox)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await collector.run(stop)

        asyncio.run(main())
    return 0


def _kafka_config(args, command: str) -> configuration.Config:
    cfg = configuration.load(args.config)
    if cfg.kafka.bootstrap_servers is None:
        raise configuration.ConfigError(args.config or "<defaults>", [
            f"kafka.bootstrap_servers: required by `stresswatch {command}` (the Kafka cluster)"])
    return cfg


def cmd_worker(args) -> int:
    import logging

    from stresswatch import worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _kafka_config(args, "worker")
    state = Path(cfg.state.directory).expanduser()
    with StateLock(state):
        worker.run(cfg, state / "quix")
    return 0


def cmd_deliver(args) -> int:
    import logging
    import signal
    import threading

    from stresswatch.deliver import Delivery

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _kafka_config(args, "deliver")
    if (cfg.influx.url if args.target == "influx" else cfg.mqtt.url) is None:
        raise configuration.ConfigError(args.config or "<defaults>", [
            f"{args.target}.url: required by `stresswatch deliver {args.target}`"])
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with StateLock(Path(cfg.state.directory).expanduser()):
        Delivery(cfg, args.target).run(stop)
    return 0


def cmd_doctor(args) -> int:
    """Exit 1 when something blocks the service (a PROBLEM), 0 otherwise (warnings included)."""
    from stresswatch.doctor import Level, check_all

    findings = check_all(configuration.load(args.config))
    for f in findings:
        print(f.line())
    problems = sum(f.level == Level.PROBLEM for f in findings)
    print(f"\n{problems} problem(s) block the service" if problems else "\nnothing blocks the service")
    return 1 if problems else 0


def _print_config_problems(exc: configuration.ConfigError) -> None:
    if len(exc.problems) == 1:
        print(f"stresswatch: config error: {exc.source}: {exc.problems[0]}", file=sys.stderr)
        return
    print(f"stresswatch: {len(exc.problems)} config problems in {exc.source}:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def cmd_config_check(args) -> int:
    """0 when the configuration is valid (warnings included), 2 with its problems."""
    path = args.path or args.config
    warnings: list[str] = []
    try:
        configuration.load(path, warnings=warnings)
    finally:  # also next to the problems: a misspelt variable may be why a value is not what was meant
        for warning in warnings:
            print(f"stresswatch: config warning: {warning}", file=sys.stderr)
    print(f"{path or '<defaults>'}: ok" + (f" ({len(warnings)} warning{'s' * (len(warnings) > 1)})" if warnings else ""))
    return 0


def _url_overrides(args) -> dict[str, str]:
    """--mqtt / --influx as environment-style overrides of the config (they win over the file)."""
    env = dict(os.environ)
    if getattr(args, "mqtt", None):
        env["STRESSWATCH_MQTT__URL"] = args.mqtt
    if getattr(args, "influx", None):
        env["STRESSWATCH_INFLUX__URL"] = args.influx
    return env


# -- analyze -------------------------------------------------------------------------------------


def cmd_motion(args) -> int:
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
                print(_json_dumps({"time": round(m.t, 3), "kind": m.kind.value, "says": verdict.value,
                                   "span_s": round(m.span_s, 3), "intensity_mg": round(m.intensity_mg, 2),
                                   "cadence_spm": None if m.cadence_spm is None else round(m.cadence_spm, 1)}))
                continue
            t0 = m.t - m.span_s if t0 is None else t0
            el = int(m.t - t0)
            cadence = "-" if m.cadence_spm is None else f"{m.cadence_spm:.0f}/min"
            print(f"{el // 3600:02d}:{el % 3600 // 60:02d}:{el % 60:02d}  {m.kind.value:<8s} {verdict.value:<8s} "
                  f"intensity {m.intensity_mg:7.1f} mg  cadence {cadence}")
    if not args.json:
        if not total:
            print("no 10 s window of contiguous samples in the file")
            return 0
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in seconds.most_common())
        print(f"\n{total:.0f} s: {shares}; moving {moving / total:.0%}")
    return 0


def cmd_analyze(args) -> int:
    """Streams: one line of the file, and the pipeline's trailing windows, in memory at a time."""
    cfg = configuration.load(args.config)
    base = cfg.processing.settings()
    if args.whole:
        settings = Settings.whole(correction=not args.no_correction)
    else:
        window = args.window or base.window_s
        step = base.step_s if args.step is None else args.step
        if step > window:
            raise CommandError(f"--step {step:g} is longer than the window ({window:g} s): beats between "
                             "windows would never be analysed")
        settings = Settings(window, min(base.rmssd_window_s, window), step, max(step, 10.0), not args.no_correction)
    # The recording's local time (day/night baseline) in the configured zone, else the machine's.
    pipe = Pipeline(args.person, settings, cfg.person(args.person).model(zone(cfg.service.zone_name()),
                                                                      rr_gate=cfg.processing.rr_gate))
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
        print(f"# {stream.n_beats} beats; corrected beats: {pipe.corrector.counts}; gaps: {pipe.n_gaps}", file=out)
    if args.save_baseline:
        Path(args.save_baseline).write_text(json.dumps(pipe.model.baseline.to_dict()) + "\n")
    return 0


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
            pipe.model.baseline = Baseline.from_dict(json.loads(Path(args.baseline).read_text()), pipe.model.tz)
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
        raise RecordingError(args.file, None, f"--calibrate {args.calibrate!r}: expected minutes N or A-B with A < B")
    return lo, hi


def _json_encoder():
    """json.dumps' output for a reading's dict, from one C encoder made once: json.dumps makes
    a new one per call, which cost about as much as encoding a reading."""
    from json import encoder

    if encoder.c_make_encoder is None:  # a Python without the _json accelerator
        return lambda d: json.dumps(d)
    enc = encoder.c_make_encoder(None, encoder.JSONEncoder().default, encoder.encode_basestring_ascii, None,
                                 ": ", ", ", False, False, True)
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


# -- simulate / demo -------------------------------------------------------------------------------


def cmd_simulate(args) -> int:
    from stresswatch.sources import (
        simulated_day,  # here: it imports bleak and asyncio, which analyze does not need
    )

    beats, spans = simulated_day(args.seed, args.artifacts, "me")
    try:
        with open(args.out, "w") as fh:
            fh.write("# stresswatch simulated day: " + ", ".join(f"{s.name} {(s.end - s.start) / 60:g} min" for s in spans) + "\n")
            fh.write("time_s,rr_ms\n")
            fh.writelines(f"{b.t:.4f},{b.rr_ms:.4f}\n" for b in beats)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {len(beats)} beats to {args.out}")
    return 0


def cmd_demo(args) -> int:
    from stresswatch import demo

    return demo.run(args, configuration.load(args.config, _url_overrides(args)))


def cmd_seed_demo(args) -> int:
    """0 when every point was written, 1 when some wait in the outbox (the server refused or was away)."""
    from stresswatch import seed_demo

    env = _url_overrides(args)
    for key, value in (("API", args.api), ("BUCKET", args.bucket), ("ORG", args.org)):
        if value:
            env[f"STRESSWATCH_INFLUX__{key}"] = value
    cfg = configuration.load(args.config, env)
    person = args.person or (cfg.people[0].name if cfg.people else "me")
    try:
        result = seed_demo.seed(cfg, person, args.days, seed=args.seed)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(result.line(person, redact_url(cfg.influx.url)))
    return 0 if result.waiting == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
