"""Where the service's events come from: Bluetooth straps, a paced replay of a recording, the simulator.

A `Source` runs as one asyncio task and hands lists of events (`Beat`, `Gap`, `HeartRate`) to `emit`; the
service (stresswatch/service.py) owns everything after that. `finite` sources (a replay) end by
themselves, and the service stops when every finite source has ended and no live source runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from collector.artifacts import inject
from collector.ble import DeviceSpec, StrapLink
from collector.events import Acceleration, Beat, Event, Gap, Motion
from collector.phone_activity import motion_from_phone
from collector.retry import sleep_or_stop
from collector.simulator import demo_day, phone_reports, simulate
from stresswatch.command import EXIT_OK, CommandError
from stresswatch.report import Span

log = logging.getLogger("stresswatch.sources")

Emit = Callable[[list[Event]], None]
# 2026-01-01 08:00 UTC: a fixed clock keeps the demo day reproducible.
DEMO_START = 1_767_254_400.0
# Events handed over per turn of the event loop when a replay runs as fast as possible.
REPLAY_CHUNK = 500
# The longest a paced replay sleeps before it looks at the stop event again.
STOP_LATENCY_S = 0.5


class Source(Protocol):
    finite: bool

    async def run(self, emit: Emit, stop: asyncio.Event) -> None: ...


class ReplaySource:
    """Replays recorded events, `pace` wall seconds per recorded second (0 = as fast as possible)."""

    finite = True

    def __init__(
        self, events: Sequence[Event], pace: float = 0.0, clock: Callable[[], float] = time.monotonic
    ):
        self.events = events
        self.pace = pace
        self.clock = clock

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        if not self.events:
            return
        if self.pace <= 0:
            for k in range(0, len(self.events), REPLAY_CHUNK):
                if stop.is_set():
                    return
                emit(list(self.events[k : k + REPLAY_CHUNK]))
                await asyncio.sleep(0)
            return
        await self._paced(emit, stop)

    async def _paced(self, emit: Emit, stop: asyncio.Event) -> None:
        """Each event handed over at its time, from a plain timer callback: one timer per event,
        as a Bluetooth notification is one callback per beat, but no future and no task step: with
        1000 paced sources a task sleeping per event cost 18-19 us per event, these timers 12-13 us
        (the event loop's own work included). A timer waits at most STOP_LATENCY_S, so a stop is
        still seen quickly."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        events, pace, clock = self.events, self.pace, self.clock
        t0, wall0 = _time_of(events[0]), clock()
        k, handle = 0, None

        def tick() -> None:
            nonlocal k, handle
            try:
                while k < len(events) and not stop.is_set():
                    ev = events[k]
                    ahead = (_time_of(ev) - t0) * pace - (clock() - wall0)
                    if ahead > 0.002:
                        handle = loop.call_later(min(ahead, STOP_LATENCY_S), tick)
                        return
                    k += 1
                    emit([ev])
                if not done.done():
                    done.set_result(None)
            except Exception as exc:  # noqa: BLE001  (any failure of emit fails the source's task, as before)
                if not done.done():
                    done.set_exception(exc)

        tick()
        try:
            await done
        finally:
            if handle is not None:
                handle.cancel()


class StrapSource:
    """The configured Bluetooth straps, one `StrapLink` task each, restarted if one ever fails.

    A strap's notification callback only decodes and queues its events (as bleak's examples
    do: bleak calls it from its D-Bus reader, several in one turn of the loop when notifications
    arrive together); one task takes them from the queue, in order, and hands them to `emit`
    (the pipeline and the sinks). So a slow pipeline or sink never runs inside a callback, and
    a burst of notifications is decoded as it arrives. What is queued at a stop is still handed
    over. The links' status reports (connection, battery, whether RR intervals come) take the
    same queue, so each is handled after the events that came before it."""

    finite = False

    def __init__(self, links: list[StrapLink], restart_after_s: float = 1.0):
        self.links = links
        self.restart_after_s = restart_after_s
        self.restarts = 0

    @classmethod
    def from_specs(cls, specs: list[DeviceSpec], status: Callable[[DeviceSpec, dict], None], **link_options):
        links = [
            StrapLink(spec, emit=None, status=lambda st, spec=spec: status(spec, st), **link_options)
            for spec in specs
        ]
        return cls(links)

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        # (status callback, status) or (None, events), in the order the links produced them
        queue: asyncio.Queue[tuple] = asyncio.Queue()
        statuses = [link.status for link in self.links]
        for link, status in zip(self.links, statuses, strict=True):
            link.emit = lambda events: queue.put_nowait((None, events))
            # a status goes through the queue too: it speaks of the beats counted before it
            link.status = lambda st, status=status: queue.put_nowait((status, st))
        log.info("collecting from %d device(s)", len(self.links))
        consumer = asyncio.create_task(self._hand_over(queue, emit))
        try:
            await asyncio.gather(*(self._supervise(link, stop) for link in self.links))
        finally:
            consumer.cancel()
            self._take(queue, emit, [])
            for link, status in zip(self.links, statuses, strict=True):
                link.status = status

    @classmethod
    async def _hand_over(cls, queue: asyncio.Queue[tuple], emit: Emit) -> None:
        """What the links queued to `emit` and their status callbacks, all that waits at once."""
        while True:
            cls._take(queue, emit, [await queue.get()])

    @staticmethod
    def _take(queue: asyncio.Queue[tuple], emit: Emit, items: list[tuple]) -> None:
        """Hand over `items` and whatever else waits: consecutive event lists in one `emit` call.
        A failure after the callback (pipeline, sinks) costs these events, never the strap's link."""
        while not queue.empty():
            items.append(queue.get_nowait())
        events: list[Event] = []
        for status, payload in items:
            if status is None:
                events.extend(payload)
                continue
            if events:
                StrapSource._emit(emit, events)
                events = []
            try:
                status(payload)
            except Exception:
                log.exception("error handling a strap's status")
        if events:
            StrapSource._emit(emit, events)

    @staticmethod
    def _emit(emit: Emit, events: list[Event]) -> None:
        try:
            emit(events)
        except Exception:
            log.exception("error handling %d event(s) from the straps", len(events))

    async def _supervise(self, link: StrapLink, stop: asyncio.Event) -> None:
        """A link's loop handles every Bluetooth error itself; anything escaping it is a bug,
        logged with its traceback, and the link starts again rather than going silent."""
        while not stop.is_set():
            try:
                await link.run(stop)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.restarts += 1
                log.exception("%s: the collector task failed; restarting it", link.spec.label)
                await sleep_or_stop(stop, self.restart_after_s)


def write_simulated_day(args) -> int:
    """`stresswatch simulate OUT`: the simulated day (`simulated_day`) as a CSV recording that
    `analyze` and `demo --recording` read: a comment naming the phases, then time_s,rr_ms."""
    beats, spans = simulated_day(args.seed, args.artifacts, "me")
    try:
        with open(args.out, "w") as fh:
            fh.write(
                "# stresswatch simulated day: "
                + ", ".join(f"{s.name} {(s.end - s.start) / 60:g} min" for s in spans)
                + "\n"
            )
            fh.write("time_s,rr_ms\n")
            fh.writelines(f"{b.t:.4f},{b.rr_ms:.4f}\n" for b in beats)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {len(beats)} beats to {args.out}")
    return EXIT_OK


def simulated_phone(person: str) -> list[Motion]:
    """What the demo person's phone says during the demo day, once a minute (collector/simulator.py
    `phone_reports`), as the Motion the service makes of a real phone's messages."""
    return [motion_from_phone(person, activity, t) for t, activity in phone_reports(demo_day(), DEMO_START)]


def simulated_day(seed: int, artifacts: float, person: str) -> tuple[list[Beat], list[Span]]:
    """Beats of the demo day (artifacts injected at `artifacts` per beat and kind) and its phases."""
    script = demo_day()
    sim = simulate(script, seed=seed, start=DEMO_START)
    times = np.asarray([DEMO_START] + [b.t for b in sim])
    if artifacts > 0:
        times, _ = inject(times, artifacts, seed=seed)
    beats = [
        # RR in whole 1/1024 s units, as a strap reports them
        Beat(person, "simulator", float(t), float(round((t - p) * 1024) / 1.024), source="simulator")
        for p, t in itertools.pairwise(times)
    ]
    spans, t = [], DEMO_START
    for ph in script:
        spans.append(Span(ph.name, t, t + ph.duration_s, ph.label))
        t += ph.duration_s
    return beats, spans


def shifted(events: Sequence[Event], dt: float) -> list[Event]:
    """`events` `dt` seconds later (a replay moved to another time; RR intervals unchanged)."""

    def moved(e: Event) -> Event:
        if isinstance(e, Gap):
            return dataclasses.replace(e, start=e.start + dt, end=e.end + dt)
        if isinstance(e, Acceleration):
            return dataclasses.replace(e, t=tuple(t + dt for t in e.t))
        return dataclasses.replace(e, t=e.t + dt)  # Beat, HeartRate, Motion

    return [moved(e) for e in events]


def _time_of(ev: Event) -> float:
    if isinstance(ev, Gap):
        return ev.start
    return ev.t[0] if isinstance(ev, Acceleration) else ev.t
