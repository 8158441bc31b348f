"""The commands of more than one machine over Apache Kafka (README "More than one machine"):
`collect` (straps -> beats topic), `worker` (the per-person pipeline and alerts, Quix Streams) and
`deliver influx|mqtt`; each checks the configuration it needs, holds the state directory's lock
and stops cleanly on SIGINT or SIGTERM. The work itself is in collect.py, worker.py, deliver.py."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from pathlib import Path

from sinks.store import StateLock
from stresswatch import config as configuration
from stresswatch.command import EXIT_OK


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _kafka_config(args, command: str) -> configuration.Config:
    cfg = configuration.load(args.config)
    if cfg.kafka.bootstrap_servers is None:
        raise configuration.ConfigError(
            args.config or "<defaults>",
            [f"kafka.bootstrap_servers: required by `stresswatch {command}` (the Kafka cluster)"],
        )
    return cfg


def collect(args) -> int:
    from sinks.kafka import ensure_topics
    from stresswatch import collect
    from stresswatch.sources import ReplaySource, shifted, simulated_day, simulated_phone

    _log_to_stderr()
    cfg = _kafka_config(args, "collect")
    k = cfg.kafka
    if not cfg.devices and not args.simulate:
        raise configuration.ConfigError(
            args.config or "<defaults>",
            ["devices: no [[devices]] configured; `stresswatch scan` lists nearby straps"],
        )
    with StateLock(Path(cfg.state.directory).expanduser()):
        ensure_topics(k.client_config(), [k.beats_topic, k.devices_topic], k.partitions, k.replication)
        outbox = collect.outbox(cfg)
        if args.simulate:
            now = time.time()
            sources = []
            for n in range(1, args.simulate + 1):
                beats, _ = simulated_day(seed=n, artifacts=0.0, person=f"sim{n}")
                # with the phone's activity, as the demo has it: the walk is not taken for stress
                events = sorted([*beats, *simulated_phone(f"sim{n}")], key=lambda e: e.t)
                sources.append(ReplaySource(shifted(events, now - beats[0].t), pace=1.0))
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
    return EXIT_OK


def worker(args) -> int:
    from stresswatch import worker

    _log_to_stderr()
    cfg = _kafka_config(args, "worker")
    state = Path(cfg.state.directory).expanduser()
    with StateLock(state):
        worker.run(cfg, state / "quix")
    return EXIT_OK


def deliver(args) -> int:
    from stresswatch.deliver import Delivery

    _log_to_stderr()
    cfg = _kafka_config(args, "deliver")
    if (cfg.influx.url if args.target == "influx" else cfg.mqtt.url) is None:
        raise configuration.ConfigError(
            args.config or "<defaults>",
            [f"{args.target}.url: required by `stresswatch deliver {args.target}`"],
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with StateLock(Path(cfg.state.directory).expanduser()):
        Delivery(cfg, args.target).run(stop)
    return EXIT_OK
