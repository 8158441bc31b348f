"""Bluetooth collector: keep standard heart-rate straps connected and streaming, with bleak.

Any device with the Heart Rate Service (0x180D) works: Polar H10/H9/H7, Garmin HRM, Wahoo
TICKR, Coospo, ... One `StrapLink` per configured device (several at once, one asyncio task
each) loops forever:

1. look for the device among those BlueZ already has connected (`find_connected`, below); if
   it is there, log it, disconnect it and connect afresh; otherwise
2. scan until the device advertises (matched by address or a name pattern) - a strap that was
   switched off for an hour is picked up within one scan window of advertising again;
3. connect, read Device Information (0x180A: manufacturer, model, firmware) once and Battery
   Level (0x2A19) now and every `battery_every_s`, subscribe to Heart Rate Measurement
   (0x2A37);
4. stream: each notification is parsed (collector.heart_rate) and timed (collector.beat_timing)
   into Beat/Gap events (HeartRate events from a strap that sends no RR intervals, which is
   logged once and said in the device status); a malformed payload is counted and logged
   (rate-limited), never raised out of the callback;
   motion, where the device offers it (found per connection): a Polar strap's accelerometer
   through the Polar Measurement Data service (collector/pmd.py: read the ACC settings, start at
   the lowest rate >= 25 Hz, decode frames into `Acceleration` samples; a refusal of any status
   is one log line and the strap goes on with heart rate alone), and a foot pod's Running Speed
   and Cadence (collector/rsc.py) as `Motion`;
5. the session ends on the disconnect callback, or through the watchdog when no notification
   arrived for `watchdog_s` (bleak does not call back when bluetoothd itself dies or restarts);
   then a Gap is opened, device status says disconnected, and after a backoff (1 s doubling to
   30 s, +-20 % jitter, reset after a session that streamed) the loop starts again. A started
   accelerometer is always stopped (PMD op 0x03) before we disconnect, at a reconnect and at
   shutdown: an H10 left streaming stays on until its battery is empty. One left on by a
   connection that was lost answers the next start with ALREADY_IN_STATE, and is stopped and
   started again.

A strap still connected in BlueZ. A connection belongs to bluetoothd, not to the program that
asked for it: when `stresswatch run` is killed (SIGKILL, a crash, the OOM killer) BlueZ ends
its notification sessions but keeps the link (bluez issue #89), and a connected peripheral does
not advertise, so a scan never reports it again (bleak issues #315, #367). Step 1 therefore asks
BlueZ first, through bleak's public `BleakAdapter.get_connected_devices` (bleak >= 3.1; the
pinned range): the devices connected on the configured adapter whose GATT services BlueZ has
resolved and that have the Heart Rate Service, as `BLEDevice`s carrying their BlueZ object, so
`BleakClient` connects to them without a scan; the configured address or name pattern picks
ours. Rejected, our reasons: bleak's `BlueZManager._properties` is private and may change in
any release; our own `ObjectManager.GetManagedObjects` over dbus-fast would be a second bus
connection and a second reading of BlueZ's object tree beside the one bleak keeps, and would
still have to build bleak's backend-specific `BLEDevice` details; a `BLEDevice` made up from
the configured address cannot serve a name pattern. The device found is disconnected (bleak
attaches to a connected device without calling Connect, bluez issue #89, and its `disconnect`
calls `Device1.Disconnect`) and connected afresh, our choice: whatever the dead run had set up
on the strap goes with the old link, and a new Connect shows the strap is really there (BlueZ
keeps a link whose peer has gone until its supervision timeout). When the disconnect fails, the
session uses the connection as it is (bleak attaches). Devices this process is using are
skipped, so one link never takes a strap another link is streaming.

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
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from collector import pmd, rsc
from collector.beat_timing import HR_ONLY_AFTER_S, BeatTimer
from collector.events import Acceleration, Event
from collector.heart_rate import MAX_HR_BPM, MIN_HR_BPM, MalformedMeasurement, parse
from collector.log_limit import LogLimit
from collector.retry import backoff_s, sleep_or_stop

log = logging.getLogger("stresswatch.ble")

HR_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
HR_MEASUREMENT = "00002a37-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
INFO_CHARS = {
    "manufacturer": "00002a29-0000-1000-8000-00805f9b34fb",
    "model": "00002a24-0000-1000-8000-00805f9b34fb",
    "firmware": "00002a26-0000-1000-8000-00805f9b34fb",
}
# Names of wearables that may not list 0x180D (or a foot pod 0x1814) in their advertisement.
KNOWN_NAMES = re.compile(
    r"polar|h10|h9|h7|verity|tickr|wahoo|hrm|garmin|coospo|heart|magene|moofit|suunto|decathlon"
    r"|stryd|stride|foot ?pod",
    re.IGNORECASE,
)
# A strap's repeating problem (a failed connect every 1-30 s of backoff, malformed payloads) at
# most every 30 s per kind (ours): half LogLimit's minute, so that each reconnect at the longest
# backoff is still said.
LOG_EVERY_S = 30.0
# A control-point answer later than this is not coming (the H10 answers within ~100 ms).
PMD_ANSWER_S = 5.0
# Stopping at shutdown waits this long at most for the strap's answer.
PMD_STOP_S = 2.0
# Ours: the strap's clock spaces its accelerometer samples; they are placed on the host clock by
# an offset taken at the first frame of a connection and taken again when a frame arrives this
# far from where the offset puts it (a strap's clock need not be set, and may drift).
ACC_CLOCK_SLACK_S = 2.0
# A foot pod notifies about once a second; one notification speaks for at most this long.
RSC_MAX_SPAN_S = 3.0
# Addresses (upper case) a link of this process is connecting to or streaming from: a strap
# connected in BlueZ is one left behind only when no link here holds it.
_IN_USE: set[str] = set()


@dataclass(frozen=True)
class DeviceSpec:
    """A configured strap: who wears it and how to recognise it (address and/or name glob).
    `motion_only`: a motion source (a foot pod) whose heart rate, if it has any, is not taken."""

    person: str
    address: str | None = None
    name: str | None = None
    motion_only: bool = False

    @property
    def label(self) -> str:
        return self.address or self.name or "strap"

    def matches(self, address: str, name: str | None) -> bool:
        if self.address and address.upper() != self.address.upper():
            return False
        if self.name and not fnmatch.fnmatch((name or "").lower(), self.name.lower()):
            return False
        return True


@dataclass
class LinkCounts:
    """What happened on one strap's link since the service started."""

    connects: int = 0
    sessions: int = 0
    malformed: int = 0  # notifications that are not a valid Heart Rate Measurement
    callback_errors: int = 0
    watchdog: int = 0  # reconnects because data stopped without a disconnect
    failed_connects: int = 0
    left_connected: int = 0  # times the strap was found already connected in BlueZ
    acc_frames: int = 0  # accelerometer frames decoded
    acc_malformed: int = 0  # accelerometer frames that are not what Polar's document describes
    acc_refused: int = 0  # accelerometer settings, starts or stops the strap refused
    rsc_malformed: int = 0


class _ControlPoint:
    """The PMD control point of one connection: commands written, answers arriving as
    indications (the callback only queues them, as bleak's own callbacks do)."""

    def __init__(self, client):
        self.client = client
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def on_indication(self, _char, data: bytearray) -> None:
        self.answers.put_nowait(bytes(data))

    async def request(self, command: bytes, timeout: float | None = None) -> pmd.Response:
        """Write a command and return its answer (parameters of multi-part answers joined) within
        `timeout` (default PMD_ANSWER_S). Raises TimeoutError, PmdError or bleak's errors."""
        timeout = PMD_ANSWER_S if timeout is None else timeout
        while not self.answers.empty():  # a late answer to an earlier command
            self.answers.get_nowait()
        await asyncio.wait_for(self.client.write_gatt_char(pmd.PMD_CONTROL, command, response=True), timeout)
        params = b""
        while True:
            answer = pmd.parse_response(await asyncio.wait_for(self.answers.get(), timeout))
            if (answer.op, answer.measurement_type) != (command[0], command[1]):
                continue  # not the answer to this command
            params += answer.params
            if not answer.more:
                return pmd.Response(answer.op, answer.measurement_type, answer.status, False, params)


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
    # A clock that never steps, read with `clock` at each notification so that the timer sees a
    # step of the wall clock (collector/beat_timing.py).
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    counts: LinkCounts = field(default_factory=LinkCounts)
    info: dict = field(default_factory=dict)
    reconnect_latencies: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.timer = BeatTimer(self.spec.person, self.spec.label)
        self._log = LogLimit(log, every_s=LOG_EVERY_S)
        self._last_note = 0.0
        self._lost_at: float | None = None
        self.streaming = asyncio.Event()
        self.motion: str | None = None  # the motion source of this connection, for device status
        self._acc: pmd.AccDecoder | None = None
        self._acc_offset: float | None = None
        self._rsc_last: float | None = None
        self._link_status: dict = {}  # the link's fields of the last status
        self._sends_rr: bool | None = None  # as the last status said

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            device = left_connected = await self._connected_in_bluez()
            if device is None:
                device = await self._find(stop)
            if device is None:
                continue  # not advertising: scan again straight away
            address = device.address.upper()
            _IN_USE.add(address)
            streamed = False
            try:
                if left_connected is not None:
                    await self._disconnect_left(device)
                streamed = await self._session(device, stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # bleak, D-Bus and timeout errors all mean "try again"
                self.counts.failed_connects += 1
                self._log.warning(
                    "connect", "%s: connection failed: %s: %s", self.spec.label, type(exc).__name__, exc
                )
            finally:
                _IN_USE.discard(address)
            self.streaming.clear()
            if self._lost_at is None:
                self._lost_at = time.monotonic()
            self.emit(self.timer.stall(self.clock()))
            self._report(connected=False)
            attempt = 1 if streamed else attempt + 1
            await sleep_or_stop(stop, self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        """The wait after `attempt` failures, jittered +-20 % so that straps lost together (a
        restarted bluetoothd) do not all reconnect in the same instant."""
        return backoff_s(attempt, self.backoff_min_s, self.backoff_max_s) * self.rng.uniform(0.8, 1.2)

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
            await sleep_or_stop(stop, self.backoff_min_s)
            return None

    async def _connected_in_bluez(self):
        """Our strap, when BlueZ has it connected and no link of this process does, else None."""
        try:
            return await find_connected(self.spec, self.adapter, skip=_IN_USE)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  (BlueZ or the adapter gone: the scan that follows says so)
            log.debug("%s: cannot list connected devices: %s: %s", self.spec.label, type(exc).__name__, exc)
            return None

    async def _disconnect_left(self, device) -> None:
        """Disconnect a strap found connected in BlueZ, so that the session connects afresh."""
        from bleak import BleakClient

        self.counts.left_connected += 1
        self._log.warning(
            "left-connected",
            "%s: found %s already connected in BlueZ (left by a previous run?); "
            "disconnecting and reconnecting",
            self.spec.label,
            device.address,
        )
        client = BleakClient(device, timeout=self.connect_timeout_s, **_bluez(self.adapter))
        try:
            await client.connect()  # attaches: bleak does not call Connect for a connected device
            await client.disconnect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  (any bleak, D-Bus or timeout error: the session still tries)
            self._log.warning(
                "left-connected-failed",
                "%s: could not disconnect %s (%s: %s); using its connection",
                self.spec.label,
                device.address,
                type(exc).__name__,
                exc,
            )

    async def _session(self, device, stop: asyncio.Event) -> bool:
        """One connection; returns True when it streamed at least one notification."""
        from bleak import BleakClient

        disconnected = asyncio.Event()
        client = BleakClient(
            device,
            disconnected_callback=lambda c: disconnected.set(),
            timeout=self.connect_timeout_s,
            **_bluez(self.adapter),
        )
        await client.connect()
        self.counts.connects += 1
        control: _ControlPoint | None = None
        try:
            if not self.info:
                self.info = await self._read_info(client)
            battery = await self._read_battery(client)
            self._last_note = time.monotonic()
            services = client.services
            if not self.spec.motion_only and services.get_characteristic(HR_MEASUREMENT) is not None:
                await client.start_notify(HR_MEASUREMENT, self._on_notification)
            self.motion = None
            if services.get_characteristic(rsc.RSC_MEASUREMENT) is not None:
                self._rsc_last = None
                await client.start_notify(rsc.RSC_MEASUREMENT, self._on_rsc)
                self.motion = "foot pod (RSC)"
            if services.get_characteristic(pmd.PMD_CONTROL) and services.get_characteristic(pmd.PMD_DATA):
                control = await self._start_acc(client)
            self._report(**self._status(battery))
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
                    self._log.warning(
                        "watchdog", "%s: no data for %.0f s; reconnecting", self.spec.label, self.watchdog_s
                    )
                    break
                if time.monotonic() >= next_battery:
                    next_battery = time.monotonic() + self.battery_every_s
                    battery = await self._read_battery(client)
                    self._report(**self._status(battery))
            return streamed
        finally:
            self.counts.sessions += 1
            if control is not None and not disconnected.is_set():
                await self._stop_acc(control)
            self._acc = None
            try:
                await asyncio.wait_for(client.disconnect(), timeout=5)
            except Exception:  # already gone: nothing to clean up
                pass

    def _status(self, battery: int | None) -> dict:
        """The link's fields of a connected device's status (`_report` adds the rest)."""
        out = {"connected": True, "battery_pct": battery}
        if self.motion:
            out["motion"] = self.motion
        return out

    # -- the accelerometer (Polar Measurement Data) ----------------------------------------------

    async def _start_acc(self, client) -> _ControlPoint | None:
        """Start the accelerometer; the control point when it streams (to stop it later), else
        None after one log line (heart rate goes on either way)."""
        label = self.spec.label
        control = None
        start_sent = False
        try:
            try:
                types = pmd.supported_types(
                    await asyncio.wait_for(client.read_gatt_char(pmd.PMD_CONTROL), PMD_ANSWER_S)
                )
            except pmd.PmdError:
                types = None  # a read this document does not describe: ask for the settings anyway
            if types is not None and pmd.ACC not in types:
                log.info("%s: no accelerometer among its measurements; no motion from this strap", label)
                return None
            control = _ControlPoint(client)
            await client.start_notify(pmd.PMD_CONTROL, control.on_indication)
            await client.start_notify(pmd.PMD_DATA, self._on_pmd_data)
            answer = await control.request(pmd.get_settings_command())
            if not answer.ok:
                self._acc_refused(answer)
                return None
            chosen = pmd.choose_acc(pmd.parse_settings(answer.params))
            start_sent = True
            answer = await control.request(pmd.start_command(chosen))
            if answer.status == pmd.Status.ALREADY_IN_STATE:
                # Left streaming by a connection that was lost: stop it and start with our settings.
                log.info(
                    "%s: the accelerometer was still streaming from an earlier connection; restarting it",
                    label,
                )
                await control.request(pmd.stop_command())
                answer = await control.request(pmd.start_command(chosen))
            if not answer.ok:
                self._acc_refused(answer)
                return None
        except Exception as exc:  # noqa: BLE001 -- no answer, bytes not as documented, bleak or D-Bus errors
            self.counts.acc_refused += 1
            why = (
                "no answer from the strap"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {exc}"
            )
            log.warning("%s: accelerometer not started (%s); heart rate goes on without motion", label, why)
            # A start may have reached the strap without its answer reaching us: stop it at the end.
            return control if start_sent else None
        used = pmd.Settings({**chosen.values, **pmd.parse_settings(answer.params, strict=False).values})
        self._acc = pmd.AccDecoder(used)
        self._acc_offset = None
        rate = chosen.get(pmd.SAMPLE_RATE)[0]
        self.motion = f"accelerometer {rate:g} Hz"
        log.info("%s: accelerometer streaming at %g Hz", label, rate)
        return control

    def _acc_refused(self, answer: pmd.Response) -> None:
        self.counts.acc_refused += 1
        log.warning(
            "%s: the strap refused the accelerometer (%s); heart rate goes on without motion",
            self.spec.label,
            answer.describe(),
        )

    async def _stop_acc(self, control: _ControlPoint) -> None:
        try:
            answer = await control.request(pmd.stop_command(), timeout=PMD_STOP_S)
        except Exception as exc:  # noqa: BLE001 -- bleak, D-Bus or a timeout: the link is going anyway
            log.warning(
                "%s: could not stop the accelerometer: %s: %s", self.spec.label, type(exc).__name__, exc
            )
            return
        if answer.ok:
            log.info("%s: accelerometer stopped", self.spec.label)
        elif answer.status == pmd.Status.ALREADY_IN_STATE:
            log.debug("%s: the accelerometer was not streaming", self.spec.label)
        else:
            self.counts.acc_refused += 1
            log.warning(
                "%s: the strap refused to stop the accelerometer (%s)", self.spec.label, answer.describe()
            )

    def _on_pmd_data(self, _char, data: bytearray) -> None:
        try:
            self._noted()
            decoder = self._acc
            if decoder is None:
                return
            try:
                frame = decoder.decode(data)
            except pmd.PmdError as exc:
                self.counts.acc_malformed += 1
                self._log.warning("acc", "%s: accelerometer frame not understood: %s", self.spec.label, exc)
                return
            self.counts.acc_frames += 1
            now = self.clock()
            last = frame.t_ns[-1] * 1e-9
            if self._acc_offset is None or abs(last + self._acc_offset - now) > ACC_CLOCK_SLACK_S:
                self._acc_offset = now - last
            offset = self._acc_offset
            self.emit(
                [
                    Acceleration(
                        self.spec.person,
                        self.spec.label,
                        tuple(ns * 1e-9 + offset for ns in frame.t_ns),
                        frame.x,
                        frame.y,
                        frame.z,
                        source="pmd",
                    )
                ]
            )
        except Exception:
            self.counts.callback_errors += 1
            log.exception("%s: error handling an accelerometer frame", self.spec.label)

    # -- a foot pod (Running Speed and Cadence) --------------------------------------------------

    def _on_rsc(self, _char, data: bytearray) -> None:
        try:
            self._noted()
            try:
                m = rsc.parse(data)
            except rsc.MalformedRsc as exc:
                self.counts.rsc_malformed += 1
                self._log.warning(
                    "rsc",
                    "%s: malformed running speed and cadence payload %s: %s",
                    self.spec.label,
                    bytes(data).hex(" "),
                    exc,
                )
                return
            now = self.clock()
            span = (
                RSC_MAX_SPAN_S
                if self._rsc_last is None
                else min(RSC_MAX_SPAN_S, max(0.0, now - self._rsc_last))
            )
            self._rsc_last = now
            self.emit([rsc.motion(m, self.spec.person, self.spec.label, now, span)])
        except Exception:
            self.counts.callback_errors += 1
            log.exception("%s: error handling a running speed and cadence notification", self.spec.label)

    def _noted(self) -> None:
        """Any notification: the link is alive (watchdog), and streaming."""
        self._last_note = time.monotonic()
        if self._lost_at is not None:
            self.reconnect_latencies.append(time.monotonic() - self._lost_at)
            self._lost_at = None
        self.streaming.set()

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
            self._log.warning(
                "no_rr",
                "%s: the strap sends heart rate without RR intervals: heart rate is "
                "recorded, but HRV and the stress state are unavailable from it",
                self.spec.label,
            )
        elif was is False:
            self._log.warning(
                "no_rr", "%s: the strap sends RR intervals again", self.spec.label, level=logging.INFO
            )

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
            self._noted()
            try:
                m = parse(data)
            except MalformedMeasurement as exc:
                self.counts.malformed += 1
                self._log.warning(
                    "malformed",
                    "%s: malformed heart rate payload %s: %s",
                    self.spec.label,
                    bytes(data).hex(" "),
                    exc,
                )
                return
            if m.malformed:
                self.counts.malformed += 1
                self._log.warning(
                    "malformed",
                    "%s: heart rate payload %s has %d stray byte(s), %d impossible RR",
                    self.spec.label,
                    bytes(data).hex(" "),
                    m.trailing_bytes,
                    len(m.rejected_rr),
                )
            steps = self.timer.counts.clock_steps
            events = self.timer.notification(self.clock(), m, self.monotonic())
            if self.timer.counts.clock_steps != steps:
                log.warning(
                    "%s: the wall clock stepped %+.1f s; beat times follow it from here (a gap marks the step)",
                    self.spec.label,
                    self.timer.last_step_s,
                )
            if events:
                self.emit(events)
            if self.timer.sends_rr is not self._sends_rr:
                self._rr_changed()
        except Exception:
            self.counts.callback_errors += 1
            log.exception("%s: error handling a notification", self.spec.label)


async def find_connected(spec: DeviceSpec, adapter: str | None = None, skip: Collection[str] = ()):
    """The `BLEDevice` BlueZ has connected on `adapter` (None: BlueZ's default) that has the Heart
    Rate Service and matches `spec`, leaving out the addresses in `skip` (upper case), or None.
    Connected by anyone: BlueZ does not say which client asked. Raises what bleak raises when
    BlueZ or the adapter is missing. Why this route: the module docstring."""
    from bleak import BleakAdapter

    bluetooth = await BleakAdapter.get(**_bluez(adapter))
    connected = await bluetooth.get_connected_devices([HR_SERVICE])
    return next(
        (d for d in connected if d.address.upper() not in skip and spec.matches(d.address, d.name)), None
    )


def _bluez(adapter: str | None) -> dict:
    return {"bluez": {"adapter": adapter}} if adapter else {}


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
        return (
            f"cannot use the D-Bus system bus at {where} ({type(exc).__name__}: {exc}): "
            "is dbus running (apt install dbus)?"
        )
    try:
        reply = await asyncio.wait_for(
            bus.call(
                Message(
                    destination="org.bluez",
                    path="/",
                    interface="org.freedesktop.DBus.ObjectManager",
                    member="GetManagedObjects",
                )
            ),
            timeout_s,
        )
    except TimeoutError:
        return "BlueZ (org.bluez) does not answer on the system bus: systemctl restart bluetooth"
    finally:
        bus.disconnect()
    if reply.message_type == MessageType.ERROR:
        if reply.error_name == "org.freedesktop.DBus.Error.AccessDenied":
            return (
                "not allowed to talk to BlueZ on the system bus: sudo usermod -aG bluetooth $USER, "
                "then log in again"
            )
        return (
            "BlueZ (org.bluez) is not running on the system bus: apt install bluez; systemctl start bluetooth"
        )
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
    """Nearby heart-rate wearables and foot pods: advertising 0x180D or 0x1814, or a known
    wearable name. With `details`, connect briefly to read model, firmware and battery, the heart
    rate (`hr_bpm`), whether the strap sends RR intervals (`sends_rr`, decided as the service
    decides it, `BeatTimer.sends_rr`, within RR_PROBE_S: True, False for heart rate without RR
    intervals, or None when no heart rate came, e.g. from a strap not worn) and energy expended
    (`sends_energy`; these three only from a device with the Heart Rate Measurement), and which
    motion sources it offers (`motion`: its accelerometer's sample rates, a foot pod, or "none").
    Raises BluetoothUnavailable (see `bluetooth_problem`) when Bluetooth cannot work here."""
    from bleak import BleakClient, BleakScanner

    problem = await bluetooth_problem(adapter)
    if problem:
        raise BluetoothUnavailable(problem)
    found = await BleakScanner.discover(timeout=timeout_s, return_adv=True, **_bluez(adapter))
    out = []
    for address, (device, adv) in sorted(found.items(), key=lambda kv: -(kv[1][1].rssi or -999)):
        name = device.name or adv.local_name or ""
        uuids = [u.lower() for u in adv.service_uuids]
        if HR_SERVICE not in uuids and rsc.RSC_SERVICE not in uuids and not KNOWN_NAMES.search(name):
            continue
        row = {"name": name, "address": address, "rssi": adv.rssi}
        if details:
            try:
                async with BleakClient(device, timeout=15, **_bluez(adapter)) as client:
                    link = StrapLink(DeviceSpec("scan", address), emit=lambda e: None)
                    row.update(await link._read_info(client))
                    row["battery_pct"] = await link._read_battery(client)
                    if client.services.get_characteristic(HR_MEASUREMENT) is not None:
                        hr: list[int] = []
                        got: list[bytes] = []
                        await client.start_notify(
                            HR_MEASUREMENT, lambda c, d, hr=hr, got=got, link=link: _probe(link, hr, got, d)
                        )
                        deadline = time.monotonic() + RR_PROBE_S
                        while time.monotonic() < deadline and link.timer.sends_rr is None:
                            await asyncio.sleep(0.2)
                        row["hr_bpm"] = hr[-1] if hr else None
                        row["sends_rr"] = link.timer.sends_rr
                        row["sends_energy"] = any(_has_energy(p) for p in got)
                    row["motion"] = await motion_offered(client)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
        out.append(row)
    return out


async def motion_offered(client) -> str:
    """The motion sources a connected device offers, in words: a Polar accelerometer with the
    sample rates it offers, a foot pod, or "none". Starts nothing."""
    found = []
    services = client.services
    if services.get_characteristic(rsc.RSC_MEASUREMENT) is not None:
        found.append("foot pod (RSC)")
    if services.get_characteristic(pmd.PMD_CONTROL) and services.get_characteristic(pmd.PMD_DATA):
        try:
            types = pmd.supported_types(
                await asyncio.wait_for(client.read_gatt_char(pmd.PMD_CONTROL), PMD_ANSWER_S)
            )
            if pmd.ACC in types:
                control = _ControlPoint(client)
                await client.start_notify(pmd.PMD_CONTROL, control.on_indication)
                answer = await control.request(pmd.get_settings_command())
                if answer.ok:
                    rates = pmd.parse_settings(answer.params).get(pmd.SAMPLE_RATE)
                    found.append(f"accelerometer ({', '.join(f'{r:g}' for r in rates)} Hz)")
                else:
                    found.append(f"accelerometer (settings refused: {pmd.status_name(answer.status)})")
        except Exception as exc:  # noqa: BLE001 -- a probe: say what went wrong, never fail the scan
            found.append(f"accelerometer (not readable: {type(exc).__name__})")
    return ", ".join(found) or "none"


def _has_energy(payload: bytes) -> bool:
    try:
        return parse(payload).energy_kj is not None
    except MalformedMeasurement:
        return False


def _probe(link: StrapLink, hr: list[int], got: list[bytes], data: bytearray) -> None:
    """A notification during `scan --details`: timed like the service's (the decision on RR
    intervals), its heart rate kept when it is one, its payload kept."""
    got.append(bytes(data))
    try:
        m = parse(data)
    except MalformedMeasurement:
        return
    link.timer.notification(time.time(), m)
    if m.has_contact and MIN_HR_BPM <= m.hr_bpm <= MAX_HR_BPM:
        hr.append(m.hr_bpm)
