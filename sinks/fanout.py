"""The enabled outputs behind one object (`Sinks`): what the service produces (beats, readings
and the MQTT state, prompts with their answers and measured effects, baselines, day summaries,
morning readings and a running reading's progress, device status, saved states, the outbox
figures) goes to MQTT and InfluxDB, either of which may be off, through the state store's outbox.

A failing state store (a full disk, a read-only folder) is never raised into the service: what
could not be queued is counted by sink and logged at most once a minute (collector/log_limit.py),
and writes resume by themselves when the store accepts them again."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from alerts.prompt import Prompt
from collector.events import Beat
from collector.log_limit import LogLimit
from processing.reading import Reading
from sinks.influx import InfluxSettings, InfluxSink
from sinks.line_protocol import (
    baseline_line,
    beat_line,
    daily_line,
    device_line,
    morning_line,
    prompt_line,
    reading_line,
)
from sinks.mqtt import MqttSettings, MqttSink
from sinks.redact import redact_url
from sinks.store import StateStore, StoreError

log = logging.getLogger("stresswatch.sinks")


@dataclass
class Lost:
    """What could not be queued because the state store failed (full disk, read-only), by sink."""

    influx: int = 0  # points
    mqtt: int = 0  # messages

    def __bool__(self) -> bool:
        return bool(self.influx or self.mqtt)

    def __str__(self) -> str:
        return f"{self.influx} InfluxDB points, {self.mqtt} MQTT messages"


@dataclass(frozen=True)
class SinkSettings:
    """What the application decided from its configuration; `None` = that sink is off."""

    state_path: Path
    mqtt: MqttSettings | None = None
    influx: InfluxSettings | None = None
    people: tuple[str, ...] = ()
    devices: dict[str, list[str]] | None = None  # person -> device labels (battery entities)
    mqtt_outbox_max_messages: int = 100_000  # MQTT's own outbox bound ([mqtt] outbox_max_messages)

    def outbox_limits(self) -> dict[str, int]:
        """Each sink's outbox bound, for `StateStore(limits=...)`."""
        limits = {"mqtt": self.mqtt_outbox_max_messages}
        if self.influx is not None:
            limits["influx"] = self.influx.outbox_max_points
        return limits


class Sinks:
    """The sinks the settings enable; with none enabled every call is a no-op.

    A failing state store while running (a full disk, a folder made read-only) never stops the
    caller: what could not be queued is counted in `lost` ({"influx": points, "mqtt": messages};
    in the store as `<sink>.lost_store_error` once it is writable again), the problem is logged at
    most once a minute, and writes resume by themselves once the store accepts them again. Opening the store can raise `StoreError` (one line, for the CLI)."""

    def __init__(
        self,
        settings: SinkSettings,
        store: StateStore | None = None,
        clock=time.monotonic,
        inline_flush: bool = True,
    ):
        """With `inline_flush`, InfluxDB batches are written from the producing calls (the demo);
        otherwise the owner calls `flush()` (the service, from a worker thread)."""
        self.settings = settings
        self.clock = clock
        self.inline_flush = inline_flush
        self.mqtt: MqttSink | None = None
        self.influx: InfluxSink | None = None
        self.lost = Lost()
        self._episode: dict[str, int] = {"influx": 0, "mqtt": 0}  # lost since the store last failed
        self._store_failing = False
        self._store_log = LogLimit(clock=lambda: self.clock())  # the store's failures, once a minute
        self._owe_recovery_line = False
        self._next_flush = 0.0
        if settings.mqtt is None and settings.influx is None:
            self.store = store
            return
        self.store = store or StateStore(settings.state_path, limits=settings.outbox_limits())
        if settings.mqtt is not None:
            m = settings.mqtt
            self.mqtt = MqttSink(self.store, m, list(settings.people), settings.devices or {})
            self.mqtt.start()
            log.info("MQTT sink: %s:%s, base topic %s", m.host, m.port, m.base_topic)
        if settings.influx is not None:
            self.influx = InfluxSink.from_settings(self.store, settings.influx)
            log.info(
                "InfluxDB sink: %s (%s API), bucket %s",
                redact_url(settings.influx.url),
                settings.influx.api,
                settings.influx.bucket,
            )

    def beat(self, beat: Beat) -> None:
        if self.influx and self.settings.influx.write_beats:
            self._store("influx", 1, self.influx.add, [beat_line(beat)])
            self._maybe_flush()

    def reading(self, r: Reading, status: dict | None = None) -> None:
        """A reading to InfluxDB `hrv` and, with the alert engine's `status`, the retained MQTT state."""
        if self.influx:
            self._store("influx", 1, self.influx.add, [reading_line(r)])
            self._maybe_flush()
        self.state(r, status)

    def state(self, r: Reading, status: dict | None = None) -> None:
        """The retained MQTT state only: the latest reading `r` with the alert engine's `status`."""
        if self.mqtt:
            self._store("mqtt", 1, self.mqtt.publish_state, r, status)

    def prompt(self, prompt: Prompt) -> None:
        """A breathing prompt to the phone (MQTT, QoS 1, expiring) and to InfluxDB `prompts`."""
        if self.mqtt:
            self._store("mqtt", 1, self.mqtt.publish_prompt, prompt)
        elif self.store is not None:
            self._store("mqtt", 0, self.store.record_prompt, prompt.to_dict())
        if self.influx:
            self._store("influx", 1, self.influx.add, [prompt_line(prompt.to_dict())])

    def prompt_outcome(self, prompt: dict, response: str | None, effects: dict | None = None) -> None:
        """The phone's answer and the measured effect, on the prompt's own `prompts` point (same
        series and time: InfluxDB merges the fields). Called for the answer the engine took (the
        first), never for a later one, which would overwrite `response`."""
        if self.influx:
            self._store("influx", 1, self.influx.add, [prompt_line(prompt, response, effects)], True)

    def baseline(self, person: str, t: float, ref) -> None:
        """The person's resting reference (a processing.baseline.Reference) at `t` (InfluxDB `baseline`)."""
        if self.influx:
            line = baseline_line(
                person, t, ref.ln_rmssd_mean, ref.ln_rmssd_sd, ref.hr_mean, ref.hr_sd, ref.samples
            )
            self._store("influx", 1, self.influx.add, [line])

    def daily(self, person: str, summary: dict, t: float) -> None:
        """A day's summary and the chronic bands (InfluxDB `daily`)."""
        if self.influx:
            self._store("influx", 1, self.influx.add, [daily_line(person, summary, t)])

    def morning(self, person: str, data: dict, t: float) -> None:
        """A valid morning reading and its trend: retained MQTT `<person>/morning`, InfluxDB `morning`."""
        if self.mqtt:
            self._store("mqtt", 1, self.mqtt.publish_morning, person, data)
        if self.influx:
            self._store("influx", 1, self.influx.add, [morning_line(person, data, t)])

    def measurement(self, person: str, progress: dict) -> None:
        """Where a morning reading stands (retained MQTT `<person>/measurement`)."""
        if self.mqtt:
            self._store("mqtt", 1, self.mqtt.publish_measurement, person, progress)

    def device(self, person: str, device: str, status: dict, t: float) -> None:
        """Device status (battery, connection, model) to MQTT (retained) and InfluxDB `devices`."""
        if self.mqtt:
            self._store("mqtt", 1, self.mqtt.publish_device, person, device, status)
        if self.influx:
            line = device_line(person, device, t, status.get("battery_pct"), bool(status.get("connected")))
            self._store("influx", 1, self.influx.add, [line])

    def outbox_status(self) -> dict:
        """What waits in the outbox (per sink) and what its bounds have dropped since the state
        database began (`<sink>.dropped_overflow`)."""
        st = self.store
        return {
            "points_waiting": st.pending("influx"),
            "dropped_points": st.counter("influx.dropped_overflow"),
            "messages_waiting": st.pending("mqtt"),
            "dropped_messages": st.counter("mqtt.dropped_overflow"),
        }

    def publish_outbox(self) -> None:
        """Called periodically by the service: drops not logged yet are logged (at most once a
        minute), and with MQTT on, `outbox_status` goes to the retained `<base>/outbox`."""
        for sink in (self.influx, self.mqtt):
            if sink is not None:
                sink.overflow.flush()
        if self.mqtt is not None and self.mqtt.s.announce_status:
            try:
                status = self.outbox_status()
            except StoreError as exc:
                self._store_failed(exc)
                return
            self._store("mqtt", 1, self.mqtt.publish_outbox, status)

    def save_states(self, values: dict[str, dict]) -> None:
        """Keep what the service restores at start (key -> JSON-ready value, one transaction); a
        failing store is logged like the others."""
        if self.store is None:
            return
        try:
            self.store.save_states(values)
        except StoreError as exc:
            self._store_failed(exc)

    def flush(self) -> int:
        if not self.influx:
            return 0
        try:
            return self.influx.flush()
        except StoreError as exc:  # delivered points that could not be deleted are simply re-sent later
            self._store_failed(exc)
            return 0

    def _store(self, sink: str, n: int, fn, *args) -> None:
        """Call a producing method of a sink; a store failure costs these `n` items, not the caller."""
        try:
            fn(*args)
        except StoreError as exc:
            setattr(self.lost, sink, getattr(self.lost, sink) + n)
            self._episode[sink] += n
            self._store_failed(exc)
            return
        if self._store_failing:
            self._store_recovered()

    def _store_failed(self, exc: StoreError) -> None:
        """Log at most once a minute, also when the store flaps between full and not."""
        self._store_failing = True
        if self._store_log.allow():
            self._owe_recovery_line = True
            log.error(
                "%s; not stored so far: %d InfluxDB points, %d MQTT messages",
                exc,
                self.lost.influx,
                self.lost.mqtt,
            )

    def _store_recovered(self) -> None:
        self._store_failing = False
        try:  # the losses of this episode, kept where the other counters are (`<sink>.lost_store_error`)
            for sink, n in self._episode.items():
                if n:
                    self.store.bump(f"{sink}.lost_store_error", n)
                    self._episode[sink] = 0
        except StoreError:
            return
        if self._owe_recovery_line:
            self._owe_recovery_line = False
            log.warning(
                "state store writable again; not stored while it was not: %d InfluxDB points, "
                "%d MQTT messages",
                self.lost.influx,
                self.lost.mqtt,
            )

    def _maybe_flush(self) -> None:
        if not self.inline_flush:
            return
        now = self.clock()
        if now >= self._next_flush:
            self._next_flush = now + self.settings.influx.flush_interval_s
            self.flush()

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what can be delivered within `timeout_s`; the rest stays in the outbox."""
        deadline = time.monotonic() + timeout_s
        for sink in (self.influx, self.mqtt):  # the drops of the last minute, not said yet
            if sink is not None:
                sink.overflow.flush(force=True)
        if self.influx:
            try:
                self.influx.flush(force=True)
            except StoreError as exc:
                self._store_failed(exc)
            self.influx.close()
        if self.mqtt:
            self.mqtt.pump()  # the sink's event loop hands the outbox over; wait for it
            while self.store.pending("mqtt") and self.mqtt.connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.mqtt.stop()
