"""`stresswatch run`: the service as a person or systemd starts it: logging for the journal, the
configuration, the state directory's lock, Bluetooth checked before anything connects, and a
clean stop on SIGINT or SIGTERM (stresswatch/service.py is the loop itself)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from processing.reading import Reading
from sinks.store import StateLock
from stresswatch import config as configuration
from stresswatch import report
from stresswatch.command import EXIT_BAD_INPUT, EXIT_OK


def run(args) -> int:
    """Exit 0 after a clean stop; 2 when the configuration, the state directory or Bluetooth
    refuse (one line on stderr)."""
    # One line per connection change, prompt, day and error; journald adds its own timestamps.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=logging.INFO, format=stamp + "%(levelname)s %(name)s: %(message)s")
    warnings: list[str] = []
    cfg = configuration.load(args.config, warnings=warnings)
    for warning in warnings:
        logging.getLogger("stresswatch.config").warning(warning)
    if not cfg.devices:
        raise configuration.ConfigError(
            args.config or "<defaults>",
            ["devices: no [[devices]] configured; `stresswatch scan` lists nearby straps"],
        )
    # Before anything connects: a second copy must not take the first one's MQTT session.
    with StateLock(Path(cfg.state.directory).expanduser()):
        return _run_service(args, cfg)  # under the lock: `measure` asks the service that holds it


def shows_readings(args) -> bool:
    """A line per reading on stdout only with --readings, never with --quiet (the default, which
    deploy/stresswatch.service states: the journal gets events, not a line per reading)."""
    return args.readings and not args.quiet


def _run_service(args, cfg: configuration.Config) -> int:
    from collector.ble import bluetooth_problem
    from stresswatch import timesync
    from stresswatch.service import Service

    problem = asyncio.run(bluetooth_problem(cfg.bluetooth.adapter))
    if problem:
        print(f"stresswatch: error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # said once the service is sure to start: a refusal above stays the one line a person sees
    timesync.log_state(timesync.kernel_clock_state())
    t0 = time.time()
    logging.getLogger("stresswatch.service").info(
        "local time zone %s (%s): quiet hours, days and the day/night baseline follow it",
        cfg.service.zone_name(),
        "[service] timezone"
        if cfg.service.timezone
        else "the machine's; set [service] timezone to change it",
    )
    readings = shows_readings(args)

    def show(r: Reading) -> None:
        if readings:
            print(f"{r.person:<10s} " + report.live_line(r, t0), flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Service.with_straps(cfg, on_reading=show).run(stop)

    asyncio.run(main())
    return EXIT_OK
