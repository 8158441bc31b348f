"""`stresswatch measure`: a morning reading on request, through the running service or by itself.

The service owns the strap (a strap talks to one central, and two processes on one state
directory would share its outbox), so this command never connects to a strap a service holds:
- a service runs on the state directory (its lock is held: sinks/store.py `StateLock`): the request
  goes to it on MQTT `<base>/<person>/measure` as `{"action": "start", "trigger": "cli",
  "request": <id>}` (QoS 1), and the answers to that id on the retained
  `<base>/<person>/measurement` are printed until the reading ends. Without `[mqtt] url` the
  service cannot be reached: one line says so;
- none runs: this command is the service for the person's strap (the same code: stresswatch/
  service.py with only that strap, its state, sinks and alert engine, holding the lock) until the
  reading ends, so the result reaches the engine, MQTT and InfluxDB exactly as from the service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import sys
import time
import uuid

from sinks.store import StateDirectoryBusy, StateLock, lock_holder
from stresswatch.command import CommandError
from stresswatch.config import Config, load

FINAL = ("done", "failed", "stopped", "refused")


class MeasureError(ValueError):
    """The reading cannot be asked for (one line says why and what to do)."""


def person_of(cfg: Config, name: str | None) -> str:
    """The person to measure: `name`, else the only person wearing a strap (else the only person)."""
    names = [p.name for p in cfg.people]
    if name is not None:
        if name not in names:
            raise MeasureError(f"--person {name!r} is not configured (people: {', '.join(names)})")
        return name
    wearers = sorted({d.person for d in cfg.devices}) or names
    if len(wearers) != 1:
        raise MeasureError(f"say whose reading with --person ({', '.join(wearers)})")
    return wearers[0]


def command(args) -> int:
    """`stresswatch measure`: exit 0 for a valid reading, 1 for a failed one (the reason is
    printed), 2 for bad input (`CommandError`)."""
    cfg = load(args.config)
    protocol = cfg.morning.protocol()
    timeout = args.timeout or protocol.wait_s + protocol.duration_s + 60.0
    try:
        return run(cfg, person_of(cfg, args.person), timeout)
    except MeasureError as exc:
        raise CommandError(str(exc)) from None


def run(cfg: Config, person: str, timeout_s: float, out=sys.stdout) -> int:
    """Take the reading; 0 when valid, 1 when it failed or no answer came in `timeout_s`."""
    directory = os.path.expanduser(cfg.state.directory)
    pid = lock_holder(directory)
    if pid is not None:
        return through_service(cfg, person, pid, timeout_s, out)
    return by_itself(cfg, person, timeout_s, out)


def describe(progress: dict) -> str | None:
    """One line for a progress message (None: nothing new to say)."""
    status = progress.get("status")
    if status == "waiting":
        return "waiting for the strap's first beats (put it on, electrodes moistened)"
    if status == "stabilising":
        return (
            f"settling: {progress.get('seconds_left', 0):.0f} s left; sit or lie still and breathe normally"
        )
    if status == "measuring":
        return f"measuring: {progress.get('seconds_left', 0):.0f} s left; keep still"
    if status == "done":
        r = progress.get("result") or {}
        if r.get("ln_rmssd") is None:
            return f"done: {progress.get('note', '')}"
        line = (
            f"morning reading: lnRMSSD {r['ln_rmssd']:.2f} (RMSSD {r['rmssd_ms']:.0f} ms), "
            f"heart rate {r['hr_bpm']:.0f} bpm"
        )
        if r.get("ln_rmssd_7d") is not None:
            line += f"; 7-day mean {r['ln_rmssd_7d']:.2f}"
        if r.get("normal_low") is not None:
            line += f", normal range {r['normal_low']:.2f}-{r['normal_high']:.2f}"
        if r.get("cv_7d") is not None:
            line += f", CV {r['cv_7d']:.1f} %"
        if progress.get("note"):
            line += f" ({progress['note']})"
        return line
    if status in ("failed", "stopped", "refused"):
        return f"morning reading {status}: {progress.get('reason', '')}"
    return None


def _outcome(progress: dict) -> int:
    result = progress.get("result") or {}
    return 0 if progress.get("status") == "done" and result.get("ln_rmssd") is not None else 1


def through_service(cfg: Config, person: str, pid: int, timeout_s: float, out) -> int:
    """Ask the running service (PID `pid`) over MQTT and print its answers to this request."""
    settings = cfg.mqtt.settings()
    if settings is None:
        raise MeasureError(
            f"a stresswatch service (PID {pid}) runs on {cfg.state.directory} and holds the strap, "
            "but MQTT is off ([mqtt] url), so this command cannot ask it: set [mqtt] url, or stop "
            "the service and run `stresswatch measure` again"
        )
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from sinks.mqtt import authenticate

    request = uuid.uuid4().hex[:16]
    base = f"{settings.base_topic}/{person}"
    answers: queue.Queue = queue.Queue()
    subscribed = queue.Queue()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"stresswatch-measure-{request}", protocol=mqtt.MQTTv5
    )
    authenticate(client, settings)

    def on_connect(c, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            subscribed.put(f"the broker refused the connection: {reason_code}")
            return
        c.subscribe(f"{base}/measurement", qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        subscribed.put(None)

    def on_message(c, userdata, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("request") == request:
            answers.put(body)

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
    except OSError as exc:
        raise MeasureError(
            f"cannot reach the MQTT broker {settings.host}:{settings.port} to ask the running "
            f"service: {exc.strerror or exc}"
        ) from None
    client.loop_start()
    try:
        try:
            problem = subscribed.get(timeout=15)
        except queue.Empty:
            problem = "no answer from the broker within 15 s"
        if problem:
            raise MeasureError(f"MQTT broker {settings.host}:{settings.port}: {problem}")
        body = json.dumps({"action": "start", "trigger": "cli", "request": request})
        client.publish(f"{base}/measure", body, qos=1).wait_for_publish(timeout=15)
        print(
            f"asked the running service (PID {pid}) for a morning reading of {person}", file=out, flush=True
        )
        return _follow(answers, timeout_s, out)
    finally:
        client.loop_stop()
        client.disconnect()


def _follow(answers: queue.Queue, timeout_s: float, out) -> int:
    """Print the progress of one reading until it ends (exit code) or `timeout_s` pass (1)."""
    deadline = time.monotonic() + timeout_s
    said = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            print("no end of the reading came in time; is the service still running?", file=out, flush=True)
            return 1
        try:
            progress = answers.get(timeout=min(left, 1.0))
        except queue.Empty:
            continue
        line = describe(progress)
        key = (progress.get("status"), int(progress.get("seconds_left", 0)) // 10)
        if line and key != said:
            said = key
            print(line, file=out, flush=True)
        if progress.get("status") in FINAL:
            return _outcome(progress)


def by_itself(cfg: Config, person: str, timeout_s: float, out) -> int:
    """No service runs: run it for `person`'s strap until the reading ends."""
    devices = [d for d in cfg.devices if d.person == person]
    if not devices:
        raise MeasureError(
            f"no [[devices]] strap is configured for {person!r}; `stresswatch scan` lists nearby ones"
        )
    from collector.ble import bluetooth_problem
    from stresswatch.service import Service

    problem = asyncio.run(bluetooth_problem(cfg.bluetooth.adapter))
    if problem:
        raise MeasureError(problem)
    answers: queue.Queue = queue.Queue()
    own = dataclasses.replace(cfg, devices=devices)
    try:
        with StateLock(os.path.expanduser(cfg.state.directory)):
            print(
                f"no service runs: connecting to {person}'s strap for a morning reading", file=out, flush=True
            )

            async def main() -> int:
                stop = asyncio.Event()
                service = Service.with_straps(
                    own, on_measurement=lambda who, p: who == person and answers.put(p)
                )
                task = asyncio.create_task(service.run(stop))
                await asyncio.sleep(0)
                service.measure(person, "cli")
                try:
                    return await asyncio.to_thread(_follow, answers, timeout_s, out)
                finally:
                    stop.set()
                    await task

            return asyncio.run(main())
    except StateDirectoryBusy as exc:
        raise MeasureError(f"{exc}: run `stresswatch measure` again to ask it") from None
