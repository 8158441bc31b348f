"""The one run loop: sources -> per-person pipelines -> sinks (`stresswatch run` and `stresswatch demo`).

One asyncio event loop. Each `Source` (stresswatch/sources.py: Bluetooth straps, a paced replay,
the simulator) is a task that hands `Beat`/`Gap` events to `Service.events`, which feeds them
inline to the pure per-person `Pipeline` (microseconds per beat) and hands the corrected beats
and the readings to the sinks. InfluxDB batches are written from a worker thread so a slow
server never stalls the Bluetooth callbacks. The next stage, the alert engine, slots in
between the pipeline and the sinks here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from collector.ble import DeviceSpec
from collector.events import Event
from processing.pipeline import Pipeline
from processing.reading import Reading
from sinks.fanout import Sinks
from stresswatch.config import Config
from stresswatch.sources import Source, StrapSource

log = logging.getLogger("stresswatch.service")


class Service:
    """Owns the path events -> pipeline -> sinks for every configured person."""

    def __init__(self, cfg: Config, sources: list[Source], sinks: Sinks | None = None,
                 on_reading: Callable[[Reading], None] | None = None, clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.sources = sources
        self.clock = clock
        self.sinks = sinks if sinks is not None else Sinks(cfg.sink_settings(), inline_flush=False)
        self.on_reading = on_reading
        settings = cfg.processing.settings()
        self.pipelines = {p.name: Pipeline(p.name, settings, p.model()) for p in cfg.people}

    @classmethod
    def with_straps(cls, cfg: Config, **kw) -> Service:
        """The home service: every configured [[devices]] strap is a source."""
        service = cls(cfg, [], **kw)
        bt = cfg.bluetooth
        specs = [DeviceSpec(d.person, d.address, d.name) for d in cfg.devices]
        service.sources.append(StrapSource.from_specs(
            specs, service.device_status, watchdog_s=bt.watchdog_s, battery_every_s=bt.battery_every_s,
            adapter=bt.adapter, clock=service.clock,
        ))
        return service

    # -- the data path ---------------------------------------------------------------------------

    def events(self, events: list[Event]) -> None:
        """Feed events (any people, time order per person) through to the sinks."""
        for e in events:
            pipe = self.pipelines.get(e.person)
            if pipe is None:
                continue  # a source for a person who is not configured: config check prevents it
            readings = pipe.feed(e)
            for b in pipe.beats_out:  # stored once, after correction, with the correction applied
                self.sinks.beat(b)
            self._readings(readings)

    def finish(self) -> None:
        """End of input: what the artifact correction still holds back, and the last readings."""
        for pipe in self.pipelines.values():
            readings = pipe.finish()
            for b in pipe.beats_out:
                self.sinks.beat(b)
            self._readings(readings)

    def device_status(self, spec: DeviceSpec, status: dict) -> None:
        self.sinks.device(spec.person, spec.label, status, self.clock())

    def _readings(self, readings: list[Reading]) -> None:
        for r in readings:
            self.sinks.reading(r)
            if self.on_reading:
                self.on_reading(r)

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set or every source has ended; then finish and close the sinks."""
        source_tasks = [asyncio.create_task(s.run(self.events, stop)) for s in self.sources]
        flusher = asyncio.create_task(self._flush_loop(stop))
        watcher = asyncio.create_task(self._stop_when_sources_end(source_tasks, stop))
        try:
            await stop.wait()
        finally:
            stop.set()
            for t in (*source_tasks, flusher, watcher):
                t.cancel()
            results = await asyncio.gather(*source_tasks, flusher, watcher, return_exceptions=True)
            self.finish()
            await asyncio.to_thread(self.sinks.close)
        for source, result in zip(self.sources, results, strict=False):
            if isinstance(result, Exception):
                raise result  # a finite source failed: that is the run's outcome (e.g. a bad file)

    async def _stop_when_sources_end(self, tasks: list[asyncio.Task], stop: asyncio.Event) -> None:
        live = [t for t, s in zip(tasks, self.sources, strict=True) if not s.finite]
        finite = [t for t, s in zip(tasks, self.sources, strict=True) if s.finite]
        if finite:
            await asyncio.wait(finite)
            if not live:
                stop.set()
        for t in finite:
            if not t.cancelled() and t.exception() is not None:
                stop.set()

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        interval = self.sinks.settings.influx.flush_interval_s if self.sinks.settings.influx else 5.0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
            await asyncio.to_thread(self.sinks.flush)
