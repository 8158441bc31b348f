"""Builds the configured sinks (MQTT, InfluxDB) and hands them beats and readings."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

from alerts.influx import InfluxSink, beat_line, device_line, reading_line
from alerts.mqtt import MqttSettings, MqttSink
from collector.events import Beat
from processing.reading import Reading
from stresswatch.config import Config, read_secret
from stresswatch.state import StateStore

log = logging.getLogger("stresswatch.sinks")


class Sinks:
    """The sinks the configuration enables; with none configured every call is a no-op."""

    def __init__(self, cfg: Config, store: StateStore | None = None, clock=time.monotonic, inline_flush: bool = True):
        """With `inline_flush`, InfluxDB batches are written from the producing calls (the demo);
        otherwise the owner calls `flush()` (the service, from a worker thread)."""
        self.cfg = cfg
        self.clock = clock
        self.inline_flush = inline_flush
        self.mqtt: MqttSink | None = None
        self.influx: InfluxSink | None = None
        self._next_flush = 0.0
        if cfg.mqtt.url is None and cfg.influx.url is None:
            self.store = store
            return
        self.store = store or StateStore(
            Path(cfg.state.directory).expanduser() / "state.db", max_rows=cfg.influx.outbox_max_points
        )
        if cfg.mqtt.url is not None:
            m, u = cfg.mqtt, urlsplit(cfg.mqtt.url)
            tls = u.scheme == "mqtts"
            settings = MqttSettings(
                host=u.hostname or "127.0.0.1",
                port=u.port or (8883 if tls else 1883),
                base_topic=m.base_topic,
                client_id=m.client_id,
                username=m.username or u.username or "",
                password=read_secret(m.password, m.password_file),
                tls=tls,
                ca_file=m.ca_file or "",
                certfile=m.certfile or "",
                keyfile=m.keyfile or "",
                verify_hostname=m.verify_hostname,
                keepalive_s=m.keepalive_s,
                session_expiry_s=m.session_expiry_s,
                discovery=m.discovery,
                discovery_prefix=m.discovery_prefix,
            )
            devices: dict[str, list[str]] = {}
            for d in cfg.devices:
                devices.setdefault(d.person, []).append(d.address or d.name or "strap")
            self.mqtt = MqttSink(self.store, settings, [p.name for p in cfg.people], devices)
            self.mqtt.start()
            log.info("MQTT sink: %s:%s, base topic %s", settings.host, settings.port, settings.base_topic)
        if cfg.influx.url is not None:
            i = cfg.influx
            self.influx = InfluxSink(
                self.store, i.url, bucket=i.bucket, org=i.org, token=read_secret(i.token, i.token_file),
                batch_size=i.batch_size, api=i.api, username=i.username or "", password=i.password or "",
            )
            log.info("InfluxDB sink: %s (%s API), bucket %s", i.url, i.api, i.bucket)

    def beat(self, beat: Beat) -> None:
        if self.influx and self.cfg.influx.write_beats:
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
            self._next_flush = now + self.cfg.influx.flush_interval_s
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
