"""`stresswatch seed-demo`: a simulated month written into InfluxDB, so every Grafana panel has data at once.

Why a coarse path: a beat-level month is ~3 million beats and minutes through the pipeline. The
dashboard reads per-minute readings (`hrv`), prompts, daily summaries and strap status, so the
month is generated one minute at a time (collector/simulator.py `plan_days` + `simulate_minutes`:
a planned day of sleep, work with stress episodes, workouts, a strap-off shower) and each minute
is scored by the person's real stress model (processing/stress.py `StressModel.assess`, with its
own learning baseline) and fed to the real alert engine (alerts/engine.py). The last
`CHRONIC_DAYS` days are a chronic-stress period (lower nightly and resting lnRMSSD, more stress
episodes: `Chronic`), so the nightly lnRMSSD panel shows the 7-day mean leaving its normal band.
The person also takes a morning reading most days (`plan_mornings`: two missed a week, some
spoiled by movement or artifacts and retaken), handed to the engine as the service would
(`AlertEngine.morning`) and written as `morning` points, so the morning panel shows a dot per
valid morning, the 7-day line and the band; with readings, the engine judges lnRMSSD from them
(`hrv_source` auto), so the `daily` band is the mornings' too. The chronic period lowers the
mornings' lnRMSSD by 0.3 and widens their spread by half.
The simulated person answers prompts (`ANSWERS`, in turn) once the exercise would be over, so the
prompts table has answers and measured effects. Everything is written through the project's
InfluxDB writer and its outbox (sinks/influx.py), timestamps ending now. The outbox is a temporary
one: a month that could not be written is reported and not kept (a rerun makes a new one).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from alerts.daily import DailySummary
from alerts.engine import AlertEngine, Decision
from alerts.prompt import Prompt, PromptAction
from alerts.timeofday import at, day_of, day_start
from collector.simulator import (
    PHONE_SAYS,
    Chronic,
    Minute,
    MorningPerson,
    plan_days,
    plan_mornings,
    simulate_minutes,
)
from processing.morning import Failure, MorningResult
from processing.reading import MotionState, Reading
from processing.stress import StressModel
from sinks.influx import InfluxSink
from sinks.line_protocol import (
    baseline_line,
    daily_line,
    device_line,
    morning_line,
    prompt_line,
    reading_line,
)
from sinks.redact import redact_url
from sinks.store import StateStore
from stresswatch import config as configuration
from stresswatch.command import EXIT_NOT_DONE, EXIT_OK, CommandError, url_overrides
from stresswatch.config import Config

DAY_S = 86400.0
# The chronic-stress period: the last days of the month (ours: long enough for the 7-day mean to
# fall below the band, after the engine's 14-day warm-up has set the band).
CHRONIC_DAYS = 9
# The engine needs `warmup_days` (14) valid days for a band, and the chronic period comes after.
MIN_DAYS = 14 + CHRONIC_DAYS
# The simulated person's answers to prompts, in turn.
ANSWERS = (PromptAction.DONE, PromptAction.DONE, PromptAction.NOT_STRESSED, PromptAction.DISMISS)
# Strap status points: one every DEVICE_EVERY_S; the battery lasts BATTERY_DAYS of wear and is
# charged when it falls below 15 % (ours: the order of a Polar H10's 400 h).
DEVICE_EVERY_S = 300.0
BATTERY_DAYS = 16.0
# The morning plan's seed is the month's plus this: its stable weeks keep the 7-day mean inside the
# band, so the month shows the episode alone. A stable person's 7-day mean of ~5 mornings lies under
# mean - 0.5 SD on about 1 day in 8 (P(Z < -0.5 sqrt 5)), which is why the chronic rule asks for the
# last 3 mornings' confirmation (alerts/rules.py); with the month's own seed (1) it did on day 13.
MORNING_SEED = 3
# Points handed to the outbox per transaction.
CHUNK = 5000


@dataclass
class Seeded:
    """What a seeding wrote (points per measurement) and what it found."""

    points: dict
    days: int = 0
    valid_days: int = 0
    below_band_days: int = 0
    prompts: int = 0
    answered: int = 0
    effects: int = 0
    mornings: int = 0
    failed_mornings: int = 0
    sent: int = 0
    waiting: int = 0
    seconds: float = 0.0

    def line(self, person: str, url: str) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.points.items())
        return (
            f"seeded {self.days} days for {person} into {url} in {self.seconds:.1f} s: {counts} points; "
            f"{self.prompts} prompts ({self.answered} answered, {self.effects} effects measured); "
            f"{self.mornings} morning readings ({self.failed_mornings} failed); "
            f"{self.below_band_days} days with the 7-day lnRMSSD below its normal range; "
            f"{self.sent} written"
            + (
                f", {self.waiting} NOT written (InfluxDB unreachable or refusing them: see above)"
                if self.waiting
                else ""
            )
        )


def reading_of(m: Minute, model: StressModel, person: str) -> Reading:
    """A minute of the coarse simulator as a 60 s Reading, scored by the person's stress model. The
    simulated wearer has a phone that reports their activity (as the demo's does, collector/
    simulator.py `PHONE_SAYS`): moving in exercise, still otherwise, so the RR-only gate is off."""
    ln = math.log(m.rmssd_ms)
    motion = MotionState.MOVING if m.label in PHONE_SAYS else MotionState.STILL
    a = model.assess(m.t, m.hr_bpm, ln, 1.0, motion=motion)
    rr = 60000.0 / m.hr_bpm
    return Reading(
        person,
        m.t,
        60.0,
        round(m.hr_bpm),
        rr,
        m.hr_bpm,
        m.rmssd_ms,
        ln,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        0.0,
        a.activity,
        a.score,
        a.state,
        1.0,
        motion=motion,
    )


def battery_at(t: float, start: float) -> float:
    """A strap battery that drains linearly and is charged each time it gets low."""
    used = ((t - start) / DAY_S / BATTERY_DAYS) % 0.85
    return round(100.0 * (1.0 - used), 1)


def seed(
    cfg: Config, person: str, days: int, now: float | None = None, seed: int = 1, timezone: str | None = None
) -> Seeded:
    """Write `days` simulated days ending at `now` for `person` into the configured InfluxDB, in
    `timezone` (default: [service] timezone, else the machine's)."""
    wall0 = time.monotonic()
    if days < MIN_DAYS:
        raise ValueError(
            f"--days must be at least {MIN_DAYS} (14 days of warm-up for the normal range, then a "
            f"{CHRONIC_DAYS}-day chronic-stress period), got {days}"
        )
    influx = cfg.influx.settings()
    if influx is None:
        raise ValueError("no InfluxDB to seed: give --influx URL (or [influx] url in the config)")
    now = time.time() if now is None else now
    alerts = dataclasses.replace(cfg.alert_settings(), timezone=timezone or cfg.service.zone_name())
    # Day 0 starts at the local midnight `days - 1` days before today's.
    start = day_start(day_of(now, alerts.tz) - (days - 1), alerts.tz)
    chronic = Chronic(start=days - CHRONIC_DAYS)
    minutes = [m for m in simulate_minutes(plan_days(days, seed, chronic=chronic), seed, start) if m.t <= now]
    mornings = [
        r
        for r in morning_results(person, days, seed + MORNING_SEED, start, alerts.tz, chronic.start)
        if r.time <= now
    ]

    engine = AlertEngine(person, alerts, seed=zlib.crc32(person.encode()))
    model = cfg.person(person).model(alerts.tz)
    device = next((d.address or d.name or "strap" for d in cfg.devices if d.person == person), "simulator")

    with tempfile.TemporaryDirectory(prefix="stresswatch-seed-") as tmp:
        store = StateStore(Path(tmp) / "seed-demo.db", limits={"influx": 10 * len(minutes) + 10_000})
        sink = InfluxSink.from_settings(store, influx)
        out = _Writer(sink)
        result = Seeded(points={})
        prompts: dict[str, dict] = {}
        due: list[tuple[float, str, PromptAction]] = []
        next_device = next_baseline = start
        for m in minutes:
            while mornings and mornings[0].time <= m.t:
                _outputs(engine.morning(mornings.pop(0)), person, prompts, due, out, result, engine)
            r = reading_of(m, model, person)
            while next_device <= m.t:  # connected when the strap is worn (a minute ends in the slot)
                worn = m.t - next_device <= 60.0
                out.add(
                    "devices", device_line(person, device, next_device, battery_at(next_device, start), worn)
                )
                next_device += DEVICE_EVERY_S
            for at, pid, action in [d for d in due if d[0] <= r.time]:
                due.remove((at, pid, action))
                outputs = engine.respond(pid, action.value, None, at)
                out.add("prompts", prompt_line(prompts[pid], action.value), replace=True)
                result.answered += 1
                _outputs(outputs, person, prompts, due, out, result, engine)
            out.add("hrv", reading_line(r))
            if m.t >= next_baseline:  # as the service saves it: every 5 minutes of readings
                ref = model.baseline.reference(m.t)
                out.add(
                    "baseline",
                    baseline_line(
                        person, m.t, ref.ln_rmssd_mean, ref.ln_rmssd_sd, ref.hr_mean, ref.hr_sd, ref.samples
                    ),
                )
                next_baseline = m.t + 300.0
            _outputs(engine.feed(r), person, prompts, due, out, result, engine)
        out.drain()
        result.points = out.counts
        sink.flush(force=True, max_batches=10_000)
        result.sent = sink.sent
        result.waiting = store.pending("influx")
        sink.close()
        store.close()
    result.days = days
    result.seconds = time.monotonic() - wall0
    return result


def _outputs(
    outputs: list, person: str, prompts: dict, due: list, out: _Writer, result: Seeded, engine: AlertEngine
) -> None:
    for o in outputs:
        if isinstance(o, Prompt):
            body = o.to_dict()
            prompts[o.id] = body
            action = ANSWERS[result.prompts % len(ANSWERS)]
            at = o.time + (o.exercise.duration_s if action == PromptAction.DONE else 60.0)
            due.append((at, o.id, action))
            result.prompts += 1
            out.add("prompts", prompt_line(body))
        elif isinstance(o, DailySummary):
            d = o.to_dict()
            result.valid_days += o.valid
            # As the dashboard draws it: the 7-day mean under the band's lower edge.
            result.below_band_days += bool(
                o.hrv_band and o.hrv_week_mean is not None and o.hrv_week_mean < o.hrv_band[0]
            )
            out.add("daily", daily_line(person, d, day_start(o.day, engine.settings.tz)))
        elif isinstance(o, Decision) and o.what == "morning" and o.rule == "valid":
            result.mornings += 1
            out.add("morning", morning_line(person, o.data, o.time))
        elif isinstance(o, Decision) and o.what == "morning" and o.rule == "failed":
            result.mornings += 1
            result.failed_mornings += 1
        elif isinstance(o, Decision) and o.what == "effect" and o.data.get("id") in prompts:
            out.add("prompts", prompt_line(prompts[o.data["id"]], "done", o.data), replace=True)
            result.effects += 1


def morning_results(
    person: str, days: int, seed: int, start: float, tz, chronic_start: int
) -> list[MorningResult]:
    """The month's morning readings as the protocol would end them (coarse: the planned morning's
    value, no beats), in time order: a spoiled attempt fails with its reason, a retake follows 3
    minutes later."""
    chronic = Chronic(start=chronic_start, ln_drop=0.3, sd_factor=1.5)
    first = day_of(start + 1.0, tz)
    out = []
    for plan in plan_mornings(days, seed, MorningPerson(), chronic):
        t = at(first + plan.day, plan.minute, tz) + 120.0  # the end of a 60 s + 60 s reading
        for outcome in plan.attempts:
            if outcome == "ok":
                out.append(
                    MorningResult(
                        person,
                        t,
                        "auto",
                        "seated",
                        60.0,
                        True,
                        ln_rmssd=plan.ln_rmssd,
                        rmssd_ms=math.exp(plan.ln_rmssd),
                        hr_bpm=plan.hr_bpm,
                        n_beats=round(plan.hr_bpm),
                        artifact_pct=0.0,
                    )
                )
            else:
                why = {
                    "movement": "Your heart rate changed during the reading (did you move?).",
                    "artifacts": "A noisy signal: too many beats had to be corrected.",
                }[outcome]
                out.append(
                    MorningResult(person, t, "auto", "seated", 60.0, False, Failure(outcome).value, why)
                )
            t += 180.0
    return out


class _Writer:
    """Collects lines per measurement and hands them to the outbox in chunks (one transaction each)."""

    def __init__(self, sink: InfluxSink):
        self.sink = sink
        self.pending: list = []
        self.counts: dict[str, int] = {}

    def add(self, measurement: str, ln, replace: bool = False) -> None:
        if ln is None:
            return
        if replace:  # a newer version of a waiting point: keep the order, replace in the outbox
            self.drain()
            self.sink.add([ln], replace=True)
            return
        self.counts[measurement] = self.counts.get(measurement, 0) + 1
        self.pending.append(ln)
        if len(self.pending) >= CHUNK:
            self.drain()

    def drain(self) -> None:
        if self.pending:
            self.sink.add(self.pending)
            self.pending = []
            self.sink.flush()


def command(args) -> int:
    """`stresswatch seed-demo`: 0 when every point was written, 1 when some wait in the outbox
    (the server refused or was away)."""
    env = url_overrides(args)
    for key, value in (("API", args.api), ("BUCKET", args.bucket), ("ORG", args.org)):
        if value:
            env[f"STRESSWATCH_INFLUX__{key}"] = value
    cfg = configuration.load(args.config, env)
    person = args.person or (cfg.people[0].name if cfg.people else "me")
    try:
        result = seed(cfg, person, args.days, seed=args.seed)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(result.line(person, redact_url(cfg.influx.url)))
    return EXIT_OK if result.waiting == 0 else EXIT_NOT_DONE
