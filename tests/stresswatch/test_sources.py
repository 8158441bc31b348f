"""The service's sources: the Bluetooth straps' notifications reach the pipeline through a queue."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_bluez import FakeBlueZ, FakeStrap, PrivateSystemBus

from collector.ble import DeviceSpec, StrapLink
from collector.events import Beat
from stresswatch.sources import StrapSource

H10 = "A0:9E:1A:00:00:01"


@pytest.fixture
def system_bus(monkeypatch):
    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    bus = PrivateSystemBus()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    yield bus
    bus.stop()


def hr_payload(rr_1024: list[int]) -> bytearray:
    """A Heart Rate Measurement (0x2A37): heart rate 72, RR intervals in 1/1024 s."""
    return bytearray([0x10, 72, *b"".join(rr.to_bytes(2, "little") for rr in rr_1024)])


def test_a_slow_sink_never_runs_inside_a_notification_so_a_burst_is_decoded_as_it_arrives(system_bus):
    """bleak calls the notification callback once per notification, several in one turn of the
    event loop when they arrive together. The callback only decodes and queues: the sink (here
    one whose every write blocks the loop for 50 ms) takes the events from the queue afterwards,
    so it never runs in the middle of a burst, and no beat is lost or reordered."""
    burst = [hr_payload([1000 + k, 1010 + k]) for k in range(20)]  # the strap itself sends 775-864
    decoded = [0]  # notifications of the burst the callback has handled
    writes: list[tuple[int, list]] = []  # (burst notifications handled when the sink ran, its events)

    def slow_sink(events):
        writes.append((decoded[0], events))
        time.sleep(0.05)  # a sink that blocks (a slow disk, a stalled socket)

    async def scenario():
        bluez = FakeBlueZ(system_bus.address)
        await bluez.start()
        heartbeats = asyncio.create_task(bluez.run_heartbeats(0.2))
        bluez.add(FakeStrap(H10, "Polar H10 A", [820 + (i * 37) % 90 - 45 for i in range(97)]))
        link = StrapLink(DeviceSpec("ann", address=H10), emit=None, watchdog_s=3.0, scan_window_s=2.0)
        source, stop = StrapSource([link]), asyncio.Event()
        task = asyncio.create_task(source.run(slow_sink, stop))
        deadline = time.monotonic() + 20
        while (
            not any(isinstance(e, Beat) for _, events in writes for e in events)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        assert writes, "the strap's beats never reached the sink"
        before = len(writes)
        for payload in burst:  # as bleak hands over notifications that arrived together
            link._on_notification(None, payload)
            decoded[0] += 1
        while not any(n == len(burst) for n, _ in writes[before:]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task
        heartbeats.cancel()
        await asyncio.gather(heartbeats, return_exceptions=True)
        return before

    before = asyncio.run(scenario())
    during = [n for n, _ in writes[before:] if 0 < n < len(burst)]
    assert during == [], f"the sink ran inside the burst, after notifications {during}"
    burst_rr = [
        round(e.rr_ms * 1.024)
        for n, events in writes[before:]
        for e in events
        if n == len(burst) and isinstance(e, Beat) and 1000 <= round(e.rr_ms * 1.024) < 1030
    ]
    assert burst_rr == [rr for k in range(len(burst)) for rr in (1000 + k, 1010 + k)]
