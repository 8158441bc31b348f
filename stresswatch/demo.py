"""`stresswatch demo`: the service on a replay (the simulated day or a recording), playing the person.

The demo is the real service (stresswatch/service.py) with a `ReplaySource`, its own MQTT client
id and state directory (so it can run next to `stresswatch run`), no `<base>/status` and no Home
Assistant discovery (both belong to the service), and a fresh start every time (reproducible).
The replayed day ends when its replay does, so what it sends is current: its prompts reach a
phone before they expire (a day dated in the past had every prompt dropped as expired by the
MQTT sink) and its points land in Grafana's "last hours". Its clock times stay those of the
recording (the simulated day runs 08:00-09:21) whatever the hour: the demo's local time is the
replay's own (`replay_now`), so quiet hours at night do not hide its prompts and any run gives
the same output but for the date.
It plays the person who wears the strap: the first prompt is answered `done` once its exercise
would be over, the second `not_stressed` a minute after it arrives, later ones `dismiss`; the
engine's measured effect is printed, listed in the summary and marked on the plot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from pathlib import Path

from alerts.daily import DailySummary
from alerts.engine import Decision
from alerts.prompt import Prompt, PromptAction
from alerts.timeofday import fixed_offset_name
from collector.events import Event
from collector.files import read_recording
from processing.reading import Reading
from sinks.fanout import Sinks
from sinks.store import StateLock, StateStore
from stresswatch import config as configuration
from stresswatch import report
from stresswatch.command import url_overrides
from stresswatch.service import Service
from stresswatch.sources import ReplaySource, shifted, simulated_day, simulated_phone

DEMO_CLIENT_ID = "stresswatch-demo"
# The demo day is a day compressed into 80 minutes: a 90-minute cooldown would allow one prompt.
DEMO_COOLDOWN_MIN = 30.0
# The played person's answers, in order (the last one repeats).
ANSWERS = (PromptAction.DONE, PromptAction.NOT_STRESSED, PromptAction.DISMISS)
DAY_S = 86400.0


def replay_now(end: float, seconds: float, now: float) -> tuple[float, float]:
    """(shift, UTC offset in s) that move a replay ending at `end` to end when its replay does
    (`now + seconds`, to the whole minute before it), with a local time that keeps its clock times:
    local(t + shift) = t, read as UTC (the demo's local time before the move). Whole minutes, as
    local offsets are."""
    shift = math.floor((now + seconds - end) / 60.0) * 60.0
    offset = -shift % DAY_S
    return shift, offset - DAY_S if offset > DAY_S / 2 else offset


def demo_alert_settings(cfg: configuration.Config, duration_s: float):
    """The alert engine's settings for a compressed day: a shorter cooldown, and acute prompts
    that expire `acute_expiry_min` after the day's end rather than after their own time. The day
    ends when the replay does, so a prompt made at its start is `duration_s` old by then: with the
    usual expiry a phone would get only the prompts of the last minutes of the day."""
    s = cfg.alert_settings()
    return dataclasses.replace(
        s, cooldown_min=DEMO_COOLDOWN_MIN, acute_expiry_min=s.acute_expiry_min + duration_s / 60
    )


def demo_config(cfg: configuration.Config) -> configuration.Config:
    """The demo next to a running service: its own MQTT client id and state directory (a shared
    client id would make the broker drop one of the two connections; a shared outbox would mix
    their messages)."""
    mqtt = cfg.mqtt
    if mqtt.client_id == configuration.MqttConfig.client_id:
        mqtt = dataclasses.replace(mqtt, client_id=DEMO_CLIENT_ID)
    state = dataclasses.replace(cfg.state, directory=str(Path(cfg.state.directory).expanduser() / "demo"))
    return dataclasses.replace(cfg, mqtt=mqtt, state=state)


def demo_sinks(cfg: configuration.Config) -> Sinks:
    """The configured sinks, without the service's status topic and Home Assistant devices."""
    settings = cfg.sink_settings()
    if settings.mqtt is not None:
        mqtt = dataclasses.replace(settings.mqtt, announce_status=False, discovery=False)
        settings = dataclasses.replace(settings, mqtt=mqtt)
    store = StateStore(settings.state_path, limits=settings.outbox_limits())
    return Sinks(settings, store=store)


@dataclasses.dataclass
class PlayedPerson:
    """Answers the service's prompts as `ANSWERS` says, at the time a person would."""

    service: Service | None = None
    spans: list = dataclasses.field(default_factory=list)  # the replay's phases: when "breathing" ends
    due: list = dataclasses.field(default_factory=list)  # (time, prompt, action)
    log: list = dataclasses.field(default_factory=list)  # (prompt, action, effect Decision | None)
    days: list = dataclasses.field(default_factory=list)  # DailySummary of each day that ended

    def prompt(self, p: Prompt) -> None:
        action = ANSWERS[min(len(self.log) + len(self.due), len(ANSWERS) - 1)]
        at = p.time + (p.exercise.duration_s if action == PromptAction.DONE else 60.0)
        if action == PromptAction.DONE:  # the scripted breathing that follows, if the replay has one
            at = next(
                (s.end for s in self.spans if s.name == "breathing" and p.time <= s.start < p.time + 600), at
            )
        self.due.append((at, p, action))
        print(
            f"  >> prompt ({p.kind}, {p.exercise.name}, {p.exercise.duration_s / 60:g} min): {p.reason}",
            flush=True,
        )

    def reading(self, r: Reading) -> None:
        for item in [d for d in self.due if d[0] <= r.time]:
            self.due.remove(item)
            at, p, action = item
            verb = {
                PromptAction.DONE: "did the exercise and answered done",
                PromptAction.NOT_STRESSED: "answered: not stressed",
            }.get(action, f"answered {action}")
            print(f"  << the person {verb}", flush=True)
            self.log.append([p, action, None])
            self.service.respond(p.person, {"id": p.id, "action": action.value, "minutes": None}, now=at)

    def daily(self, person: str, day: DailySummary) -> None:
        self.days.append(day)

    def decision(self, person: str, d: Decision) -> None:
        if d.what != "effect":
            return
        for entry in self.log:
            if entry[0].id == d.data.get("id"):
                entry[2] = d
        print(f"  == {d.reason}", flush=True)


def command(args) -> int:
    """`stresswatch demo`: the configuration with --mqtt / --influx over it, then `run`."""
    return run(args, configuration.load(args.config, url_overrides(args)))


def run(args, cfg: configuration.Config) -> int:
    cfg = demo_config(cfg)
    with StateLock(Path(cfg.state.directory)):  # two demos would share one outbox and MQTT session
        return _run(args, cfg)


def _run(args, cfg: configuration.Config) -> int:
    person = cfg.people[0].name
    if args.recording:
        rec = read_recording(args.recording, args.format, person=person)
        events: list[Event] = rec.events
        beats = rec.beats
        spans = [
            report.Span(Path(args.recording).name, beats[0].t - beats[0].rr_ms / 1000.0, beats[-1].t + 1, "")
        ]
        title = f"stresswatch demo: {Path(args.recording).name}"
    else:
        beats, spans = simulated_day(args.seed, args.artifacts, person)
        # and their phone's activity, as Home Assistant forwards it: the walk is not stress
        events = sorted([*beats, *simulated_phone(person)], key=lambda e: e.t)
        title = "stresswatch demo: a simulated day"
    shift, utc_offset_s = replay_now(spans[-1].end, args.seconds, time.time())
    events, beats = shifted(events, shift), shifted(beats, shift)
    spans = [dataclasses.replace(s, start=s.start + shift, end=s.end + shift) for s in spans]
    t_start = spans[0].start
    duration = max(1.0, spans[-1].end - t_start)
    pace = args.seconds / duration if args.seconds > 0 else 0.0
    what = Path(args.recording).name if args.recording else "a simulated day"
    print(
        f"stresswatch demo: {what}, {len(beats)} beats over {duration / 60:.0f} min, "
        f"replayed in ~{args.seconds:g} s\n"
    )
    readings: list[Reading] = []
    next_line = [t_start]
    played = PlayedPerson(spans=spans)

    def show(r: Reading) -> None:
        readings.append(r)
        played.reading(r)
        if r.time >= next_line[0]:
            next_line[0] = r.time + max(60.0, duration / 60)
            label = next((s.name for s in spans if s.start <= r.time < s.end), "")
            pct = 100 * (r.time - t_start) / duration
            print(f"[{pct:3.0f}%] " + report.live_line(r, t_start, label), flush=True)

    async def replay() -> Service:
        # Built on the running loop, as `stresswatch run` builds its service: MQTT lives on that loop.
        service = Service(
            cfg,
            [ReplaySource(events, pace)],
            sinks=demo_sinks(cfg),
            on_reading=show,
            on_prompt=played.prompt,
            on_decision=played.decision,
            on_daily=played.daily,
            timezone=fixed_offset_name(utc_offset_s),
            restore=False,
            alert_settings=demo_alert_settings(cfg, duration),
        )
        played.service = service
        await service.run(asyncio.Event())
        return service

    service = asyncio.run(replay())
    _print_sink_summary(service.sinks)
    print("\nsummary\n" + report.summary_table(readings, spans))
    print("\n" + prompt_summary(played, t_start))
    for day in played.days:
        load = "-" if day.stress_load is None else f"{100 * day.stress_load:.0f} % of resting time stressed"
        print(
            f"day {day.date}: worn {day.worn_min:.0f} min, stress load {load}"
            + ("" if day.valid else f" (not a valid day for the chronic rules: {day.invalid_reason})")
        )
    pipe = service.pipelines[person]
    print(f"\nartifacts corrected: {pipe.corrector.counts}; readings: {len(readings)}")
    if args.plot and readings:
        marks = [(p.time, f"{p.kind} prompt: {action.value}") for p, action, _ in played.log]
        marks += [(p.time, f"{p.kind} prompt") for _, p, _ in played.due]
        try:
            path = report.plot(readings, spans, args.plot, title, marks)
        except ImportError:  # matplotlib is the optional `plot` extra
            print(
                "plot skipped: matplotlib is not installed (pip install 'stresswatch[plot]'; "
                "./scripts/demo installs it)"
            )
        else:
            print(f"plot saved to {Path(path).resolve()}")
    return 0


def prompt_summary(played: PlayedPerson, t0: float) -> str:
    if not played.log and not played.due:
        return "prompts: none (no sustained stress at rest)"
    lines = [f"prompts: {len(played.log) + len(played.due)}"]
    for p, action, effect in played.log:
        measured = effect.reason if effect else "no effect measured (too little rest after it)"
        if action != PromptAction.DONE:
            measured = "not measured (not done)"
        lines.append(
            f"  minute {(p.time - t0) / 60:5.1f}  {p.kind:<8s} {p.exercise.name:<28s} answered "
            f"{action.value:<13s} {measured}"
        )
    for _, p, _ in played.due:
        lines.append(
            f"  minute {(p.time - t0) / 60:5.1f}  {p.kind:<8s} {p.exercise.name:<28s} unanswered at the end"
        )
    return "\n".join(lines)


def _print_sink_summary(sinks: Sinks) -> None:
    st = sinks.store
    parts = []
    if sinks.influx:
        parts.append(
            f"InfluxDB: {sinks.influx.sent} points written, {st.pending('influx')} waiting, "
            f"{st.counter('influx.rejected')} rejected"
        )
    if sinks.mqtt:
        parts.append(f"MQTT: {st.pending('mqtt')} messages waiting")
        if sinks.mqtt.last_error:
            s = sinks.mqtt.s
            parts.append(f"could not connect to MQTT broker {s.host}:{s.port}: {sinks.mqtt.last_error}")
    if sinks.lost:
        parts.append(f"not stored (state store failing): {sinks.lost}")
    if parts:
        print("\n" + "; ".join(parts))
