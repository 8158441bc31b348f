"""`stresswatch collect`: a site's Pi with straps and no HRV processing: each person's beats and motion to Kafka.

The same sources as the home service (stresswatch/sources.py: Bluetooth straps, or a replay) hand
their events to `Collector.events` (beats, gaps, motion; a strap's accelerometer samples are
classified here into motion); every `[kafka] batch_s` seconds each person's events become one
message on the `beats` topic (key = the person, so one worker owns all of a person's beats, in
order), queued first in the state store's outbox (sinks/kafka.py) so a site without uplink keeps
them and delivers them later. The straps' status goes to the `devices` topic the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from collector.ble import DeviceSpec
from collector.events import Acceleration, Beat, Event, Gap, HeartRate, Motion
from processing.motion import AccelerometerClassifier
from sinks.kafka import KafkaOutbox, encode_events
from sinks.store import StateStore
from stresswatch.config import Config
from stresswatch.sources import Source, StrapSource

log = logging.getLogger("stresswatch.collect")


class Collector:
    """Events in, one message per person and `batch_s` out, through the outbox."""

    def __init__(
        self, cfg: Config, sources: list[Source], outbox: KafkaOutbox, clock: Callable[[], float] = time.time
    ):
        self.cfg = cfg
        self.sources = sources
        self.outbox = outbox
        self.clock = clock
        self.topics = cfg.kafka.topics()
        self.batch_s = cfg.kafka.batch_s
        self._pending: dict[str, list[Event]] = {}
        self._classifiers: dict[tuple[str, str], AccelerometerClassifier] = {}

    @classmethod
    def with_straps(cls, cfg: Config, outbox: KafkaOutbox) -> Collector:
        collector = cls(cfg, [], outbox)
        bt = cfg.bluetooth
        specs = [DeviceSpec(d.person, d.address, d.name, d.role == "motion") for d in cfg.devices]
        collector.sources.append(
            StrapSource.from_specs(
                specs,
                collector.device_status,
                watchdog_s=bt.watchdog_s,
                battery_every_s=bt.battery_every_s,
                adapter=bt.adapter,
                clock=collector.clock,
            )
        )
        return collector

    def events(self, events: list[Event]) -> None:
        """Beats, gaps, heart rates without RR intervals and motion are kept for the person's next
        message, in the order they came. A strap's accelerometer samples are classified here, per
        device, by the pipeline's own classifier (processing/motion.py; reset by a gap of the
        device, as the pipeline does): the worker gets the `Motion` of each 10 s window where the
        home pipeline would have made it, a few numbers instead of 25-200 samples a second."""
        for e in events:
            if isinstance(e, Acceleration):
                found = self._classifier(e.person, e.device).feed(e)
                if found:
                    self._pending.setdefault(e.person, []).extend(found)
                continue
            if isinstance(e, Gap) and (e.person, e.device) in self._classifiers:
                self._classifiers[(e.person, e.device)].gap()
            if isinstance(e, Beat | Gap | HeartRate | Motion):
                self._pending.setdefault(e.person, []).append(e)

    def _classifier(self, person: str, device: str) -> AccelerometerClassifier:
        c = self._classifiers.get((person, device))
        if c is None:
            c = self._classifiers[(person, device)] = AccelerometerClassifier(person, device)
        return c

    def cut(self) -> int:
        """Each person's events so far as one message in the outbox; the number of messages."""
        pending, self._pending = self._pending, {}
        for person, events in pending.items():
            first = events[0]
            t0 = first.start if isinstance(first, Gap) else first.t
            # The row key makes a re-queued message (the same first event) one row.
            self.outbox.add(
                self.topics["beats"],
                person,
                encode_events(person, events),
                row_key=f"beats/{person}/{first.device}/{t0!r}",
            )
        return len(pending)

    def device_status(self, spec: DeviceSpec, status: dict) -> None:
        now = self.clock()
        self.outbox.add(
            self.topics["devices"],
            spec.person,
            {"person": spec.person, "device": spec.label, "t": now, "status": status},
            row_key=f"devices/{spec.person}/{spec.label}/{now!r}",
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` or every (finite) source has ended; then the last messages are cut and sent."""
        tasks = [asyncio.create_task(s.run(self.events, stop)) for s in self.sources]
        sources_done = asyncio.gather(*tasks, return_exceptions=True)
        try:
            while not stop.is_set() and not sources_done.done():
                # sources end by themselves at a stop, so waiting on them sees a stop too
                await asyncio.wait([sources_done], timeout=self.batch_s)
                self.cut()
                await asyncio.to_thread(self.outbox.flush, self.batch_s)
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            results = await sources_done
            self.cut()
            sent = await asyncio.to_thread(self.outbox.close)
            waiting = self.outbox.pending()
            log.info("stopped: %d message(s) sent at the end, %d waiting in the outbox", sent, waiting)
        for result in results:
            if isinstance(result, Exception):
                raise result


def outbox(cfg: Config) -> KafkaOutbox:
    """The Kafka outbox in the configured state directory."""
    store = StateStore(cfg.sink_settings().state_path)
    return KafkaOutbox(store, cfg.kafka.client_config())
