"""The Bluetooth collector end to end: unmodified bleak against a fake BlueZ on a private bus."""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_bluez import FakeBlueZ, FakeStrap, PrivateSystemBus, abandon_connection

from collector import pmd
from collector.beat_timing import TimingCounts
from collector.ble import BluetoothUnavailable, DeviceSpec, StrapLink, bluetooth_problem, find_connected, scan
from collector.events import Acceleration, Beat, Gap, HeartRate, Motion, MotionKind

H10 = "A0:9E:1A:00:00:01"
TICKR = "C8:2B:96:00:00:02"
BAND = "F0:13:C3:00:00:03"  # an arm band that sends heart rate without RR intervals


@pytest.fixture
def system_bus(monkeypatch):
    if not Path("/usr/bin/dbus-daemon").exists():
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    bus = PrivateSystemBus()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    yield bus
    bus.stop()


def rr_script(n=97, base=820):
    return [base + (i * 37) % 90 - 45 for i in range(n)]  # ~73 bpm with beat-to-beat variation


class Harness:
    """A fake BlueZ with straps, and StrapLinks collecting their events."""

    def __init__(self, bus: PrivateSystemBus, period: float = 0.5):
        self.bluez = FakeBlueZ(bus.address)
        self.period = period
        self.events: dict[str, list] = {}
        self.statuses: dict[str, list] = {}
        self.links: list[StrapLink] = []
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self):
        await self.bluez.start()
        self.tasks.append(asyncio.create_task(self.bluez.run_heartbeats(self.period)))
        return self

    def link(self, spec: DeviceSpec, **kw) -> StrapLink:
        kw = {"watchdog_s": 3.0, "scan_window_s": 2.0, **kw}
        link = StrapLink(
            spec,
            emit=self.events.setdefault(spec.label, []).extend,
            status=self.statuses.setdefault(spec.label, []).append,
            **kw,
        )
        self.links.append(link)
        self.tasks.append(asyncio.create_task(link.run(self.stop)))
        return link

    async def __aexit__(self, *exc):
        self.stop.set()
        if self.tasks:  # a moment to close their links themselves; cancelled if they take longer
            await asyncio.wait(self.tasks, timeout=0.1)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def beats(self, label: str) -> list[Beat]:
        return [e for e in self.events.get(label, []) if isinstance(e, Beat)]

    def samples(self, label: str) -> list[Acceleration]:
        return [e for e in self.events.get(label, []) if isinstance(e, Acceleration)]

    def n_samples(self, label: str) -> int:
        return sum(len(a.t) for a in self.samples(label))


async def until(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return False


def test_scan_finds_the_strap_and_ignores_a_non_hr_device(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            h.bluez.add(FakeStrap(H10, "Polar H10 12345678", rr_script()))
            h.bluez.add(FakeStrap("11:22:33:44:55:66", "Kitchen thermometer", is_hr=False))
            return await scan(timeout_s=2.0, details=True)

    rows = asyncio.run(scenario())
    assert [r["address"] for r in rows] == [H10]
    row = rows[0]
    assert row["name"] == "Polar H10 12345678" and row["model"] == "H10" and row["firmware"] == "5.0.0"
    assert row["battery_pct"] == 87 and row["sends_rr"] is True


def test_scan_details_say_which_strap_sends_rr_which_sends_heart_rate_alone_and_which_sent_nothing(
    system_bus,
):
    async def scenario():
        async with Harness(system_bus) as h:
            h.bluez.add(FakeStrap(H10, "Polar H10 12345678", rr_script()))
            h.bluez.add(FakeStrap(BAND, "HRM band", sends_rr=False, hr_bpm=72))
            h.bluez.add(FakeStrap(TICKR, "TICKR off the skin", rr_script(), worn=False))
            return await scan(timeout_s=2.0, details=True)

    rows = {r["address"]: r for r in asyncio.run(scenario())}
    assert rows[H10]["sends_rr"] is True and rows[H10]["hr_bpm"] == 70
    assert rows[BAND]["sends_rr"] is False and rows[BAND]["hr_bpm"] == 72
    assert rows[TICKR]["sends_rr"] is None and rows[TICKR]["hr_bpm"] is None  # not worn: unknown, not "no"


def test_a_strap_sending_heart_rate_without_rr_gives_heart_rates_a_status_and_one_log_line(
    system_bus, caplog
):
    async def scenario():
        async with Harness(system_bus) as h:
            h.bluez.add(FakeStrap(BAND, "HRM band", sends_rr=False, hr_bpm=72))
            link = h.link(DeviceSpec("ann", address=BAND))
            assert await until(
                lambda: sum(isinstance(e, HeartRate) for e in h.events.get(BAND, [])) >= 20, 30
            )
            return h, link

    h, link = asyncio.run(scenario())
    rates = [e for e in h.events[BAND] if isinstance(e, HeartRate)]
    assert not any(isinstance(e, Beat) for e in h.events[BAND])
    assert {(e.person, e.device, e.hr_bpm) for e in rates} == {("ann", BAND, 72.0)}
    assert [e.t for e in rates] == sorted(e.t for e in rates)
    said_rr = [s["sends_rr"] for s in h.statuses[BAND]]
    k = said_rr.index(False)
    found = h.statuses[BAND][k]  # a status as soon as the link found out
    assert said_rr[:k] == [None] * k and set(said_rr[k:]) == {False}
    assert found["connected"] is True and found["battery_pct"] == 87 and found["model"] == "H10"
    assert link.timer.sends_rr is False
    said = [r.getMessage() for r in caplog.records if "without RR intervals" in r.getMessage()]
    assert said == [
        (
            f"{BAND}: the strap sends heart rate without RR intervals: heart rate is recorded, "
            "but HRV and the stress state are unavailable from it"
        )
    ]


def test_two_straps_for_two_people_stream_at_once_and_no_beat_is_lost_or_doubled(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            a = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script()))
            b = h.bluez.add(FakeStrap(TICKR, "TICKR B", rr_script(base=700)))
            h.link(DeviceSpec("ann", address=H10))
            h.link(DeviceSpec("bob", name="tickr*"))
            assert await until(lambda: len(h.beats(H10)) > 10 and len(h.beats("tickr*")) > 10, 20)
            await asyncio.sleep(3)
            return h, a, b

    h, a, b = asyncio.run(scenario())
    ann, bob = h.beats(H10), h.beats("tickr*")
    assert {x.person for x in ann} == {"ann"} and {x.person for x in bob} == {"bob"}
    assert [round(x.rr_ms * 1.024) for x in ann] == a.sent_rr
    assert [round(x.rr_ms * 1.024) for x in bob] == b.sent_rr
    assert all(y.t > x.t for x, y in zip(ann, ann[1:]))


DROPS = 3  # each drop is the same path (disconnect, Gap, backoff, scan, connect); 3 show it repeats


def test_the_link_drops_repeatedly_and_collection_resumes_every_time(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script()))
            link = h.link(DeviceSpec("ann", address=H10))
            for _ in range(DROPS):
                assert await until(lambda: link.streaming.is_set(), 30)
                await asyncio.sleep(1.0)
                strap.link_lost()
                assert await until(lambda: not link.streaming.is_set(), 5)
            assert await until(lambda: link.streaming.is_set(), 30)
            await asyncio.sleep(1.0)
            return h, strap, link

    h, strap, link = asyncio.run(scenario())
    received = [round(x.rr_ms * 1.024) for x in h.beats(H10)]
    lat = link.reconnect_latencies
    print(
        f"\nlink drops: {DROPS}; sessions {link.counts.sessions}, reconnect latency median "
        f"{statistics.median(lat):.2f} s, max {max(lat):.2f} s; beats sent {len(strap.sent_rr)}, "
        f"received {len(received)}, duplicates {link.timer.counts.duplicates}"
    )
    assert len(lat) == DROPS and max(lat) < 8
    assert received == strap.sent_rr  # none lost, none doubled, across every reconnect
    assert sum(isinstance(e, Gap) for e in h.events[H10]) == DROPS


def test_bluetoothd_exits_and_comes_back_the_watchdog_reconnects(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script()))
            link = h.link(DeviceSpec("ann", address=H10), watchdog_s=2.0)
            assert await until(lambda: link.streaming.is_set(), 20)
            await h.bluez.exit()  # no disconnect signal reaches bleak
            # The 2 s watchdog must expire; it reads time.monotonic, not the link's injectable clock.
            await asyncio.sleep(3)
            n_before = len(h.beats(H10))
            await h.bluez.start()
            assert await until(lambda: len(h.beats(H10)) > n_before + 3, 30)
            return h, strap, link

    h, strap, link = asyncio.run(scenario())
    assert link.counts.watchdog >= 1
    assert [round(x.rr_ms * 1.024) for x in h.beats(H10)] == strap.sent_rr


def test_malformed_payloads_between_good_ones_are_counted_not_raised(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), junk_every=3))
            link = h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: strap.sent_junk >= 4, 30)
            await until(lambda: link.counts.malformed == strap.sent_junk, 5)
            return h, strap, link

    h, strap, link = asyncio.run(scenario())
    assert link.counts.malformed == strap.sent_junk and link.counts.callback_errors == 0
    assert [round(x.rr_ms * 1.024) for x in h.beats(H10)] == strap.sent_rr


def test_a_notification_whose_flags_announce_rr_but_carry_none_is_counted_as_malformed(caplog):
    events = []
    link = StrapLink(DeviceSpec("ann", address=H10), emit=events.extend, clock=lambda: 1000.0)
    link._on_notification(None, bytearray([0x10, 0x48]))  # RR flag, heart rate 72, no RR value
    assert link.counts.malformed == 1 and link.counts.callback_errors == 0
    assert events == [] and link.timer.counts == TimingCounts()  # the timer never saw it
    assert "malformed heart rate payload 10 48: flags announce RR intervals" in caplog.text


def test_battery_and_device_information_become_device_status(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), battery=87))
            h.link(DeviceSpec("ann", address=H10), battery_every_s=1.0)
            assert await until(lambda: any(s.get("battery_pct") == 87 for s in h.statuses.get(H10, [])), 20)
            strap.battery = 86
            assert await until(lambda: h.statuses[H10][-1].get("battery_pct") == 86, 10)
            return h, strap

    h, strap = asyncio.run(scenario())
    last = h.statuses[H10][-1]
    assert last["connected"] is True and last["model"] == "H10" and last["manufacturer"] == "Polar Electro Oy"
    assert strap.battery_reads >= 2


def test_a_strap_switched_off_and_on_collects_again_within_seconds_of_advertising(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script()))
            link = h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: link.streaming.is_set(), 20)
            strap.powered = False
            strap.link_lost()
            await asyncio.sleep(8)  # several scan windows with nothing advertising
            strap.powered = True
            t_on = time.monotonic()
            assert await until(lambda: link.streaming.is_set(), 30)
            return time.monotonic() - t_on

    back_after = asyncio.run(scenario())
    print(f"\nstrap switched back on: streaming again after {back_after:.1f} s")
    assert back_after < 6


# -- a strap left connected in BlueZ by a client that died (a run killed while connected) --------

LEFT_CONNECTED = "already connected in BlueZ (left by a previous run?); disconnecting and reconnecting"


def test_find_connected_picks_the_configured_strap_among_those_bluez_has_connected_on_the_adapter(system_bus):
    polar_c, polar_d = "A0:9E:1A:00:00:03", "A0:9E:1A:00:00:04"

    async def scenario():
        bluez = FakeBlueZ(system_bus.address, adapters=("hci0", "hci1"))
        await bluez.start()
        left = [
            bluez.add(FakeStrap(H10, "Polar H10 A", rr_script())),
            bluez.add(FakeStrap(TICKR, "TICKR B", rr_script())),
            bluez.add(FakeStrap(polar_c, "Polar H10 C", rr_script(), adapter="hci1")),
        ]
        bluez.add(FakeStrap(polar_d, "Polar H10 D", rr_script()))  # in range, not connected
        for strap in left:
            await abandon_connection(system_bus.address, strap)

        async def found(spec, adapter="hci0", skip=()):
            device = await find_connected(spec, adapter, skip)
            return device and (device.address, device.name)

        return [
            await found(DeviceSpec("ann", address=H10)),
            await found(DeviceSpec("ann", address=H10.lower())),
            await found(DeviceSpec("ann", name="polar h10*")),  # C is on the other adapter, D not connected
            await found(DeviceSpec("ann", name="polar h10*"), adapter="hci1"),
            await found(DeviceSpec("ann", address=H10), adapter="hci1"),
            await found(DeviceSpec("ann", name="TICKR*")),
            await found(DeviceSpec("ann", address=polar_d)),  # advertising: the scan's to find
            await found(DeviceSpec("ann", name="polar h10*"), skip={H10}),  # one this process holds
        ]

    assert asyncio.run(scenario()) == [
        (H10, "Polar H10 A"),
        (H10, "Polar H10 A"),
        (H10, "Polar H10 A"),
        (polar_c, "Polar H10 C"),
        None,
        (TICKR, "TICKR B"),
        None,
        None,
    ]


@pytest.mark.parametrize(
    "spec",
    [DeviceSpec("ann", address=H10), DeviceSpec("ann", name="polar h10*")],
    ids=["by address", "by name pattern"],
)
def test_a_strap_left_connected_by_a_dead_client_is_disconnected_and_connected_afresh(
    system_bus, caplog, spec
):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script()))
            await abandon_connection(system_bus.address, strap)
            assert await until(
                lambda: not strap.hr_char.notifying, 5
            )  # BlueZ ended the dead client's session
            link = h.link(spec)
            assert await until(lambda: len(h.beats(spec.label)) > 5, 20)
            return h, strap, link

    h, strap, link = asyncio.run(scenario())
    assert f"{spec.label}: found {H10} {LEFT_CONNECTED}" in caplog.text
    assert link.counts.left_connected == 1 and link.counts.failed_connects == 0
    assert strap.connections == 2  # the dead client's, then ours after Disconnect
    assert h.bluez.adapters["hci0"].discoveries == 0  # connected straight away, no scan
    received = [round(x.rr_ms * 1.024) for x in h.beats(spec.label)]
    assert received == strap.sent_rr[-len(received) :]  # everything sent since we subscribed


def test_a_strap_left_connected_that_cannot_be_disconnected_is_used_as_it_is(system_bus, caplog):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), refuses_disconnect=True))
            await abandon_connection(system_bus.address, strap)
            link = h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: len(h.beats(H10)) > 5, 20)
            return strap, link

    strap, link = asyncio.run(scenario())
    assert f"{H10}: found {H10} {LEFT_CONNECTED}" in caplog.text
    assert f"{H10}: could not disconnect {H10} (BleakDBusError: " in caplog.text
    assert "; using its connection" in caplog.text
    assert link.counts.left_connected == 1 and strap.connections == 1  # the dead client's link, reused


def test_a_strap_another_link_streams_from_is_not_taken_for_one_left_connected(system_bus, caplog):
    async def scenario():
        async with Harness(system_bus) as h:
            a = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script()))
            b = h.bluez.add(FakeStrap("A0:9E:1A:00:00:05", "Polar OH1 B", rr_script(), powered=False))
            ann = h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: ann.streaming.is_set(), 20)
            scans = h.bluez.adapters["hci0"].discoveries
            bob = h.link(DeviceSpec("bob", name="polar*"))  # matches ann's strap too
            # bob has looked at BlueZ's connected devices and scanned, twice over, while A streams to ann
            assert await until(lambda: h.bluez.adapters["hci0"].discoveries >= scans + 2, 20)
            b.powered = True
            assert await until(lambda: bob.streaming.is_set(), 20)
            return h, a, b, ann, bob

    h, a, b, ann, bob = asyncio.run(scenario())
    assert LEFT_CONNECTED not in caplog.text
    assert ann.counts.left_connected == bob.counts.left_connected == 0
    assert a.connections == 1 and b.connections == 1
    assert [round(x.rr_ms * 1.024) for x in h.beats(H10)] == a.sent_rr  # ann's stream never broke


def test_without_a_system_bus_scan_names_the_missing_socket_and_the_package(tmp_path, monkeypatch):
    socket = tmp_path / "no-such-dir" / "system_bus_socket"
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={socket}")
    want = f"no D-Bus system bus at {socket}: install and start dbus (apt install dbus)"
    assert asyncio.run(bluetooth_problem()) == want
    with pytest.raises(BluetoothUnavailable) as raised:
        asyncio.run(scan(timeout_s=1.0))
    assert str(raised.value) == want


def test_a_system_bus_without_bluez_says_to_install_and_start_it(system_bus):
    want = "BlueZ (org.bluez) is not running on the system bus: apt install bluez; systemctl start bluetooth"
    assert asyncio.run(bluetooth_problem()) == want
    with pytest.raises(BluetoothUnavailable, match="BlueZ"):
        asyncio.run(scan(timeout_s=1.0))


def test_with_bluez_running_only_a_missing_adapter_is_a_problem(system_bus):
    async def scenario():
        async with Harness(system_bus):
            return [await bluetooth_problem(a) for a in (None, "hci0", "hci1")]

    assert asyncio.run(scenario()) == [
        None,
        None,
        "Bluetooth adapter hci1 not found (BlueZ has: hci0); see bluetoothctl list",
    ]


def test_a_step_of_the_wall_clock_while_streaming_is_logged_once_and_no_beat_is_lost(system_bus, caplog):
    """NTP sets the clock of a Pi (no real-time clock) an hour back while the strap streams: the
    link reads the monotonic clock beside the wall clock, so the beats follow the new clock."""
    shift = [0.0]

    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(200)))
            link = h.link(DeviceSpec("ann", address=H10), clock=lambda: time.time() + shift[0])
            assert await until(lambda: len(h.beats(H10)) > 10, 20)
            shift[0] = -3600.0
            n = len(h.beats(H10))
            assert await until(lambda: len(h.beats(H10)) > n + 10, 20)
            return h, strap, link

    with caplog.at_level("WARNING", logger="stresswatch.ble"):
        h, strap, link = asyncio.run(scenario())
    events = h.events[H10]
    assert [round(x.rr_ms * 1.024) for x in h.beats(H10)] == strap.sent_rr  # none lost, none doubled
    gaps = [k for k, e in enumerate(events) if isinstance(e, Gap)]
    assert len(gaps) == 1 and "clock stepped -3600" in events[gaps[0]].reason
    assert abs(events[-1].t - (time.time() - 3600.0)) < 5.0  # on the new clock
    assert all(y.t > x.t for x, y in itertools.pairwise(events[gaps[0] + 1 :]))
    lines = [r.getMessage() for r in caplog.records if "wall clock stepped" in r.getMessage()]
    assert len(lines) == 1 and "-3600.0 s" in lines[0]
    assert link.timer.counts.duplicates == 0


# -- motion: a Polar strap's accelerometer (PMD) and a foot pod (RSC) -------------------------------

START_25_HZ = "write 02 02 02 01 08 00 00 01 19 00 01 01 10 00"  # range 8 G, 25 Hz, 16 bits


def test_a_polar_strap_streams_its_accelerometer_at_25_hz_next_to_heart_rate(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), pmd=True))
            link = h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: h.n_samples(H10) >= 100 and len(h.beats(H10)) >= 5, 20)
            return h, strap, link

    h, strap, link = asyncio.run(scenario())
    assert strap.gatt_log[:2] == ["write 01 02", START_25_HZ]  # the settings, then the lowest rate at 8 G
    samples = h.samples(H10)
    t = np.concatenate([a.t for a in samples])
    y = np.concatenate([a.y for a in samples])
    assert np.allclose(np.diff(t), 0.04, atol=1e-6)  # 25 Hz, spaced by the sensor clock
    assert abs(t[-1] - time.time()) < 3  # placed on the host clock
    # the fake walks: 1000 mG of gravity plus a 315 mG sinusoid on y
    assert 600 < y.min() < 750 and 1250 < y.max() < 1400 and {a.source for a in samples} == {"pmd"}
    assert link.counts.acc_frames >= 5 and link.counts.acc_malformed == 0
    assert [s for s in h.statuses[H10] if s["connected"]][-1]["motion"] == "accelerometer 25 Hz"
    assert [round(b.rr_ms * 1.024) for b in h.beats(H10)] == strap.sent_rr  # heart rate unharmed


def test_the_accelerometer_is_stopped_before_the_link_closes_at_shutdown(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), pmd=True))
            h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: h.n_samples(H10) >= 50, 20)
            return strap  # leaving the harness sets stop and ends the link

    strap = asyncio.run(scenario())
    assert strap.gatt_log[-2:] == ["write 03 02", "disconnect"]
    assert not strap.acc_on and strap.acc_stops == 1


def test_a_hung_strap_gets_its_accelerometer_stopped_before_the_watchdog_reconnects(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), pmd=True))
            link = h.link(DeviceSpec("ann", address=H10), watchdog_s=2.0)
            assert await until(lambda: h.n_samples(H10) >= 50, 20)
            strap.silent = True  # connected, but nothing arrives
            assert await until(lambda: link.counts.watchdog == 1 and "disconnect" in strap.gatt_log, 10)
            strap.silent = False
            assert await until(lambda: strap.acc_starts == 2, 20)
            return strap, link

    strap, link = asyncio.run(scenario())
    first = strap.gatt_log.index("disconnect")
    assert strap.gatt_log[first - 1] == "write 03 02" and strap.acc_stops >= 1 and link.counts.sessions >= 1


def test_a_stream_left_on_by_a_lost_link_is_stopped_and_started_again(system_bus, caplog):
    caplog.set_level(logging.INFO, logger="stresswatch.ble")

    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), pmd=True))
            h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: h.n_samples(H10) >= 25, 20)
            strap.link_lost()  # no chance to stop it: the H10 streams on
            assert strap.acc_on
            before = h.n_samples(H10)
            assert await until(lambda: h.n_samples(H10) >= before + 25, 20)
            return strap

    strap = asyncio.run(scenario())
    second = strap.gatt_log.index(START_25_HZ, 2)
    assert strap.gatt_log[second : second + 3] == [START_25_HZ, "write 03 02", START_25_HZ]
    assert strap.acc_starts == 2 and "still streaming from an earlier connection" in caplog.text


def test_every_control_point_error_status_is_one_log_line_and_heart_rate_goes_on(system_bus, caplog):
    caplog.set_level(logging.WARNING, logger="stresswatch.ble")
    refusals = [(pmd.OP_START, s) for s in pmd.Status if s != pmd.Status.SUCCESS]
    refusals.append((pmd.OP_GET_SETTINGS, pmd.Status.NOT_SUPPORTED))

    async def scenario():
        async with Harness(system_bus, period=0.25) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), pmd=True))
            link = h.link(DeviceSpec("ann", address=H10), backoff_min_s=0.2)
            seen = []
            for op, status in refusals:
                strap.pmd_errors = {op: status}
                if status == pmd.Status.ALREADY_IN_STATE:
                    strap.pmd_errors = {op: status, pmd.OP_STOP: pmd.Status.INVALID_STATE}
                n = link.counts.acc_refused
                strap.link_lost()
                assert await until(lambda n=n: link.counts.acc_refused > n, 20), (op, status)
                beats = len(h.beats(H10))
                assert await until(lambda b=beats: len(h.beats(H10)) >= b + 3, 20), (op, status)
                seen.append(link.counts.acc_refused - n)
            return h, strap, link, seen

    h, strap, link, seen = asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "accelerometer" in r.getMessage()]
    for op, status in refusals:  # ALREADY_IN_STATE: stopped, started again, refused again, said once
        want = f"the strap refused the accelerometer ({pmd.OPS[op]}: {status.name})"
        assert sum(want in line for line in lines) == 1, want
    assert len(lines) == len(refusals) and seen == [1] * len(refusals)
    assert not h.samples(H10) and not strap.acc_on and link.counts.callback_errors == 0
    assert [round(b.rr_ms * 1.024) for b in h.beats(H10)] == strap.sent_rr  # every beat arrived


def test_a_frame_not_as_documented_is_counted_and_logged_and_the_stream_goes_on(system_bus, caplog):
    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), pmd=True))
            link = h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: h.n_samples(H10) >= 25, 20)
            strap.acc_frame_bytes = [bytes.fromhex("02 00 00 00 00 00 00 00 00 07 01 02"), b"\x02\x00"]
            before = h.n_samples(H10)
            assert await until(lambda: link.counts.acc_malformed == 2 and h.n_samples(H10) > before + 25, 20)
            return link

    link = asyncio.run(scenario())
    assert link.counts.callback_errors == 0
    assert "accelerometer frame not understood: ACC frame type 7" in caplog.text


def test_a_foot_pod_says_walking_running_and_standing_with_cadence_and_speed(system_bus):
    pod_address = "D4:22:CD:00:00:03"
    script = [(1.5, 108, False), (3.25, 172, True), (0.0, 0, False)]

    async def scenario():
        async with Harness(system_bus) as h:
            h.bluez.add(FakeStrap(pod_address, "Polar Stride", is_hr=False, rsc=True, rsc_script=script))
            link = h.link(DeviceSpec("ann", address=pod_address))
            assert await until(lambda: len(h.events.get(pod_address, [])) >= 6, 20)
            return h, link

    h, link = asyncio.run(scenario())
    motions = [e for e in h.events[pod_address] if isinstance(e, Motion)]
    said = [(m.kind, m.cadence_spm, m.speed_m_s) for m in motions[:3]]
    k = [(MotionKind.WALKING, 108.0, 1.5), (MotionKind.RUNNING, 172.0, 3.25), (MotionKind.STILL, 0.0, 0.0)]
    assert said in (k, k[1:] + k[:1], k[2:] + k[:2])  # in the script's order, from wherever it was
    assert all(m.person == "ann" and m.source == "rsc" and 0 < m.span_s <= 3.0 for m in motions)
    assert not h.beats(pod_address) and link.counts.watchdog == 0  # its notifications keep the link alive
    assert [s for s in h.statuses[pod_address] if s["connected"]][-1]["motion"] == "foot pod (RSC)"


def test_scan_details_name_the_motion_sources_each_device_offers(system_bus):
    async def scenario():
        async with Harness(system_bus) as h:
            h.bluez.add(FakeStrap(H10, "Polar H10 12345678", rr_script(), pmd=True))
            h.bluez.add(FakeStrap(TICKR, "TICKR B", rr_script()))
            h.bluez.add(FakeStrap("D4:22:CD:00:00:03", "Polar Stride", is_hr=False, rsc=True))
            return await scan(timeout_s=2.0, details=True)

    rows = {r["address"]: r for r in asyncio.run(scenario())}
    assert rows[H10]["motion"] == "accelerometer (25, 50, 100, 200 Hz)" and rows[H10]["sends_rr"] is True
    assert rows[TICKR]["motion"] == "none"
    pod = rows["D4:22:CD:00:00:03"]
    assert (
        pod["motion"] == "foot pod (RSC)" and "sends_rr" not in pod and "hr_bpm" not in pod
    )  # no heart rate


def test_a_motion_only_device_gives_motion_and_no_beats(system_bus):
    """`role = "motion"`: a second device of someone who wears a strap; its heart rate would merge
    into the strap's beat series, so only its motion is taken."""

    async def scenario():
        async with Harness(system_bus) as h:
            h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), pmd=True))
            h.link(DeviceSpec("ann", address=H10, motion_only=True))
            assert await until(lambda: h.n_samples(H10) >= 50, 20)
            # Nothing more to wait for: a beat would have come within this second (the strap notifies
            # every 0.5 s).
            await asyncio.sleep(1.0)
            return h

    h = asyncio.run(scenario())
    assert not h.beats(H10) and h.n_samples(H10) >= 50


def test_a_start_whose_answer_never_came_is_still_stopped_at_the_end(system_bus, monkeypatch, caplog):
    """The strap started streaming but its answer was lost: heart rate goes on, and the stream
    that may be running is stopped before the link closes."""
    import collector.ble

    monkeypatch.setattr(collector.ble, "PMD_ANSWER_S", 1.0)

    async def scenario():
        async with Harness(system_bus) as h:
            strap = h.bluez.add(FakeStrap(H10, "Polar H10 A", rr_script(), pmd=True, pmd_mute={pmd.OP_START}))
            link = h.link(DeviceSpec("ann", address=H10))
            assert await until(lambda: link.counts.acc_refused == 1 and len(h.beats(H10)) >= 5, 20)
            assert strap.acc_on
            return h, strap

    h, strap = asyncio.run(scenario())
    assert "accelerometer not started (no answer from the strap)" in caplog.text
    assert strap.gatt_log[-2:] == ["write 03 02", "disconnect"] and not strap.acc_on
    assert not h.samples(H10)  # frames of a start never confirmed are not taken
