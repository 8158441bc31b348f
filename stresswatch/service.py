"""The service (`stresswatch run`): BLE straps -> per-person pipelines -> MQTT / InfluxDB sinks.

One asyncio event loop: a `StrapLink` task per configured device, their events fed inline to
the pure per-person `Pipeline`s (microseconds per beat), readings and device status handed to
the sinks; InfluxDB batches are written from a worker thread so a slow server never stalls
the Bluetooth callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from collector.ble import DeviceSpec, StrapLink
from collector.events import Beat, Event
from processing.pipeline import Pipeline
from processing.reading import Reading
from sinks.fanout import Sinks
from stresswatch.config import Config

log = logging.getLogger("stresswatch.service")


class Service:
    def __init__(self, cfg: Config, sinks: Sinks | None = None, on_reading: Callable[[Reading], None] | None = None,
                 clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.clock = clock
        self.sinks = sinks if sinks is not None else Sinks(cfg.sink_settings(), inline_flush=False)
        self.on_reading = on_reading
        self.pipelines = {p.name: Pipeline(p.name, cfg.processing.settings(), p.model()) for p in cfg.people}
        self.links: list[StrapLink] = []

    def events(self, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, Beat):
                self.sinks.beat(e)
            for r in self.pipelines[e.person].feed(e):
                self.sinks.reading(r)
                if self.on_reading:
                    self.on_reading(r)

    async def run(self, stop: asyncio.Event) -> None:
        if not self.cfg.devices:
            raise ValueError("no [[devices]] in the configuration; `stresswatch scan` lists nearby straps")
        bt = self.cfg.bluetooth
        for d in self.cfg.devices:
            spec = DeviceSpec(d.person, d.address, d.name)
            link = StrapLink(
                spec, emit=self.events,
                status=lambda st, spec=spec: self.sinks.device(spec.person, spec.label, st, self.clock()),
                watchdog_s=bt.watchdog_s, battery_every_s=bt.battery_every_s, adapter=bt.adapter, clock=self.clock,
            )
            self.links.append(link)
        tasks = [asyncio.create_task(link.run(stop)) for link in self.links]
        tasks.append(asyncio.create_task(self._flush_loop(stop)))
        log.info("collecting from %d device(s)", len(self.links))
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in self.pipelines.values():
            for r in p.finish():
                self.sinks.reading(r)
        await asyncio.to_thread(self.sinks.close)

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.cfg.influx.flush_interval_s)
            except TimeoutError:
                pass
            await asyncio.to_thread(self.sinks.flush)
