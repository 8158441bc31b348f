"""The Bluetooth collector end to end: unmodified bleak against a fake BlueZ on a private bus."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_bluez import FakeBlueZ, FakeStrap, PrivateSystemBus

from collector.beat_timing import TimingCounts
from collector.ble import BluetoothUnavailable, DeviceSpec, StrapLink, bluetooth_problem, scan
from collector.events import Beat, Gap, HeartRate

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
        link = StrapLink(spec, emit=self.events.setdefault(spec.label, []).extend,
                         status=self.statuses.setdefault(spec.label, []).append, **kw)
        self.links.append(link)
        self.tasks.append(asyncio.create_task(link.run(self.stop)))
        return link

    async def __aexit__(self, *exc):
        self.stop.set()
        await asyncio.sleep(0.1)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def beats(self, label: str) -> list[Beat]:
        return [e for e in self.events.get(label, []) if isinstance(e, Beat)]


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


def test_scan_details_say_which_strap_sends_rr_which_sends_heart_rate_alone_and_which_sent_nothing(system_bus):
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


def test_a_strap_sending_heart_rate_without_rr_gives_heart_rates_a_status_and_one_log_line(system_bus, caplog):
    async def scenario():
        async with Harness(system_bus) as h:
            h.bluez.add(FakeStrap(BAND, "HRM band", sends_rr=False, hr_bpm=72))
            link = h.link(DeviceSpec("ann", address=BAND))
            assert await until(lambda: sum(isinstance(e, HeartRate) for e in h.events.get(BAND, [])) >= 20, 30)
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
    assert said == [(f"{BAND}: the strap sends heart rate without RR intervals: heart rate is recorded, "
                     "but HRV and the stress state are unavailable from it")]


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
    print(f"\nlink drops: {DROPS}; sessions {link.counts.sessions}, reconnect latency median "
          f"{statistics.median(lat):.2f} s, max {max(lat):.2f} s; beats sent {len(strap.sent_rr)}, "
          f"received {len(received)}, duplicates {link.timer.counts.duplicates}")
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
            await asyncio.sleep(0.6)
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
        None, None, "Bluetooth adapter hci1 not found (BlueZ has: hci0); see bluetoothctl list"]
