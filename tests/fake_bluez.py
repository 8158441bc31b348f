"""A fake BlueZ (bluetoothd) on a private D-Bus system bus, for unmodified bleak.

`PrivateSystemBus` runs a real `dbus-daemon` with a permissive system-bus policy on a Unix
socket in a temporary folder; `FakeBlueZ` connects to it with dbus-fast (bleak's own D-Bus
library), owns `org.bluez` and serves what bleak 3.x uses: the ObjectManager at `/`, an
`Adapter1` at `/org/bluez/hci0`, `Device1` objects, and at connect time the GATT objects at
BlueZ's paths (`.../dev_XX_XX_XX_XX_XX_XX/serviceNNNN/charNNNN`). Notifications are
`PropertiesChanged` of `GattCharacteristic1.Value`. A `FakeStrap` sends Heart Rate
Measurements about once a second from a script of RR intervals, like a chest strap; with
`sends_rr=False` heart rate alone, like many optical bands (`bytes([0x06, hr_bpm])`), and with
`worn=False` what a strap off the skin sends (contact not detected, heart rate 0).

With `pmd=True` it is also a Polar strap with the Polar Measurement Data service, answering on
its control point with the bytes of Polar's technical_documentation/online_measurement.pdf (the
H10's ACC settings, start and stop answers; status codes of the SDK's PmdControlPointResponse)
and streaming ACC frames (type 0x01, int16 mG) at the rate started, 25 Hz by default; any
command can be answered with any error status (`pmd_errors`), and, as the issue reports of an
H10, a stream nobody stopped stays on when the link drops. With `rsc=True` (and `is_hr=False`)
it is a foot pod: Running Speed and Cadence Measurements (GATT 0x2A53) once a tick.

Faults the tests can cause: a link loss (GATT objects removed, then `Connected=False`), the
strap switched off (not advertising, refusing connections), bluetoothd exiting (its bus
connection closes without any signal) and coming back, arbitrary bytes notified, a client that
dies while connected (`abandon_connection`, or a SIGKILLed process), a Disconnect that fails.

What BlueZ does when a client dies, as the fake does it: BlueZ keeps one notification session
per D-Bus client that called `StartNotify` and ends it when that client leaves the bus
(`Notifying` turns false with the last one: bluez src/gatt-client.c, notify_client_disconnect),
but the connection itself is not the client's: the device stays `Connected=true`, and a
connected LE peripheral does not advertise, so a scan never reports it (bluez issue #89, bleak
issues #315 and #367). `Device1.Disconnect` ends the link; `Connect` after that works.
Straps can sit on other adapters (`FakeBlueZ(adapters=("hci0", "hci1"))`, `FakeStrap.adapter`).
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dbus_fast import BusType, DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

HR_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
HR_MEASUREMENT = "00002a37-0000-1000-8000-00805f9b34fb"
BATTERY_SERVICE = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
DEVICE_INFO = "0000180a-0000-1000-8000-00805f9b34fb"
MANUFACTURER = "00002a29-0000-1000-8000-00805f9b34fb"
MODEL = "00002a24-0000-1000-8000-00805f9b34fb"
FIRMWARE = "00002a26-0000-1000-8000-00805f9b34fb"
PMD_SERVICE = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"
RSC_SERVICE = "00001814-0000-1000-8000-00805f9b34fb"
RSC_MEASUREMENT = "00002a53-0000-1000-8000-00805f9b34fb"

# The H10's ACC settings (online_measurement.pdf, section 5.2, after the 5-byte header): sample
# rates 25, 50, 100, 200 Hz; resolution 16 bits; ranges 2, 4, 8 G.
H10_ACC_SETTINGS = bytes.fromhex("00 04 19 00 32 00 64 00 C8 00 01 01 10 00 02 03 02 00 04 00 08 00")
# The H10's control-point read: 0x0F, then ECG (bit 0) and ACC (bit 2) supported.
H10_FEATURES = bytes.fromhex("0F 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
# The first timestamp of the document's H10 frame (ns since 2000-01-01): the fake sensor clock starts there.
H10_CLOCK_NS = 599618164814402794
# Status codes (the SDK's PmdControlPointResponseCode).
INVALID_OP_CODE, INVALID_MEASUREMENT_TYPE, INVALID_LENGTH, ALREADY_IN_STATE = 1, 2, 4, 6
INVALID_RESOLUTION, INVALID_SAMPLE_RATE, INVALID_RANGE = 7, 8, 9
# An ACC frame carries at most this many 6-byte samples (ATT MTU 247 - 3 - the 10-byte header).
MAX_FRAME_SAMPLES = 39

# Malformed payloads seen from real straps and in bug reports: a 16-bit heart rate announced but
# truncated, RR intervals with an odd stray byte, an RR interval of 0.
JUNK = (bytes([0x11, 0x48]), bytes([0x10, 0x48, 0x05]), bytes([0x10, 0x48, 0x00, 0x00]))

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""


class PrivateSystemBus:
    """A dbus-daemon of our own; `address` goes into DBUS_SYSTEM_BUS_ADDRESS."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sw-dbus-"))
        conf = self.dir / "system.conf"
        conf.write_text(BUS_CONFIG.format(socket=self.dir / "bus"))
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={conf}", "--print-address", "--nofork"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _dev_path(adapter: str, address: str) -> str:
    return f"/org/bluez/{adapter}/dev_" + address.replace(":", "_")


class Adapter(ServiceInterface):
    def __init__(self, bluez: FakeBlueZ, name: str = "hci0"):
        super().__init__("org.bluez.Adapter1")
        self.bluez = bluez
        self.hci = name  # not `name`: ServiceInterface.name is the interface's
        self._discovering = False
        self.discoveries = 0  # StartDiscovery calls: each is one scan by a client

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> s:  # noqa: F821
        return f"00:1A:7D:DA:71:{0x13 + int(self.hci.removeprefix('hci')):02X}"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> s:  # noqa: F821
        return f"fake-{self.hci}"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> s:  # noqa: F821
        return f"fake-{self.hci}"

    @dbus_property(access=PropertyAccess.READ)
    def Powered(self) -> b:  # noqa: F821
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Discovering(self) -> b:  # noqa: F821
        return self._discovering

    @dbus_property(access=PropertyAccess.READ)
    def Roles(self) -> "as":
        return ["central", "peripheral"]

    @method()
    def SetDiscoveryFilter(self, properties: "a{sv}"):
        return None

    @method()
    def StartDiscovery(self):
        self.discoveries += 1
        self._discovering = True
        self.emit_properties_changed({"Discovering": True})
        self.bluez.discovery_started()

    @method()
    def StopDiscovery(self):
        self._discovering = False
        self.emit_properties_changed({"Discovering": False})

    @method()
    def RemoveDevice(self, device: o):  # noqa: F821
        return None


class Device(ServiceInterface):
    def __init__(self, strap: FakeStrap):
        super().__init__("org.bluez.Device1")
        self.strap = strap
        self.connected = False
        self.resolved = False
        self.rssi = -60

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> s:  # noqa: F821
        return self.strap.address

    @dbus_property(access=PropertyAccess.READ)
    def AddressType(self) -> s:  # noqa: F821
        return "public"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> s:  # noqa: F821
        return self.strap.name

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> s:  # noqa: F821
        return self.strap.name

    @dbus_property(access=PropertyAccess.READ)
    def Adapter(self) -> o:  # noqa: F821
        return f"/org/bluez/{self.strap.adapter}"

    @dbus_property(access=PropertyAccess.READ)
    def RSSI(self) -> n:  # noqa: F821
        return self.rssi

    @dbus_property(access=PropertyAccess.READ)
    def UUIDs(self) -> "as":
        return self.strap.uuids

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> "a{qv}":
        return {0x006B: Variant("ay", b"\x33\x00")} if self.strap.is_hr else {}

    @dbus_property(access=PropertyAccess.READ)
    def ServiceData(self) -> "a{sv}":
        return {}

    @dbus_property(access=PropertyAccess.READ)
    def Connected(self) -> b:  # noqa: F821
        return self.connected

    @dbus_property(access=PropertyAccess.READ)
    def ServicesResolved(self) -> b:  # noqa: F821
        return self.resolved

    @dbus_property(access=PropertyAccess.READ)
    def Paired(self) -> b:  # noqa: F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Trusted(self) -> b:  # noqa: F821
        return False

    @dbus_property(access=PropertyAccess.READ)
    def Blocked(self) -> b:  # noqa: F821
        return False

    @method()
    async def Connect(self):
        if not self.strap.powered:
            raise DBusError("org.bluez.Error.Failed", "Software caused connection abort")
        await asyncio.sleep(0.05)
        self.connected = True
        self.emit_properties_changed({"Connected": True})
        self.strap.export_gatt()
        await asyncio.sleep(0.02)
        self.resolved = True
        self.emit_properties_changed({"ServicesResolved": True})
        self.strap.connections += 1

    @method()
    def Disconnect(self):
        if self.strap.refuses_disconnect:
            raise DBusError("org.bluez.Error.Failed", "Disconnect failed")
        self.strap.gatt_log.append("disconnect")
        self.strap.link_lost()

    @method()
    def Pair(self):
        raise DBusError("org.bluez.Error.NotSupported", "pairing is not needed")


class GattService(ServiceInterface):
    def __init__(self, uuid: str, device_path: str, handle: int):
        super().__init__("org.bluez.GattService1")
        self.uuid, self.device_path, self.handle = uuid, device_path, handle

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> s:  # noqa: F821
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> b:  # noqa: F821
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Device(self) -> o:  # noqa: F821
        return self.device_path

    @dbus_property(access=PropertyAccess.READ)
    def Handle(self) -> q:  # noqa: F821
        return self.handle

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> ao:  # noqa: F821
        return []


class GattCharacteristic(ServiceInterface):
    def __init__(self, strap: FakeStrap, uuid: str, path: str, handle: int, flags: list[str], value: bytes):
        super().__init__("org.bluez.GattCharacteristic1")
        self.strap, self.uuid, self.path, self.handle, self.flags = strap, uuid, path, handle, flags
        self.service_path = path.rsplit("/", 1)[0]
        self.value = value
        # D-Bus unique names of the clients that called StartNotify (see FakeBlueZ._on_message)
        self.notify_clients: set[str] = set()

    @property
    def notifying(self) -> bool:
        return bool(self.notify_clients)

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> s:  # noqa: F821
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> o:  # noqa: F821
        return self.service_path

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> ay:  # noqa: F821
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> b:  # noqa: F821
        return self.notifying

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        return self.flags

    @dbus_property(access=PropertyAccess.READ)
    def Handle(self) -> q:  # noqa: F821
        return self.handle

    @dbus_property(access=PropertyAccess.READ)
    def MTU(self) -> q:  # noqa: F821
        return 247

    @method()
    def ReadValue(self, options: "a{sv}") -> ay:  # noqa: F821
        if self.uuid == BATTERY_LEVEL:
            self.strap.battery_reads += 1
            self.value = bytes([self.strap.battery])
        return self.value

    def start_notify(self, client: str) -> None:
        was = self.notifying
        self.notify_clients.add(client)
        if not was:
            self.emit_properties_changed({"Notifying": True})

    @method()
    def WriteValue(self, value: ay, options: "a{sv}"):  # noqa: F821
        if "write" not in self.flags:
            raise DBusError("org.bluez.Error.NotPermitted", "Write not permitted")
        self.strap.written(self, bytes(value))

    def stop_notify(self, client: str) -> None:
        was = self.notifying
        self.notify_clients.discard(client)
        if was and not self.notifying:
            self.emit_properties_changed({"Notifying": False})

    def notify(self, value: bytes) -> None:
        self.value = value
        self.emit_properties_changed({"Value": value})


@dataclass
class FakeStrap:
    """A heart-rate strap (or, with `is_hr=False`, some other BLE device)."""

    address: str
    name: str
    rr_script: list[int] = field(default_factory=list)  # raw 1/1024 s intervals, looped
    is_hr: bool = True
    battery: int = 87
    model: str = "H10"
    manufacturer: str = "Polar Electro Oy"
    firmware: str = "5.0.0"
    powered: bool = True
    junk_every: int = 0  # every n-th notification is replaced by garbage bytes
    adapter: str = "hci0"  # the adapter whose range it is in
    refuses_disconnect: bool = False  # Device1.Disconnect fails (the link stays)
    silent: bool = False  # connected, but notifies nothing (a hung strap: the watchdog's case)
    # Polar Measurement Data (an H10's accelerometer)
    pmd: bool = False
    pmd_features: bytes = H10_FEATURES
    acc_settings: bytes = H10_ACC_SETTINGS
    pmd_errors: dict = field(default_factory=dict)  # op code -> status answered instead of success
    pmd_mute: set = field(default_factory=set)  # op codes carried out but never answered (a lost indication)
    acc_motion: str = "walking"  # the acceleration streamed: "walking" (108 steps/min) or "still"
    acc_frame_bytes: list = field(default_factory=list)  # frames to send instead of generated ones
    # a foot pod: (speed m/s, cadence steps/min, running) per tick, looped
    rsc: bool = False
    rsc_script: list = field(default_factory=lambda: [(1.4, 108, False)])
    sends_rr: bool = True  # False: heart rate only (RR flag clear), whatever the script says
    hr_bpm: int = 70
    worn: bool = True
    # accounting
    sent_rr: list[int] = field(default_factory=list)  # every RR value actually notified
    sent_junk: int = 0
    connections: int = 0
    battery_reads: int = 0
    gatt_log: list = field(default_factory=list)  # "write <hex>" per control-point write, "disconnect"
    acc_on: bool = False  # the accelerometer streams (survives a lost link, as on an H10)
    acc_rate: int = 0
    acc_starts: int = 0
    acc_stops: int = 0
    acc_sent: int = 0  # samples notified
    sent_rsc: int = 0
    bluez: FakeBlueZ | None = None

    def __post_init__(self) -> None:
        if self.is_hr:
            self.uuids = [HR_SERVICE, BATTERY_SERVICE, DEVICE_INFO] + ([PMD_SERVICE] if self.pmd else [])
        elif self.rsc:
            self.uuids = [RSC_SERVICE, BATTERY_SERVICE, DEVICE_INFO]
        else:
            self.uuids = ["0000feaa-0000-1000-8000-00805f9b34fb"]
        self.device = Device(self)
        self.path = _dev_path(self.adapter, self.address)
        self._gatt: list[tuple[str, ServiceInterface]] = []
        self.hr_char: GattCharacteristic | None = None
        self._pos = 0
        self._pending: list[int] = []
        self._notes = 0
        self._ahead = 0.0  # heart time (s) notified ahead of the ticks' total
        self.chars: dict[str, GattCharacteristic] = {}
        self._acc_clock_ns = H10_CLOCK_NS
        self._acc_due = 0.0  # samples owed to the stream (fractions carried between ticks)
        self._acc_phase = 0

    def export_gatt(self) -> None:
        bus = self.bluez.bus
        objs: list[tuple[str, ServiceInterface]] = []
        handle = 0x000B
        services = []
        if self.is_hr:
            services.append((HR_SERVICE, [(HR_MEASUREMENT, ["notify"], b"")]))
        if self.rsc:
            services.append((RSC_SERVICE, [(RSC_MEASUREMENT, ["notify"], b"")]))
        if self.is_hr or self.rsc:
            services += [
                (BATTERY_SERVICE, [(BATTERY_LEVEL, ["read", "notify"], bytes([self.battery]))]),
                (
                    DEVICE_INFO,
                    [
                        (MANUFACTURER, ["read"], self.manufacturer.encode()),
                        (MODEL, ["read"], self.model.encode()),
                        (FIRMWARE, ["read"], self.firmware.encode()),
                    ],
                ),
            ]
        if self.pmd:
            services.append(
                (
                    PMD_SERVICE,
                    [
                        (PMD_CONTROL, ["read", "write", "indicate"], self.pmd_features),
                        (PMD_DATA, ["notify"], b""),
                    ],
                )
            )
        for uuid, chars in services:
            handle += 1
            spath = f"{self.path}/service{handle:04x}"
            objs.append((spath, GattService(uuid, self.path, handle)))
            for cuuid, flags, value in chars:
                handle += 1
                cpath = f"{spath}/char{handle:04x}"
                char = GattCharacteristic(self, cuuid, cpath, handle, flags, value)
                objs.append((cpath, char))
                self.chars[cuuid] = char
                if cuuid == HR_MEASUREMENT:
                    self.hr_char = char
                handle += 1  # room for a descriptor handle, as on real devices
        for path, iface in objs:
            bus.export(path, iface)
        self._gatt = objs

    def link_lost(self) -> None:
        """The connection drops: GATT objects go first, then Connected=False (as BlueZ does)."""
        if self.bluez and self.bluez.bus and not self.bluez.bus._disconnected:
            for path, iface in reversed(self._gatt):
                self.bluez.bus.unexport(path, iface)
        self._gatt = []
        self.hr_char = None
        self.chars = {}
        self.device.connected = False
        self.device.resolved = False
        if self.bluez and self.bluez.bus and not self.bluez.bus._disconnected:
            self.device.emit_properties_changed({"Connected": False, "ServicesResolved": False})

    # -- Polar Measurement Data ------------------------------------------------------------------

    def written(self, char: GattCharacteristic, value: bytes) -> None:
        """A write to the PMD control point: answer it as an H10 does (an indication)."""
        if char.uuid != PMD_CONTROL:
            return
        self.gatt_log.append("write " + value.hex(" "))
        op = value[0] if value else 0
        mtype = value[1] if len(value) > 1 else 0
        if op in self.pmd_errors:  # refused: nothing changes
            status, params = self.pmd_errors[op], b""
        else:
            status, params = self._pmd_command(op, mtype, value[2:])
        if char.notifying and op not in self.pmd_mute:
            answer = bytes([0xF0, op, mtype, status])
            char.notify(answer + (bytes([0x00]) + params if status == 0 else b""))

    def _pmd_command(self, op: int, mtype: int, settings: bytes) -> tuple[int, bytes]:
        if op not in (1, 2, 3):
            return INVALID_OP_CODE, b""
        if len(settings) == 0 and mtype == 0 and op != 1:
            return INVALID_LENGTH, b""
        if mtype & 0x3F != 0x02:
            return INVALID_MEASUREMENT_TYPE, b""
        if op == 1:
            return 0, self.acc_settings
        if op == 3:
            if not self.acc_on:
                return ALREADY_IN_STATE, b""
            self.acc_on = False
            self.acc_stops += 1
            return 0, b""
        if self.acc_on:
            return ALREADY_IN_STATE, b""
        chosen, pos = {}, 0
        while pos + 2 <= len(settings):
            kind, count = settings[pos], settings[pos + 1]
            size = 1 if kind == 4 else 2
            chosen[kind] = int.from_bytes(settings[pos + 2 : pos + 2 + size], "little")
            pos += 2 + count * size
        offered = {0: (25, 50, 100, 200), 1: (16,), 2: (2, 4, 8)}
        for kind, error in ((0, INVALID_SAMPLE_RATE), (1, INVALID_RESOLUTION), (2, INVALID_RANGE)):
            if chosen.get(kind) not in offered[kind]:
                return error, b""
        self.acc_on, self.acc_rate = True, chosen[0]
        self.acc_starts += 1
        return 0, b"\x01"  # the H10's start answer carries one reserved byte

    def _stream_acc(self, seconds: float) -> None:
        """The samples of `seconds` of real time, as frames of at most MAX_FRAME_SAMPLES."""
        self._acc_due += seconds * self.acc_rate
        n = int(self._acc_due)
        self._acc_due -= n
        char = self.chars.get(PMD_DATA)
        listening = char is not None and char.notifying
        if self.acc_frame_bytes and listening:
            for frame in self.acc_frame_bytes:
                char.notify(frame)
            self.acc_frame_bytes = []
        step_ns = 1_000_000_000 // self.acc_rate
        while n > 0:
            k = min(n, MAX_FRAME_SAMPLES)
            n -= k
            body = b""
            for _ in range(k):
                self._acc_clock_ns += step_ns
                self._acc_phase += 1
                body += b"".join(round(v).to_bytes(2, "little", signed=True) for v in self._acc_sample())
            if listening:  # nobody listening: the samples are lost, the sensor clock runs on
                char.notify(bytes([0x02]) + self._acc_clock_ns.to_bytes(8, "little") + bytes([0x01]) + body)
                self.acc_sent += k

    def _acc_sample(self) -> tuple[float, float, float]:
        t = self._acc_phase / self.acc_rate
        wobble = ((self._acc_phase * 7919) % 13 - 6) * 0.5  # a few mG of deterministic noise
        if self.acc_motion == "walking":  # 108 steps/min, MAD ~ 200 mG (processing/motion.py)
            return 12.0 + wobble, 1000.0 + 315.0 * math.sin(2 * math.pi * 1.8 * t) + 8 * wobble, -40.0
        return 12.0 + wobble, 1000.0 + wobble, -40.0

    def _notify_rsc(self) -> None:
        char = self.chars.get(RSC_MEASUREMENT)
        if char is None or not char.notifying:
            return
        speed, cadence, running = self.rsc_script[self.sent_rsc % len(self.rsc_script)]
        self.sent_rsc += 1
        char.notify(
            bytes([0x04 if running else 0x00]) + round(speed * 256).to_bytes(2, "little") + bytes([cadence])
        )

    def tick(self, seconds: float, real_s: float | None = None) -> None:
        """Advance the strap's heart by ~`seconds` and notify the intervals that ended, if
        someone listens; intervals that end while nobody listens are never sent. A streaming
        accelerometer sends the samples of `real_s` (default `seconds`) of real time; a foot pod
        one measurement."""
        if self.silent:
            return
        if self.acc_on:
            self._stream_acc(seconds if real_s is None else real_s)
        if self.rsc:
            self._notify_rsc()
        if not self.is_hr:
            return
        # The heart time already sent beyond the previous ticks counts towards this one, so the
        # heart keeps pace with `seconds` instead of running ahead by up to a beat per tick.
        t = self._ahead
        script = self.rr_script or [round(61440 / self.hr_bpm)]  # a steady heart at hr_bpm
        while t < seconds:
            r = script[self._pos % len(script)]
            self._pos += 1
            t += r / 1024.0
            self._pending.append(r)
        self._ahead = t - seconds
        char = self.hr_char
        if char is None or not char.notifying:
            self._pending = []
            return
        self._notes += 1
        if self.junk_every and self._notes % self.junk_every == 0:
            junk = JUNK[self.sent_junk % len(JUNK)]
            self.sent_junk += 1
            char.notify(junk)  # the beats of this notification are lost with it
            self._pending = []
            return
        if not self.worn:
            char.notify(bytes([0x04, 0]))  # contact supported but not detected, no heart rate
            self._pending = []
            return
        if not self.sends_rr:
            char.notify(bytes([0x06, self.hr_bpm]))
            self._pending = []
            return
        # No interval ended in this tick: heart rate alone (no RR flag), as a strap sends it.
        flags = 0x16 if self._pending else 0x06
        payload = bytes([flags, self.hr_bpm]) + b"".join(r.to_bytes(2, "little") for r in self._pending)
        self.sent_rr += self._pending
        self._pending = []
        char.notify(payload)


class FakeBlueZ:
    """bluetoothd as bleak sees it. Call `start()`, add straps, `run_heartbeats()` in a task."""

    def __init__(self, bus_address: str, adapters: tuple[str, ...] = ("hci0",)):
        self.bus_address = bus_address
        self.bus: MessageBus | None = None
        self.adapter_names = adapters
        self.adapters = {name: Adapter(self, name) for name in adapters}
        self.straps: list[FakeStrap] = []

    async def start(self) -> None:
        self.bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
        self.adapters = {name: Adapter(self, name) for name in self.adapter_names}
        for name, adapter in self.adapters.items():
            self.bus.export(f"/org/bluez/{name}", adapter)
        for strap in self.straps:
            self._export_device(strap)
        self.bus.add_message_handler(self._on_message)
        await self.bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"],
            )
        )
        await self.bus.request_name("org.bluez")

    async def exit(self) -> None:
        """bluetoothd dies: its connection closes, objects vanish, no signal is sent."""
        for strap in self.straps:
            strap.hr_char = None
            strap._gatt = []
            strap.device.connected = strap.device.resolved = False
        self.bus.disconnect()
        await self.bus.wait_for_disconnect()

    def add(self, strap: FakeStrap) -> FakeStrap:
        strap.bluez = self
        self.straps.append(strap)
        if self.bus is not None:
            self._export_device(strap)
        return strap

    def _export_device(self, strap: FakeStrap) -> None:
        strap.device = Device(strap)
        self.bus.export(strap.path, strap.device)

    def _on_message(self, msg: Message):
        """Notification sessions per client: dbus-fast does not tell a method who called it, so
        StartNotify/StopNotify are answered here, where the caller's unique name is known; a
        client leaving the bus (NameOwnerChanged with no new owner) ends its sessions."""
        if msg.message_type == MessageType.SIGNAL and msg.member == "NameOwnerChanged":
            name, _old, new = msg.body
            if not new:
                for char in self._characteristics():
                    char.stop_notify(name)
            return None
        if (
            msg.message_type == MessageType.METHOD_CALL
            and msg.interface == "org.bluez.GattCharacteristic1"
            and msg.member in ("StartNotify", "StopNotify")
        ):
            char = next((c for c in self._characteristics() if c.path == msg.path), None)
            if char is None:
                return None  # dbus-fast answers: unknown object
            (char.start_notify if msg.member == "StartNotify" else char.stop_notify)(msg.sender)
            return Message.new_method_return(msg)
        return None

    def _characteristics(self):
        for strap in self.straps:
            for _, iface in strap._gatt:
                if isinstance(iface, GattCharacteristic):
                    yield iface

    def discovery_started(self) -> None:
        self.advertise()

    def advertise(self) -> None:
        """Powered straps in range of a discovering adapter send an advertisement (bleak sees an
        RSSI change); a connected peripheral does not advertise."""
        for strap in self.straps:
            if strap.powered and not strap.device.connected and self.adapters[strap.adapter]._discovering:
                strap.device.rssi = -60 + (strap.device.rssi == -60)
                strap.device.emit_properties_changed({"RSSI": strap.device.rssi})

    async def run_heartbeats(self, period: float = 1.0, speed: float = 1.0) -> None:
        """Every `period` s: each strap notifies the beats of `period * speed` s of heart time
        (speed > 1 makes hearts beat faster than the clock, for tests that need many beats);
        advertising continues."""
        while True:
            await asyncio.sleep(period)
            if self.bus is None or self.bus._disconnected:
                continue
            for strap in self.straps:
                if strap.powered:
                    strap.tick(period * speed, period)
            self.advertise()


async def abandon_connection(bus_address: str, strap: FakeStrap) -> None:
    """A client connects to `strap` over D-Bus, subscribes to its heart rate and dies without a
    word (its bus connection just closes), as a SIGKILLed process does: BlueZ keeps the link."""
    bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM).connect()
    try:
        for path, interface, member in (
            (strap.path, "org.bluez.Device1", "Connect"),
            (None, "org.bluez.GattCharacteristic1", "StartNotify"),
        ):
            reply = await bus.call(
                Message(
                    destination="org.bluez",
                    path=path or strap.hr_char.path,
                    interface=interface,
                    member=member,
                )
            )
            if reply.message_type == MessageType.ERROR:
                raise RuntimeError(f"{member}: {reply.error_name} {reply.body}")
    finally:
        bus.disconnect()
    await bus.wait_for_disconnect()


def env_for(bus: PrivateSystemBus) -> dict[str, str]:
    return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address}
