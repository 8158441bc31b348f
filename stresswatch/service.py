"""The one run loop: sources -> per-person pipelines -> alert engines -> sinks (`run` and `demo`).

One asyncio event loop. Each `Source` (stresswatch/sources.py: Bluetooth straps, a paced replay,
the simulator) is a task that hands events (`Beat`, `Gap`, `HeartRate`) to `Service.events`,
which feeds them inline to the person's pure `Pipeline` (microseconds per beat); each reading goes to the
person's pure `AlertEngine` (alerts/engine.py), and the corrected beats, readings, prompts,
daily summaries and measured effects go to the sinks. MQTT runs on this loop too when the
service is built on it (`stresswatch run`, the demo; sinks/mqtt.py): phone answers, activity and
morning reading requests are handed to the loop with `call_soon_threadsafe`, which also serves a
sink on a loop of its own (a service built outside a loop, as some tests do). A strap's
notifications are only decoded and queued by the Bluetooth callback (stresswatch/sources.py
`StrapSource`); the pipeline and sinks take them from the queue. InfluxDB batches are written
from a worker thread so a slow server never stalls the loop.

Morning readings (processing/morning.py) run here, where the strap's beats are: one starts when
asked (`measure`: MQTT `<base>/<person>/measure` or the command line) or on its own when the
person's strap starts sending in their morning window (after AUTO_AFTER_SILENCE_S without beats,
with no valid reading yet that day); it takes the person's beats, gaps and movement (a motion
event, or a reading whose activity is not rest), says where it stands on `<person>/measurement`
every PROGRESS_EVERY_S, and its result goes to the alert engine (`AlertEngine.morning`) and, when
valid, to `<person>/morning` and InfluxDB `morning`. A reading is never saved half-done: a stop
ends it as "stopped" (nothing stored), and a start says `idle` on `<person>/measurement`.
With a live source (a strap) the engines also `tick` every ENGINE_TICK_S, so days close at
midnight and the chronic session comes at its time for people who wear the strap only briefly.

What must survive a restart is kept in the state store (sinks/store.py, table saved_state):
each person's stress baseline and alert engine, saved every `SAVE_EVERY_S` of readings, at
every prompt, answer and day's end, and at a clean stop; a start restores them, so a restart
neither starts calibration over nor forgets a cooldown. Whether each strap sends RR intervals is
kept there too when it changes, for `stresswatch doctor`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from alerts.daily import DailySummary
from alerts.engine import AlertEngine, Decision
from alerts.prompt import Prompt
from alerts.settings import AlertSettings
from alerts.timeofday import day_of, day_start, in_window, minute_of_day, parse_hhmm
from collector.ble import DeviceSpec
from collector.events import Beat, Event, HeartRate
from collector.phone_activity import motion_from_phone
from collector.retry import sleep_or_stop
from processing.baseline import Baseline
from processing.morning import Failure, MorningReading, MorningResult, Protocol, motion_verdict
from processing.pipeline import Pipeline
from processing.reading import Activity, Reading
from sinks.fanout import Sinks
from sinks.store import StateStore, StoreError
from stresswatch.config import Config
from stresswatch.device_health import HEALTH_EVERY_S, DeviceHealth, saved_key
from stresswatch.sources import Source, StrapSource

log = logging.getLogger("stresswatch.service")

# Readings' time between two saves of a person's baseline and engine (a crash loses at most this).
SAVE_EVERY_S = 300.0
# People saved in one transaction at a stop: one transaction per person cost more than the
# save itself, and all in one held every person's state as JSON at once (~7 kB each).
SAVE_BATCH = 50
# Beats kept per person to check, when an exercise is marked done, that paced breathing happened.
RECENT_BEATS_S = 1800.0
# A beat after this long without any is a strap just put on: in the morning window it may start a
# reading (ours: longer than a strap's reconnects after a lost link, shorter than a shower).
AUTO_AFTER_SILENCE_S = 300.0
# How often `<person>/measurement` says where a running reading stands (and at each phase change).
PROGRESS_EVERY_S = 5.0
# How often, with a live source, the alert engines hear the time (alerts/engine.py `tick`).
ENGINE_TICK_S = 60.0
# A reading whose activity is active or recovery counts as movement over this many seconds (its
# activity is judged on its last 8 beats, processing/pipeline.py RECENT_BEATS).
ACTIVITY_SPAN_S = 10.0


@dataclass
class Wearer:
    """One person's stages and what the service keeps for them."""

    name: str
    pipeline: Pipeline
    engine: AlertEngine
    recent: deque = field(default_factory=deque)  # (t, rr_ms) of the last RECENT_BEATS_S
    last_reading: Reading | None = None  # republished with the engine's status after an answer
    last_save: float = float("-inf")
    protocol: Protocol = field(default_factory=Protocol)  # of the morning reading, in the person's posture
    morning_window: tuple[int, int] = (300, 660)  # local minutes in which a strap put on starts one
    morning_auto: bool = True
    morning: MorningReading | None = None  # the reading running now
    request: str | None = None  # the id of the request that started it (the command line's)
    last_beat_t: float | None = None
    last_progress: tuple = ()  # (status, time) last said on <person>/measurement


class Service:
    """Owns the path events -> pipeline -> alert engine -> sinks for every configured person."""

    def __init__(
        self,
        cfg: Config,
        sources: list[Source],
        sinks: Sinks | None = None,
        on_reading: Callable[[Reading], None] | None = None,
        on_prompt: Callable[[Prompt], None] | None = None,
        on_decision: Callable[[str, Decision], None] | None = None,
        on_daily: Callable[[str, DailySummary], None] | None = None,
        on_measurement: Callable[[str, dict], None] | None = None,
        clock: Callable[[], float] = time.time,
        timezone: str | None = None,
        alert_settings: AlertSettings | None = None,
        restore: bool = True,
    ):
        """`timezone` overrides [service] timezone (the demo's simulated day is in UTC);
        `restore=False` starts every person afresh (the demo: reproducible), still saving."""
        self.cfg = cfg
        self.sources = sources
        self.clock = clock
        self.on_reading = on_reading
        self.on_prompt = on_prompt
        self.on_decision = on_decision
        self.on_daily = on_daily
        self.on_measurement = on_measurement
        settings = cfg.sink_settings()
        if sinks is None:
            store = StateStore(settings.state_path, limits=settings.outbox_limits())
            sinks = Sinks(settings, store=store, inline_flush=False)
        self.sinks = sinks
        self.store: StateStore | None = sinks.store
        # Local time for the day/night baseline and the alert engine's days and quiet hours: a
        # zone, so they follow daylight saving time while the service runs.
        alerts = replace(alert_settings or cfg.alert_settings(), timezone=timezone or cfg.service.zone_name())
        self.alerts = alerts
        self.tz = alerts.tz
        self.people: dict[str, Wearer] = {}
        for p in cfg.people:
            self.people[p.name] = self._restore(p, cfg, alerts, restore)
        if self.sinks.mqtt is not None:
            self.sinks.mqtt.on_response = self._response_from_phone
            self.sinks.mqtt.on_activity = self._activity_from_phone
            self.sinks.mqtt.on_measure = self._measure_from_mqtt
        self._loop: asyncio.AbstractEventLoop | None = None
        # Device health: per strap (person, device label), the link status and beat counts.
        self.health: dict[tuple[str, str], DeviceHealth] = {}  # (person, device label)
        self.health_every_s = HEALTH_EVERY_S

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        return {name: w.pipeline for name, w in self.people.items()}

    @classmethod
    def with_straps(cls, cfg: Config, **kw) -> Service:
        """The home service: every configured [[devices]] strap is a source."""
        service = cls(cfg, [], **kw)
        bt = cfg.bluetooth
        specs = [DeviceSpec(d.person, d.address, d.name, d.role == "motion") for d in cfg.devices]
        service.sources.append(
            StrapSource.from_specs(
                specs,
                service.device_status,
                watchdog_s=bt.watchdog_s,
                battery_every_s=bt.battery_every_s,
                adapter=bt.adapter,
                clock=service.clock,
            )
        )
        return service

    # -- the data path ---------------------------------------------------------------------------

    def events(self, events: list[Event]) -> None:
        """Feed events (any people, time order per person) through to the sinks."""
        for e in events:
            w = self.people.get(e.person)
            if w is None:
                continue  # a source for a person who is not configured: config check prevents it
            readings = w.pipeline.feed(e)
            self._beats(w)
            if type(e) is HeartRate:
                self._health(w.name, e.device).heart_rate(e.t)
            self._morning_event(w, e)
            for r in readings:
                self._reading(w, r)

    def finish(self, close_days: bool = False) -> None:
        """End of input: what artifact correction still holds back, the last readings; saved.
        With `close_days` (a replay that has ended, not a service stopping for the night) the open
        day is closed and summarised as it stands."""
        for w in self.people.values():
            readings = w.pipeline.finish()
            self._beats(w)
            for r in readings:
                self._reading(w, r)
            if w.morning is not None:
                self._morning_done(
                    w,
                    w.morning.stop(
                        "The service stopped during the reading; nothing was stored. "
                        "Start it again once the service runs."
                    ),
                )
            if close_days:
                self._outputs(w, w.engine.finish())
        wearers = list(self.people.values())
        for k in range(0, len(wearers), SAVE_BATCH):  # one transaction per batch, not per person
            self._save(*wearers[k : k + SAVE_BATCH])

    def respond(self, person: str, response: dict, now: float | None = None) -> None:
        """A phone's answer to a prompt (already checked to be this person's by the MQTT sink).

        The engine checks it (alerts/engine.py `respond`: the id, the action, a snooze length of
        1-240 minutes): a bad one is one log line and changes nothing. The first answer stands:
        only it reaches InfluxDB; a later one is logged and counted (`ignored_answers` in the
        state). The retained state is republished at once, so a snooze shows there."""
        w = self.people.get(person)
        if w is None:
            return
        now = self.clock() if now is None else now
        pid, action = response["id"], str(response["action"])
        try:
            outputs = w.engine.respond(
                pid, action, response.get("minutes"), now, rr=self._exercise_beats(w, pid)
            )
        except ValueError as exc:  # an id this engine never sent (e.g. from before a reset), a bad snooze
            log.warning("%s: answer %s to prompt %s not taken: %s", person, action, pid, exc)
            return
        taken = any(isinstance(o, Decision) and o.what == "response" for o in outputs)
        body = self._prompt_body(pid) if taken else None
        if body is not None:
            self.sinks.prompt_outcome(body, action)
        self._outputs(w, outputs)  # logs the answer, or that it came after the first
        self._save(w)
        if w.last_reading is not None and self.sinks.mqtt:
            self.sinks.state(w.last_reading, w.engine.status())

    # -- morning readings ------------------------------------------------------------------------

    def measure(
        self, person: str, trigger: str = "mqtt", request: str | None = None, now: float | None = None
    ) -> dict:
        """Start a morning reading for `person` now (from MQTT, the command line, or a test);
        returns what `<person>/measurement` says. One at a time: a second request while one runs
        is answered with where the running one stands."""
        w = self.people.get(person)
        if w is None:
            log.warning("morning reading asked for %r, who is not configured", person)
            return {"person": person, "status": "refused", "reason": f"{person!r} is not a configured person"}
        now = self.clock() if now is None else now
        if w.morning is not None:  # the running one answers this request from now on
            w.request = request or w.request
            progress = {
                **w.morning.progress(now),
                "request": w.request,
                "note": "a reading is already running: this one goes on",
            }
            self._measurement(w, progress)
            return progress
        w.morning = MorningReading(person, w.protocol, now, trigger)
        w.request = request
        log.info(
            "%s: morning reading started (%s, %s): %.0f s of stabilisation, then %.0f s measured; sit or lie "
            "still",
            person,
            trigger,
            w.protocol.posture.value,
            w.protocol.stabilise_s,
            w.protocol.measure_s,
        )
        return self._progress(w, now, force=True)

    def cancel(self, person: str) -> None:
        """Stop `person`'s running reading (asked over MQTT); nothing is stored."""
        w = self.people.get(person)
        if w is not None and w.morning is not None:
            self._morning_done(w, w.morning.stop("The reading was cancelled; nothing was stored."))

    def tick(self, now: float | None = None, engines: bool = False) -> None:
        """Time passes: running readings end when their time is up (or no beats came) and say
        where they stand; with `engines`, the alert engines hear the time too (`AlertEngine.tick`)."""
        now = self.clock() if now is None else now
        for w in self.people.values():
            if w.morning is not None:
                result = w.morning.tick(now)
                if result is not None:
                    self._morning_done(w, result)
                else:
                    self._progress(w, now)
            if engines:
                outputs = w.engine.tick(now)
                if outputs:
                    self._outputs(w, outputs)
                    self._save(w)

    def _morning_event(self, w: Wearer, e: Event) -> None:
        """A person's event for the morning reading: it may start one on its own (a strap put on in
        the morning window), and a running one takes it."""
        if isinstance(e, Beat):
            silent = w.last_beat_t is None or e.t - w.last_beat_t >= AUTO_AFTER_SILENCE_S
            w.last_beat_t = e.t
            if silent and w.morning is None and self._auto_due(w, e.t):
                w.morning = MorningReading(w.name, w.protocol, e.t, "auto", auto=True)
                w.request = None
                log.info(
                    "%s: strap on in the morning window: a morning reading starts once you keep still", w.name
                )
        if w.morning is None:
            return
        result = w.morning.feed(e)
        for m in w.pipeline.motion_out:  # what the person's motion sources said, as the pipeline took it
            if result is None:
                result = w.morning.moved(*motion_verdict(m))
        if result is not None:
            self._morning_done(w, result)
        elif isinstance(e, Beat):
            self._progress(w, e.t)

    def _auto_due(self, w: Wearer, t: float) -> bool:
        """Whether a strap put on at `t` starts a reading: auto on, a live source, the person's
        local morning window, and no valid reading yet that local day."""
        if not w.morning_auto or not self.live or not in_window(minute_of_day(t, self.tz), *w.morning_window):
            return False
        today = w.engine.days.open
        return today is None or today.day != day_of(t, self.tz) or today.morning_ln_rmssd is None

    @property
    def live(self) -> bool:
        """Whether a source is a live one (a strap), not a replay."""
        return any(not s.finite for s in self.sources)

    def _progress(self, w: Wearer, now: float, force: bool = False) -> dict:
        """Say where the running reading stands, at a phase change or every PROGRESS_EVERY_S."""
        progress = {**w.morning.progress(now), "request": w.request}
        status, last = progress["status"], w.last_progress
        if force or not last or last[0] != status or now - last[1] >= PROGRESS_EVERY_S:
            w.last_progress = (status, now)
            self._measurement(w, progress)
        return progress

    def _measurement(self, w: Wearer, progress: dict) -> None:
        self.sinks.measurement(w.name, progress)
        if self.on_measurement:
            self.on_measurement(w.name, progress)

    def _morning_done(self, w: Wearer, result: MorningResult) -> None:
        """A reading ended: to the engine (not a stopped one), then `<person>/measurement` says how,
        and a valid one goes to `<person>/morning` and InfluxDB."""
        reading, request = w.morning, w.request
        w.morning, w.request, w.last_progress = None, None, ()
        base = {
            "person": w.name,
            "seconds_left": 0,
            "trigger": result.trigger,
            "request": request,
            "restarts": reading.restarts if reading else 0,
        }
        if result.failure == Failure.STOPPED:
            log.warning("%s: morning reading stopped: %s", w.name, result.reason)
            self._measurement(
                w, {**base, "status": "stopped", "reason": result.reason, "failure": result.failure}
            )
            return
        outputs = w.engine.morning(result)
        rest = []
        for o in outputs:
            if not (isinstance(o, Decision) and o.what == "morning"):
                rest.append(o)
                continue
            if o.rule == "valid":
                log.info("%s: %s", w.name, o.reason)
                self.sinks.morning(w.name, o.data, result.time)
                self._measurement(w, {**base, "status": "done", "result": o.data})
            elif o.rule == "failed":
                gave_up = result.failure == Failure.NOT_STILL
                log.log(
                    logging.INFO if gave_up else logging.WARNING,
                    "%s: morning reading failed (%s): %s%s",
                    w.name,
                    result.failure,
                    o.reason,
                    "" if gave_up else " Asked to take it again.",
                )
                self._measurement(
                    w,
                    {
                        **base,
                        "status": "failed",
                        "failure": result.failure,
                        "reason": o.reason,
                        "retry": not gave_up,
                    },
                )
            else:
                log.info("%s: %s", w.name, o.reason)
                self._measurement(w, {**base, "status": "done", "note": o.reason, "result": o.data})
            if self.on_decision:
                self.on_decision(w.name, o)
        self._outputs(w, rest)
        if w.last_reading is not None and self.sinks.mqtt:
            self.sinks.state(w.last_reading, w.engine.status())
        self._save(w, force=True)

    def _measure_from_mqtt(self, person: str, request: dict) -> None:
        """Called on the MQTT sink's loop thread (this loop's, or the sink's own): the readings
        belong to the service's loop."""
        if self._loop is None or self._loop.is_closed():
            return
        if request["action"] == "stop":
            self._loop.call_soon_threadsafe(self.cancel, person)
        else:
            self._loop.call_soon_threadsafe(
                lambda: self.measure(person, request["trigger"], request["request"])
            )

    # -- device health: the link's status plus beat age and counts, republished every health_every_s --

    def device_status(self, spec: DeviceSpec, status: dict) -> None:
        h = self._health(spec.person, spec.label)
        h.status = dict(status)
        self._publish_health(spec.person, spec.label, h)
        self._remember_rr(spec.person, spec.label, h)

    def _health(self, person: str, device: str) -> DeviceHealth:
        h = self.health.get((person, device))
        if h is None:  # not setdefault: that would build a DeviceHealth for every call
            h = self.health[(person, device)] = DeviceHealth()
        return h

    def _remember_rr(self, person: str, device: str, h: DeviceHealth) -> None:
        """Keep in the state store whether the strap sends RR intervals when that is news, so
        `stresswatch doctor` can say it (the strap is connected to the service, not to doctor)."""
        sends_rr = h.status.get("sends_rr")
        if sends_rr is None or self.store is None:
            return
        key = saved_key(person, device)
        if not h.loaded:
            h.loaded = True
            try:
                h.saved_sends_rr = (self.store.load_state(key) or {}).get("sends_rr")
            except (StoreError, sqlite3.Error):
                pass  # saved below, where a failing store is logged
        if sends_rr != h.saved_sends_rr:
            h.saved_sends_rr = sends_rr
            self.sinks.save_states(
                {key: {"sends_rr": sends_rr, "time": self.clock(), "model": h.status.get("model")}}
            )

    def publish_health(self) -> None:
        """Every strap whose link has reported, with counts as of now; and the outbox's figures."""
        for (person, device), h in self.health.items():
            if h.status:  # a replay's beats have no strap to report on
                self._publish_health(person, device, h)
        self.sinks.publish_outbox()

    def _publish_health(self, person: str, device: str, h: DeviceHealth) -> None:
        now = self.clock()
        self.sinks.device(person, device, h.report(now), now)

    # -- end of device health --

    def _beats(self, w: Wearer) -> None:
        for b in w.pipeline.beats_out:  # stored once, after correction, with the correction applied
            self.sinks.beat(b)
            if w.recent and b.t < w.recent[-1][0]:
                w.recent.clear()  # the clock went back: times before and after no longer compare
            w.recent.append((b.t, b.rr_ms))
            h = self.health.get((w.name, b.device))
            if h is None:
                h = self._health(w.name, b.device)
            h.beat(b.t, b.artifact is not None)
        while w.recent and w.recent[-1][0] - w.recent[0][0] > RECENT_BEATS_S:
            w.recent.popleft()

    def _reading(self, w: Wearer, r: Reading) -> None:
        if w.morning is not None and r.activity in (Activity.ACTIVE, Activity.RECOVERY):
            result = w.morning.moved(r.time, ACTIVITY_SPAN_S, True)
            if result is not None:
                self._morning_done(w, result)
        outputs = w.engine.feed(r)
        w.last_reading = r
        # the engine's status rides on the retained MQTT state only
        self.sinks.reading(r, w.engine.status() if self.sinks.mqtt else None)
        if self.on_reading:
            self.on_reading(r)
        self._outputs(w, outputs)
        if outputs or abs(r.time - w.last_save) >= SAVE_EVERY_S:  # abs: a clock set back saves at once
            self._save(w)

    def _outputs(self, w: Wearer, outputs: list) -> None:
        for out in outputs:
            if isinstance(out, Prompt):
                log.info("%s: %s prompt %s (%s): %s", w.name, out.kind, out.id, out.exercise.name, out.reason)
                self.sinks.prompt(out)
                if self.on_prompt:
                    self.on_prompt(out)
            elif isinstance(out, DailySummary):
                d = out.to_dict()
                log.info(
                    "%s: day %s %s, stress load %s",
                    w.name,
                    out.date,
                    "valid" if out.valid else f"invalid ({out.invalid_reason})",
                    d.get("stress_load"),
                )
                self.sinks.daily(w.name, d, day_start(out.day, self.tz))
                if self.on_daily:
                    self.on_daily(w.name, out)
            elif isinstance(out, Decision):
                if out.what == "effect":
                    body = self._prompt_body(out.data.get("id", ""))
                    if body is not None:
                        self.sinks.prompt_outcome(body, "done", out.data)
                level = {"suppressed": logging.DEBUG, "clock": logging.WARNING}.get(out.what, logging.INFO)
                log.log(level, "%s: %s", w.name, out.reason)
                if self.on_decision:
                    self.on_decision(w.name, out)

    def _prompt_body(self, prompt_id: str) -> dict | None:
        """The prompt as it was sent, from the prompt history; without a store (a Kafka worker)
        what the person's engine keeps of it: id, person, time, kind and exercise (no score)."""
        if self.store is not None:
            rec = self.store.prompt(prompt_id)
            return rec["prompt"] if rec else None
        person = prompt_id.rsplit("-", 2)[0]  # ids are <person>-<time>-<kind> (alerts/engine.py)
        w = self.people.get(person)
        kept = w.engine.prompts.get(prompt_id) if w is not None else None
        if kept is None:
            return None
        exercise = w.engine.catalogue.get(kept["exercise"])
        return {
            "id": prompt_id,
            "person": person,
            "time": kept["time"],
            "kind": kept["kind"],
            "exercise": exercise.to_dict() if exercise else {"name": kept["exercise"]},
            "stress_score": None,
        }

    def _exercise_beats(self, w: Wearer, prompt_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The beats since the prompt was sent (the exercise lies in them), for the breathing check."""
        body = self._prompt_body(prompt_id)
        if body is None or not w.recent:
            return None
        beats = [(t, rr) for t, rr in w.recent if t >= body["time"]]
        if len(beats) < 30:
            return None
        t, rr = zip(*beats, strict=True)
        return np.asarray(t), np.asarray(rr)

    # -- what survives a restart -----------------------------------------------------------------

    def _restore(self, person, cfg: Config, alerts: AlertSettings, restore: bool) -> Wearer:
        baseline = engine = None
        if self.store is not None and restore:
            try:
                saved = self.store.load_state(f"baseline/{person.name}")
                baseline = Baseline.from_dict(saved, self.tz) if saved else None
                saved = self.store.load_state(f"alerts/{person.name}")
                engine = AlertEngine.from_dict(saved, alerts) if saved else None
            except (ValueError, KeyError, TypeError) as exc:  # from an incompatible version
                log.warning("%s: saved state not restored (%s); starting afresh", person.name, exc)
                baseline = engine = None
        model = person.model(self.tz, baseline=baseline, rr_gate=cfg.processing.rr_gate)
        pipeline = Pipeline(person.name, cfg.processing.settings(), model)
        for note in engine.repaired if engine else ():
            log.warning("%s: %s", person.name, note)
        engine = engine or AlertEngine(person.name, alerts, seed=zlib.crc32(person.name.encode()))
        if baseline is not None:
            log.info("%s: baseline and alert state restored", person.name)
        window = (
            parse_hhmm(person.morning_from, "morning_from"),
            parse_hhmm(person.morning_until, "morning_until"),
        )
        return Wearer(
            person.name,
            pipeline,
            engine,
            protocol=cfg.morning.protocol(person.morning_posture),
            morning_window=window,
            morning_auto=person.morning_auto,
        )

    # -- one person at a time: a Kafka worker gains and loses people (stresswatch/worker.py) --------

    def add_person(self, name: str, snapshot: dict | None = None) -> Wearer:
        """`name` as a wearer ([[people]] settings if configured, else the defaults): afresh, or
        rebuilt from `snapshot` (see `snapshot`) exactly as it was when that was taken."""
        person = self.cfg.person(name)
        if snapshot is None:
            w = self._restore(person, self.cfg, self.alerts, restore=False)
        else:
            model = person.model(
                self.tz,
                baseline=Baseline.from_dict(snapshot["pipeline"]["baseline"], self.tz),
                rr_gate=self.cfg.processing.rr_gate,
            )
            pipeline = Pipeline.restored(snapshot["pipeline"], name, self.cfg.processing.settings(), model)
            w = Wearer(name, pipeline, AlertEngine.from_dict(snapshot["engine"], self.alerts))
            if snapshot.get("last_save") is not None:  # absent in snapshots written before it was kept
                w.last_save = float(snapshot["last_save"])
        self.people[name] = w
        return w

    def snapshot(self, name: str) -> dict:
        """What rebuilds `name` exactly (`add_person`), JSON-ready: the pipeline's snapshot (its RR
        window, motion track, baseline and step clocks), the alert engine's `to_dict` and when
        the baseline was last written (so a rebuilt person writes it when the original would).
        Between `events` calls."""
        w = self.people[name]
        last_save = w.last_save if math.isfinite(w.last_save) else None
        return {"pipeline": w.pipeline.snapshot(), "engine": w.engine.to_dict(), "last_save": last_save}

    def _save(self, *wearers: Wearer, force: bool = False) -> None:
        """Each wearer's baseline and engine, all in one transaction (`force`: the engine even
        before its first reading, e.g. after a morning reading), and the baseline's reference to
        the sinks. Without a store (a Kafka worker, whose State is its own) only the latter."""
        keep = self.store is not None
        values = {}
        for w in wearers:
            if w.engine.last_time is None:
                if force and keep:
                    values[f"alerts/{w.name}"] = w.engine.to_dict()
                continue
            w.last_save = w.engine.last_time
            self.sinks.baseline(w.name, w.last_save, w.pipeline.model.baseline.reference(w.last_save))
            if keep:
                values[f"baseline/{w.name}"] = w.pipeline.model.baseline.to_dict()
                values[f"alerts/{w.name}"] = w.engine.to_dict()
        if values:
            self.sinks.save_states(values)

    def phone_activity(self, person: str, payload: bytes, now: float | None = None) -> None:
        """The phone's activity message (MQTT `<person>/activity`) as Motion into the person's
        pipeline; a payload that says no activity is one log line and changes nothing."""
        try:
            motion = motion_from_phone(person, payload, self.clock() if now is None else now)
        except ValueError as exc:
            log.warning("%s: ignored an activity message from the phone: %s", person, exc)
            return
        self.events([motion])

    def _activity_from_phone(self, person: str, payload: bytes) -> None:
        """Called on the MQTT sink's loop thread, like `_response_from_phone`."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.phone_activity, person, payload)

    def _response_from_phone(self, person: str, response: dict) -> None:
        """Called on the MQTT sink's loop thread: the engines belong to the service's loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.respond, person, response)

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set or every source has ended; then finish and close the sinks."""
        self._loop = asyncio.get_running_loop()
        source_tasks = [asyncio.create_task(s.run(self.events, stop)) for s in self.sources]
        flush_s = self.sinks.settings.influx.flush_interval_s if self.sinks.settings.influx else 5.0
        flusher = asyncio.create_task(self._every(stop, flush_s, self.sinks.flush, in_thread=True))
        watcher = asyncio.create_task(self._stop_when_sources_end(source_tasks, stop))
        health = asyncio.create_task(self._every(stop, self.health_every_s, self.publish_health))
        for w in self.people.values():  # a reading a stopped or killed run left half-done is gone
            self._measurement(w, {"person": w.name, "status": "idle", "seconds_left": 0})
        ticker = asyncio.create_task(self._ticks(stop))
        try:
            await stop.wait()
        finally:
            stop.set()
            for t in (*source_tasks, flusher, watcher, health, ticker):
                t.cancel()
            results = await asyncio.gather(
                *source_tasks, flusher, watcher, health, ticker, return_exceptions=True
            )
            self.finish(close_days=bool(self.sources) and all(s.finite for s in self.sources))
            await asyncio.to_thread(self.sinks.close)
            self._loop = None
        for result in results[: len(self.sources)]:
            if isinstance(result, Exception):
                raise result  # a finite source failed: that is the run's outcome (e.g. a bad file)

    async def _ticks(self, stop: asyncio.Event) -> None:
        """Every second: running readings (their time, their progress); every ENGINE_TICK_S with a
        live source: the alert engines."""
        last_engines = -float("inf")
        while not await sleep_or_stop(stop, 1.0):
            now = self.clock()
            engines = self.live and abs(now - last_engines) >= ENGINE_TICK_S
            if engines:
                last_engines = now
            self.tick(now, engines=engines)

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

    @staticmethod
    async def _every(
        stop: asyncio.Event, interval_s: float, fn: Callable[[], object], in_thread: bool = False
    ) -> None:
        """Call `fn` every `interval_s` until `stop` (in a worker thread when it may block on I/O);
        what is left at the stop is handled by `finish` and `Sinks.close`."""
        while not await sleep_or_stop(stop, interval_s):
            if in_thread:
                await asyncio.to_thread(fn)
            else:
                fn()
