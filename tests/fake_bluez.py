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

Faults the tests can cause: a link loss (GATT objects removed, then `Connected=False`), the
strap switched off (not advertising, refusing connections), bluetoothd exiting (its bus
connection closes without any signal) and coming back, and arbitrary bytes notified.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dbus_fast import BusType, DBusError, Variant
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
            stdout=subprocess.PIPE, text=True,
        )
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("dbus-daemon did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _dev_path(address: str) -> str:
    return "/org/bluez/hci0/dev_" + address.replace(":", "_")


class Adapter(ServiceInterface):
    def __init__(self, bluez: FakeBlueZ):
        super().__init__("org.bluez.Adapter1")
        self.bluez = bluez
        self._discovering = False

    @dbus_property(access=PropertyAccess.READ)
    def Address(self) -> s:  # noqa: F821
        return "00:1A:7D:DA:71:13"

    @dbus_property(access=PropertyAccess.READ)
    def Name(self) -> s:  # noqa: F821
        return "fake-hci0"

    @dbus_property(access=PropertyAccess.READ)
    def Alias(self) -> s:  # noqa: F821
        return "fake-hci0"

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
        return "/org/bluez/hci0"

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
    def __init__(self, strap: FakeStrap, uuid: str, service_path: str, handle: int, flags: list[str], value: bytes):
        super().__init__("org.bluez.GattCharacteristic1")
        self.strap, self.uuid, self.service_path, self.handle, self.flags = strap, uuid, service_path, handle, flags
        self.value = value
        self.notifying = False

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

    @method()
    def StartNotify(self):
        self.notifying = True
        self.emit_properties_changed({"Notifying": True})

    @method()
    def StopNotify(self):
        self.notifying = False
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
    sends_rr: bool = True  # False: heart rate only (RR flag clear), whatever the script says
    hr_bpm: int = 70
    worn: bool = True
    # accounting
    sent_rr: list[int] = field(default_factory=list)  # every RR value actually notified
    sent_junk: int = 0
    connections: int = 0
    battery_reads: int = 0
    bluez: FakeBlueZ | None = None

    def __post_init__(self) -> None:
        self.uuids = [HR_SERVICE, BATTERY_SERVICE, DEVICE_INFO] if self.is_hr else ["0000feaa-0000-1000-8000-00805f9b34fb"]
        self.device = Device(self)
        self.path = _dev_path(self.address)
        self._gatt: list[tuple[str, ServiceInterface]] = []
        self.hr_char: GattCharacteristic | None = None
        self._pos = 0
        self._pending: list[int] = []
        self._notes = 0
        self._ahead = 0.0  # heart time (s) notified ahead of the ticks' total

    def export_gatt(self) -> None:
        bus = self.bluez.bus
        objs: list[tuple[str, ServiceInterface]] = []
        handle = 0x000B
        for uuid, chars in (
            (HR_SERVICE, [(HR_MEASUREMENT, ["notify"], b"")]),
            (BATTERY_SERVICE, [(BATTERY_LEVEL, ["read", "notify"], bytes([self.battery]))]),
            (DEVICE_INFO, [(MANUFACTURER, ["read"], self.manufacturer.encode()),
                           (MODEL, ["read"], self.model.encode()), (FIRMWARE, ["read"], self.firmware.encode())]),
        ):
            if not self.is_hr:
                break
            handle += 1
            spath = f"{self.path}/service{handle:04x}"
            objs.append((spath, GattService(uuid, self.path, handle)))
            for cuuid, flags, value in chars:
                handle += 1
                cpath = f"{spath}/char{handle:04x}"
                char = GattCharacteristic(self, cuuid, spath, handle, flags, value)
                objs.append((cpath, char))
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
        self.device.connected = False
        self.device.resolved = False
        if self.bluez and self.bluez.bus and not self.bluez.bus._disconnected:
            self.device.emit_properties_changed({"Connected": False, "ServicesResolved": False})

    def tick(self, seconds: float) -> None:
        """Advance the strap's heart by ~`seconds` and notify the intervals that ended, if
        someone listens; intervals that end while nobody listens are never sent."""
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

    def __init__(self, bus_address: str):
        self.bus_address = bus_address
        self.bus: MessageBus | None = None
        self.adapter = Adapter(self)
        self.straps: list[FakeStrap] = []

    async def start(self) -> None:
        self.bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
        self.adapter = Adapter(self)
        self.bus.export("/org/bluez/hci0", self.adapter)
        for strap in self.straps:
            self._export_device(strap)
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

    def discovery_started(self) -> None:
        self.advertise()

    def advertise(self) -> None:
        """Powered straps in range send an advertisement (bleak sees an RSSI change)."""
        if not self.adapter._discovering:
            return
        for strap in self.straps:
            if strap.powered and not strap.device.connected:
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
                if strap.powered and strap.is_hr:
                    strap.tick(period * speed)
            self.advertise()


def env_for(bus: PrivateSystemBus) -> dict[str, str]:
    return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address}
