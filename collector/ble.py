"""Bluetooth collector: keep standard heart-rate straps connected and streaming, with bleak.

Any device with the Heart Rate Service (0x180D) works: Polar H10/H9/H7, Garmin HRM, Wahoo
TICKR, Coospo, ... One `StrapLink` per configured device (several at once, one asyncio task
each) loops forever:

1. scan until the device advertises (matched by address or a name pattern) - a strap that was
   switched off for an hour is picked up within one scan window of advertising again;
2. connect, read Device Information (0x180A: manufacturer, model, firmware) once and Battery
   Level (0x2A19) now and every `battery_every_s`, subscribe to Heart Rate Measurement
   (0x2A37);
3. stream: each notification is parsed (collector.heart_rate) and timed (collector.beat_timing)
   into Beat/Gap events (HeartRate events from a strap that sends no RR intervals, which is
   logged once and said in the device status); a malformed payload is counted and logged
   (rate-limited), never raised out of the callback;
4. the session ends on the disconnect callback, or through the watchdog when no notification
   arrived for `watchdog_s` (bleak does not call back when bluetoothd itself dies or restarts);
   then a Gap is opened, device status says disconnected, and after a backoff (1 s doubling to
   30 s, +-20 % jitter, reset after a session that streamed) the loop starts again.

I/O lives here; parsing and timing are pure modules.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.beat_timing import HR_ONLY_AFTER_S, BeatTimer
from collector.events import Event
from collector.heart_rate import MAX_HR_BPM, MIN_HR_BPM, MalformedMeasurement, parse

log = logging.getLogger("stresswatch.ble")

HR_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
HR_MEASUREMENT = "00002a37-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
INFO_CHARS = {
    "manufacturer": "00002a29-0000-1000-8000-00805f9b34fb",
    "model": "00002a24-0000-1000-8000-00805f9b34fb",
    "firmware": "00002a26-0000-1000-8000-00805f9b34fb",
}
# Names of wearables that may not list 0x180D in their advertisement.
KNOWN_NAMES = re.compile(r"polar|h10|h9|h7|verity|tickr|wahoo|hrm|garmin|coospo|heart|magene|moofit|suunto|decathlon",
                         re.IGNORECASE)


@dataclass(frozen=True)
class DeviceSpec:
    """A configured strap: who wears it and how to recognise it (address and/or name glob)."""

    person: str
    address: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.address or self.name or "strap"

    def matches(self, address: str, name: str | None) -> bool:
        if self.address and address.upper() != self.address.upper():
            return False
        if self.name and not fnmatch.fnmatch((name or "").lower(), self.name.lower()):
            return False
        return True


class _RateLimited:
    """At most one log line per key per `every_s`, with the count of what was suppressed."""

    def __init__(self, every_s: float = 30.0):
        self.every_s = every_s
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-1e9, 0))
        if now - last >= self.every_s:
            extra = f" ({suppressed} similar suppressed)" if suppressed else ""
            log.log(level, msg + extra, *args)
            self._last[key] = (now, 0)
        else:
            self._last[key] = (last, suppressed + 1)


@dataclass
class LinkCounts:
    """What happened on one strap's link since the service started."""

    connects: int = 0
    sessions: int = 0
    malformed: int = 0  # notifications that are not a valid Heart Rate Measurement
    callback_errors: int = 0
    watchdog: int = 0  # reconnects because data stopped without a disconnect
    failed_connects: int = 0


@dataclass
class StrapLink:
    """Keeps one strap connected; `emit(events)` gets its events, `status(dict)` device status:
    the link's fields (`connected`, `battery_pct`), `sends_rr` (`BeatTimer.sends_rr`: None until
    the strap has shown whether it sends RR intervals) and the Device Information read."""

    spec: DeviceSpec
    emit: Callable[[list[Event]], None]
    status: Callable[[dict], None] = lambda s: None
    watchdog_s: float = 5.0
    battery_every_s: float = 300.0
    scan_window_s: float = 10.0
    connect_timeout_s: float = 20.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 30.0
    adapter: str | None = None  # e.g. "hci1"; None = BlueZ's default adapter
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    counts: LinkCounts = field(default_factory=LinkCounts)
    info: dict = field(default_factory=dict)
    reconnect_latencies: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.timer = BeatTimer(self.spec.person, self.spec.label)
        self._log = _RateLimited()
        self._last_note = 0.0
        self._lost_at: float | None = None
        self.streaming = asyncio.Event()
        self._link_status: dict = {}  # the link's fields of the last status
        self._sends_rr: bool | None = None  # as the last status said

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            device = await self._find(stop)
            if device is None:
                continue  # not advertising: scan again straight away
            streamed = False
            try:
                streamed = await self._session(device, stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # bleak, D-Bus and timeout errors all mean "try again"
                self.counts.failed_connects += 1
                self._log.warning("connect", "%s: connection failed: %s: %s", self.spec.label, type(exc).__name__, exc)
            self.streaming.clear()
            if self._lost_at is None:
                self._lost_at = time.monotonic()
            self.emit(self.timer.stall(self.clock()))
            self._report(connected=False)
            attempt = 1 if streamed else attempt + 1
            await _sleep_or_stop(stop, self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max_s, self.backoff_min_s * 2 ** max(0, attempt - 1))
        return base * self.rng.uniform(0.8, 1.2)

    async def _find(self, stop: asyncio.Event):
        from bleak import BleakScanner

        try:
            return await BleakScanner.find_device_by_filter(
                lambda d, adv: self.spec.matches(d.address, d.name or adv.local_name),
                timeout=self.scan_window_s,
                **_bluez(self.adapter),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # adapter gone, bluetoothd restarting
            self._log.warning("scan", "%s: scanning failed: %s: %s", self.spec.label, type(exc).__name__, exc)
            await _sleep_or_stop(stop, self.backoff_min_s)
            return None

    async def _session(self, device, stop: asyncio.Event) -> bool:
        """One connection; returns True when it streamed at least one notification."""
        from bleak import BleakClient

        disconnected = asyncio.Event()
        client = BleakClient(device, disconnected_callback=lambda c: disconnected.set(),
                             timeout=self.connect_timeout_s, **_bluez(self.adapter))
        await client.connect()
        self.counts.connects += 1
        try:
            if not self.info:
                self.info = await self._read_info(client)
            battery = await self._read_battery(client)
            self._report(connected=True, battery_pct=battery)
            self._last_note = time.monotonic()
            await client.start_notify(HR_MEASUREMENT, self._on_notification)
            next_battery = time.monotonic() + self.battery_every_s
            streamed = False
            while not stop.is_set() and not disconnected.is_set():
                try:
                    await asyncio.wait_for(disconnected.wait(), timeout=0.5)
                except TimeoutError:
                    pass
                if self.streaming.is_set():
                    streamed = True
                if time.monotonic() - self._last_note > self.watchdog_s:
                    self.counts.watchdog += 1
                    self._log.warning("watchdog", "%s: no data for %.0f s; reconnecting", self.spec.label, self.watchdog_s)
                    break
                if time.monotonic() >= next_battery:
                    next_battery = time.monotonic() + self.battery_every_s
                    battery = await self._read_battery(client)
                    self._report(connected=True, battery_pct=battery)
            return streamed
        finally:
            self.counts.sessions += 1
            try:
                await asyncio.wait_for(client.disconnect(), timeout=5)
            except Exception:  # already gone: nothing to clean up
                pass

    def _report(self, **link) -> None:
        self._link_status = link
        self._sends_rr = self.timer.sends_rr
        self.status({**link, "sends_rr": self._sends_rr, **self.info})

    def _rr_changed(self) -> None:
        """The timer found out whether the strap sends RR intervals, or that changed: said in the
        device status, and in the log when they stop or come back (rate-limited: a band that
        sends RR only at rest may switch often)."""
        was = self._sends_rr
        self._report(**self._link_status)
        if self._sends_rr is False:
            self._log.warning("no_rr", "%s: the strap sends heart rate without RR intervals: heart rate is "
                              "recorded, but HRV and the stress state are unavailable from it", self.spec.label)
        elif was is False:
            self._log.warning("no_rr", "%s: the strap sends RR intervals again", self.spec.label, level=logging.INFO)

    async def _read_info(self, client) -> dict:
        info = {}
        for key, uuid in INFO_CHARS.items():
            try:
                raw = await asyncio.wait_for(client.read_gatt_char(uuid), timeout=5)
                info[key] = bytes(raw).decode("utf-8", "replace").strip("\x00 ")
            except Exception:  # optional characteristics
                pass
        return info

    async def _read_battery(self, client) -> int | None:
        try:
            raw = await asyncio.wait_for(client.read_gatt_char(BATTERY_LEVEL), timeout=5)
            return raw[0] if raw else None
        except Exception:
            return None

    # -- the notification callback (must never raise) --------------------------------------------

    def _on_notification(self, _char, data: bytearray) -> None:
        try:
            self._last_note = time.monotonic()
            if self._lost_at is not None:
                self.reconnect_latencies.append(time.monotonic() - self._lost_at)
                self._lost_at = None
            self.streaming.set()
            try:
                m = parse(data)
            except MalformedMeasurement as exc:
                self.counts.malformed += 1
                self._log.warning("malformed", "%s: malformed heart rate payload %s: %s",
                                  self.spec.label, bytes(data).hex(" "), exc)
                return
            if m.malformed:
                self.counts.malformed += 1
                self._log.warning("malformed", "%s: heart rate payload %s has %d stray byte(s), %d impossible RR",
                                  self.spec.label, bytes(data).hex(" "), m.trailing_bytes, len(m.rejected_rr))
            events = self.timer.notification(self.clock(), m)
            if events:
                self.emit(events)
            if self.timer.sends_rr is not self._sends_rr:
                self._rr_changed()
        except Exception:
            self.counts.callback_errors += 1
            log.exception("%s: error handling a notification", self.spec.label)


def _bluez(adapter: str | None) -> dict:
    return {"bluez": {"adapter": adapter}} if adapter else {}


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


# -- is Bluetooth usable here? -------------------------------------------------------------------

# dbus-fast's default when DBUS_SYSTEM_BUS_ADDRESS is unset (bleak connects through dbus-fast).
DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"


class BluetoothUnavailable(RuntimeError):
    """Bluetooth cannot work here; the message is one line saying what is missing and how to fix it."""


async def bluetooth_problem(adapter: str | None = None, timeout_s: float = 10.0) -> str | None:
    """What stops bleak from using Bluetooth on this machine, as one line with the fix, or None.

    Checks what bleak needs, in order: the D-Bus system bus (bleak talks to BlueZ over it),
    BlueZ answering as `org.bluez` on it (the same ObjectManager call bleak makes first, which
    also lets D-Bus start an installed bluetoothd), and the adapter (`adapter`, or any)."""
    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus

    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS
    where = address.split("path=", 1)[1].split(",", 1)[0] if "path=" in address else address
    try:
        bus = await asyncio.wait_for(MessageBus(bus_type=BusType.SYSTEM).connect(), timeout_s)
    except (FileNotFoundError, ConnectionRefusedError):
        return f"no D-Bus system bus at {where}: install and start dbus (apt install dbus)"
    except Exception as exc:  # permissions, authentication, a bus that does not answer
        return (f"cannot use the D-Bus system bus at {where} ({type(exc).__name__}: {exc}): "
                "is dbus running (apt install dbus)?")
    try:
        reply = await asyncio.wait_for(bus.call(Message(
            destination="org.bluez", path="/", interface="org.freedesktop.DBus.ObjectManager",
            member="GetManagedObjects")), timeout_s)
    except TimeoutError:
        return "BlueZ (org.bluez) does not answer on the system bus: systemctl restart bluetooth"
    finally:
        bus.disconnect()
    if reply.message_type == MessageType.ERROR:
        if reply.error_name == "org.freedesktop.DBus.Error.AccessDenied":
            return ("not allowed to talk to BlueZ on the system bus: sudo usermod -aG bluetooth $USER, "
                    "then log in again")
        return ("BlueZ (org.bluez) is not running on the system bus: "
                "apt install bluez; systemctl start bluetooth")
    objects = reply.body[0]  # {path: {interface: properties}}
    adapters = sorted(path.rsplit("/", 1)[-1] for path, ifs in objects.items() if "org.bluez.Adapter1" in ifs)
    if adapter and adapter not in adapters:
        have = ", ".join(adapters) or "none"
        return f"Bluetooth adapter {adapter} not found (BlueZ has: {have}); see bluetoothctl list"
    if not adapters:
        return "BlueZ has no Bluetooth adapter: plug one in, or check rfkill list and bluetoothctl list"
    return None


# -- scanning ------------------------------------------------------------------------------------


# How long `scan --details` listens for the notifications that show whether a strap sends RR
# intervals: the beat timer's decision (HR_ONLY_AFTER_S of heart rate without RR) and a few
# seconds for the first notifications.
RR_PROBE_S = HR_ONLY_AFTER_S + 3.0


async def scan(timeout_s: float = 8.0, details: bool = False, adapter: str | None = None) -> list[dict]:
    """Nearby heart-rate wearables: advertising 0x180D or a known wearable name. With
    `details`, connect briefly to read model, firmware and battery, the heart rate (`hr_bpm`)
    and whether the strap sends RR intervals (`sends_rr`, decided as the service decides it,
    `BeatTimer.sends_rr`, within RR_PROBE_S: True, False for heart rate without RR intervals, or
    None when no heart rate came, e.g. from a strap not worn). Raises BluetoothUnavailable (see
    `bluetooth_problem`) when Bluetooth cannot work here."""
    from bleak import BleakClient, BleakScanner

    problem = await bluetooth_problem(adapter)
    if problem:
        raise BluetoothUnavailable(problem)
    found = await BleakScanner.discover(timeout=timeout_s, return_adv=True, **_bluez(adapter))
    out = []
    for address, (device, adv) in sorted(found.items(), key=lambda kv: -(kv[1][1].rssi or -999)):
        name = device.name or adv.local_name or ""
        if HR_SERVICE not in [u.lower() for u in adv.service_uuids] and not KNOWN_NAMES.search(name):
            continue
        row = {"name": name, "address": address, "rssi": adv.rssi}
        if details:
            try:
                async with BleakClient(device, timeout=15, **_bluez(adapter)) as client:
                    link = StrapLink(DeviceSpec("scan", address), emit=lambda e: None)
                    row.update(await link._read_info(client))
                    row["battery_pct"] = await link._read_battery(client)
                    hr: list[int] = []
                    await client.start_notify(HR_MEASUREMENT, lambda c, d, hr=hr, link=link: _probe(link, hr, d))
                    deadline = time.monotonic() + RR_PROBE_S
                    while time.monotonic() < deadline and link.timer.sends_rr is None:
                        await asyncio.sleep(0.2)
                    row["hr_bpm"] = hr[-1] if hr else None
                    row["sends_rr"] = link.timer.sends_rr
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
        out.append(row)
    return out


def _probe(link: StrapLink, hr: list[int], data: bytearray) -> None:
    """A notification during `scan --details`: timed like the service's (the decision on RR
    intervals), its heart rate kept when it is one."""
    try:
        m = parse(data)
    except MalformedMeasurement:
        return
    link.timer.notification(time.time(), m)
    if m.has_contact and MIN_HR_BPM <= m.hr_bpm <= MAX_HR_BPM:
        hr.append(m.hr_bpm)
