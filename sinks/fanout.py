"""The enabled outputs behind one object: hands beats, readings, prompts and device status to
MQTT and InfluxDB (either may be off)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from collector.events import Beat
from processing.reading import Reading
from sinks.influx import InfluxSettings, InfluxSink, beat_line, device_line, reading_line
from sinks.mqtt import MqttSettings, MqttSink
from sinks.store import StateStore

log = logging.getLogger("stresswatch.sinks")


@dataclass(frozen=True)
class SinkSettings:
    """What the application decided from its configuration; `None` = that sink is off."""

    state_path: Path
    mqtt: MqttSettings | None = None
    influx: InfluxSettings | None = None
    people: tuple[str, ...] = ()
    devices: dict[str, list[str]] | None = None  # person -> device labels (battery entities)


class Sinks:
    """The sinks the settings enable; with none enabled every call is a no-op."""

    def __init__(self, settings: SinkSettings, store: StateStore | None = None, clock=time.monotonic,
                 inline_flush: bool = True):
        """With `inline_flush`, InfluxDB batches are written from the producing calls (the demo);
        otherwise the owner calls `flush()` (the service, from a worker thread)."""
        self.settings = settings
        self.clock = clock
        self.inline_flush = inline_flush
        self.mqtt: MqttSink | None = None
        self.influx: InfluxSink | None = None
        self._next_flush = 0.0
        if settings.mqtt is None and settings.influx is None:
            self.store = store
            return
        max_rows = settings.influx.outbox_max_points if settings.influx else 2_000_000
        self.store = store or StateStore(settings.state_path, max_rows=max_rows)
        if settings.mqtt is not None:
            m = settings.mqtt
            self.mqtt = MqttSink(self.store, m, list(settings.people), settings.devices or {})
            self.mqtt.start()
            log.info("MQTT sink: %s:%s, base topic %s", m.host, m.port, m.base_topic)
        if settings.influx is not None:
            self.influx = InfluxSink.from_settings(self.store, settings.influx)
            log.info("InfluxDB sink: %s (%s API), bucket %s", settings.influx.url, settings.influx.api,
                     settings.influx.bucket)

    def beat(self, beat: Beat) -> None:
        if self.influx and self.settings.influx.write_beats:
            self.influx.add([beat_line(beat)])
            self._maybe_flush()

    def reading(self, r: Reading) -> None:
        if self.influx:
            self.influx.add([reading_line(r)])
            self._maybe_flush()
        if self.mqtt:
            self.mqtt.publish_state(r)

    def device(self, person: str, device: str, status: dict, t: float) -> None:
        """Device status (battery, connection, model) to MQTT (retained) and InfluxDB `devices`."""
        if self.mqtt:
            self.mqtt.publish_device(person, device, status)
        if self.influx:
            self.influx.add([device_line(person, device, t, status.get("battery_pct"), bool(status.get("connected")))])

    def flush(self) -> int:
        return self.influx.flush() if self.influx else 0

    def _maybe_flush(self) -> None:
        if not self.inline_flush:
            return
        now = self.clock()
        if now >= self._next_flush:
            self._next_flush = now + self.settings.influx.flush_interval_s
            self.influx.flush()

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what can be delivered within `timeout_s`; the rest stays in the outbox."""
        deadline = time.monotonic() + timeout_s
        if self.influx:
            self.influx.flush(force=True)
            self.influx.close()
        if self.mqtt:
            while self.store.pending("mqtt") and self.mqtt.connected.is_set() and time.monotonic() < deadline:
                self.mqtt.pump()
                time.sleep(0.05)
            self.mqtt.stop()
