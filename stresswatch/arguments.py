"""The command line's contract: every `stresswatch` command and option, with its help; each command
is imported only when it runs (stresswatch/cli.py runs it)."""

from __future__ import annotations

import argparse

from collector.files import FORMATS
from stresswatch import config as configuration
from stresswatch.command import (
    EXIT_OK,
    MAX_ARTIFACT_RATE,
    artifact_rate,
    positive_seconds,
    replay_seconds,
    writable_file,
)


def _command(module: str, name: str):
    """`stresswatch.<module>.<name>(args)`, imported when the command runs: `analyze` does not
    load what the service needs (bleak, paho), nor `run` what the plot needs."""

    def call(args) -> int:
        import importlib

        return getattr(importlib.import_module(f"stresswatch.{module}"), name)(args)

    return call


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stresswatch", description=__doc__)
    p.add_argument("--config", help="TOML configuration file (default: built-in defaults)")
    sub = p.add_subparsers(metavar="COMMAND")

    d = sub.add_parser("demo", help="a simulated day (or a recording) through the whole pipeline")
    d.add_argument("--recording", help="replay this RR file instead of the simulated wearer")
    d.add_argument("--format", choices=FORMATS, default="auto")
    d.add_argument(
        "--seconds",
        type=replay_seconds,
        default=25.0,
        help="wall time to spread the replay over (0 = no pauses)",
    )
    d.add_argument("--seed", type=int, default=7)
    d.add_argument(
        "--artifacts",
        type=artifact_rate,
        default=0.005,
        help=f"injected artifacts of each kind per beat (0-{MAX_ARTIFACT_RATE:g})",
    )
    d.add_argument(
        "--plot", type=writable_file, default="stresswatch-demo.png", help="PNG path ('' for none)"
    )
    d.add_argument("--mqtt", metavar="URL", help="also publish to this MQTT broker (mqtt://host:1883)")
    d.add_argument("--influx", metavar="URL", help="also write to this InfluxDB (http://host:8086)")
    d.set_defaults(func=_command("demo", "command"))

    sd = sub.add_parser(
        "seed-demo", help="write a simulated month into InfluxDB (every Grafana panel filled)"
    )
    sd.add_argument("--influx", metavar="URL", required=True, help="the InfluxDB to fill (http://host:8086)")
    sd.add_argument("--api", choices=("v1", "v2"), help="InfluxDB API (default: [influx] api, v2)")
    sd.add_argument("--bucket", help="bucket, or the database with --api v1 (default: [influx] bucket)")
    sd.add_argument("--org", help="organisation (v2; default: [influx] org)")
    sd.add_argument("--person", help="whose month (default: the first configured person, else 'me')")
    sd.add_argument("--days", type=int, default=30, help="days to simulate, ending now (at least 23)")
    sd.add_argument("--seed", type=int, default=1)
    sd.set_defaults(func=_command("seed_demo", "command"))

    a = sub.add_parser("analyze", help="HRV and stress readings of a recorded RR file")
    a.add_argument("file")
    a.add_argument("--format", choices=FORMATS, default="auto")
    a.add_argument(
        "--window", type=positive_seconds, help="window of SDNN/SD1/SD2/SI/LF/HF in s (default 300)"
    )
    a.add_argument("--step", type=positive_seconds, help="seconds between readings (default 10)")
    a.add_argument(
        "--whole",
        action="store_true",
        help="one reading over the whole recording (per segment; holds a segment's beats in memory)",
    )
    a.add_argument("--no-correction", action="store_true", help="skip artifact correction")
    a.add_argument("--json", action="store_true", help="one JSON object per line with the Reading fields")
    a.add_argument("--person", default="me")
    a.add_argument(
        "--calibrate",
        metavar="MIN[-MIN]",
        help="a known rest to calibrate on: the first N minutes, or minutes A-B from the start",
    )
    a.add_argument("--baseline", metavar="FILE", help="start from a baseline saved with --save-baseline")
    a.add_argument("--save-baseline", metavar="FILE", help="write the learned baseline (JSON) at the end")
    a.set_defaults(func=_command("analyze", "analyze"))

    mo = sub.add_parser("motion", help="activity from an accelerometer export (Polar Sensor Logger ACC file)")
    mo.add_argument("file")
    mo.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per 10 s window: time, kind, says, span_s, intensity_mg, cadence_spm",
    )
    mo.set_defaults(func=_command("analyze", "motion"))

    s = sub.add_parser("simulate", help="write a simulated day as a CSV recording")
    s.add_argument("out")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument(
        "--artifacts",
        type=artifact_rate,
        default=0.0,
        help=f"injected artifacts of each kind per beat (0-{MAX_ARTIFACT_RATE:g})",
    )
    s.set_defaults(func=_command("sources", "write_simulated_day"))

    sc = sub.add_parser("scan", help="list nearby heart-rate straps (Bluetooth)")
    sc.add_argument("--timeout", type=positive_seconds, default=8.0, help="seconds to scan")
    sc.add_argument(
        "--details",
        action="store_true",
        help="connect briefly: model, firmware, battery, RR and energy support, motion sources",
    )
    sc.add_argument("--adapter", help="Bluetooth adapter, e.g. hci1")
    sc.set_defaults(func=_command("scan", "scan"))

    r = sub.add_parser("run", help="the service: configured straps -> HRV and stress -> MQTT / InfluxDB")
    r.add_argument("--readings", action="store_true", help="also a line per reading on stdout")
    r.add_argument(
        "--quiet",
        action="store_true",
        help="no line per reading, even with --readings (the default; our systemd unit states it)",
    )
    r.set_defaults(func=_command("run", "run"))

    me = sub.add_parser("measure", help="take a morning reading now (1 min still, then 1 min measured)")
    me.add_argument("--person", help="whose reading (default: the one person with a strap)")
    me.add_argument(
        "--timeout",
        type=positive_seconds,
        help="give up after this many seconds (default: the protocol's wait and length + 60 s)",
    )
    me.set_defaults(func=_command("measure", "command"))

    co = sub.add_parser(
        "collect", help="more than one machine: the straps' beats to Kafka, no processing here"
    )
    co.add_argument(
        "--simulate",
        type=int,
        metavar="N",
        default=0,
        help="instead of straps, N simulated wearers (sim1..simN) replayed at real time from now",
    )
    co.set_defaults(func=_command("cluster", "collect"))
    wo = sub.add_parser(
        "worker", help="more than one machine: the per-person pipeline and alerts on Kafka (Quix Streams)"
    )
    wo.set_defaults(func=_command("cluster", "worker"))
    de = sub.add_parser(
        "deliver", help="more than one machine: the workers' outputs to InfluxDB or to the phones (MQTT)"
    )
    de.add_argument("target", choices=("influx", "mqtt"))
    de.set_defaults(func=_command("cluster", "deliver"))

    dr = sub.add_parser(
        "doctor", help="check Python, Bluetooth, the broker, InfluxDB and the state directory"
    )
    dr.set_defaults(func=_command("doctor", "command"))

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(metavar="ACTION")
    ck = csub.add_parser("check", help="validate a configuration file and the environment overrides")
    ck.add_argument("path", nargs="?")
    ck.set_defaults(func=_command("cli", "cmd_config_check"))
    ex = csub.add_parser("example", help="print an example configuration")
    ex.set_defaults(func=lambda _a: print(configuration.EXAMPLE, end="") or EXIT_OK)
    return p
