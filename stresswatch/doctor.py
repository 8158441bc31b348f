"""`stresswatch doctor`: checks what the service needs on this machine and says what to fix.

Each check returns a `Finding`: ok, a warning (the service runs, but something is off), or a
problem that blocks the service; every non-ok finding carries the fix in one line. Nothing is
changed: the checks only look (a test write to the state directory is removed again; the MQTT
check connects and disconnects without publishing).
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sinks.redact import redact_url
from sinks.store import lock_holder
from stresswatch.command import EXIT_NOT_DONE, EXIT_OK
from stresswatch.config import Config, load
from stresswatch.timesync import UNSYNCED_FIX, ClockState, kernel_clock_state

# Below this free space the outbox (~100 bytes a beat) could fill the disk within days of an outage.
MIN_FREE_BYTES = 200 * 1024 * 1024
TIMEOUT_S = 5.0


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    PROBLEM = "PROBLEM"


@dataclass(frozen=True)
class Finding:
    what: str
    level: Level
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level.value:<8s}{self.what}: {self.detail}"
        return text + (f"\n        fix: {self.fix}" if self.fix else "")


def check_all(cfg: Config) -> list[Finding]:
    found = [check_python(), check_clock(), *check_state(cfg)]
    bluetooth = check_bluetooth(cfg)
    found += bluetooth
    if cfg.devices and not any(f.what == "bluetooth" and f.level != Level.OK for f in bluetooth):
        found += check_devices(cfg)
    found += check_straps(cfg)
    if cfg.mqtt.url is not None:
        found.append(check_mqtt(cfg))
    if cfg.influx.url is not None:
        found += check_influx(cfg)
    if cfg.kafka.bootstrap_servers is not None:
        found += check_kafka(cfg)
    return found


def check_kafka(cfg: Config) -> list[Finding]:
    """The Kafka cluster of `collect`, `worker` and `deliver`: reachable with the credentials,
    enough brokers for the replication, and topics with the configured partition count."""
    k = cfg.kafka
    what = f"kafka {k.bootstrap_servers}"
    try:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient
    except ImportError:
        return [
            Finding(
                what,
                Level.PROBLEM,
                "the Kafka client is not installed",
                "pip install 'stresswatch[kafka]' (Quix Streams and confluent-kafka)",
            )
        ]
    try:
        md = AdminClient({**k.client_config(), "socket.timeout.ms": int(TIMEOUT_S * 1000)}).list_topics(
            timeout=TIMEOUT_S
        )
    except KafkaException as exc:
        err = exc.args[0]
        fix = (
            "check [kafka] username and password"
            if "auth" in err.str().lower()
            else "check [kafka] bootstrap_servers, security_protocol and that the brokers run"
        )
        return [Finding(what, Level.PROBLEM, f"no answer: {err.str()}", fix)]
    out = []
    brokers = len(md.brokers)
    if brokers < k.replication:
        out.append(
            Finding(
                what,
                Level.PROBLEM,
                f"{brokers} broker(s) for replication {k.replication}: topics cannot be created",
                "lower [kafka] replication or add brokers",
            )
        )
    else:
        out.append(Finding(what, Level.OK, f"{brokers} broker(s) answer, controller {md.controller_id}"))
    for topic in k.topics().values():
        t = md.topics.get(topic)
        if t is None:
            out.append(
                Finding(
                    f"kafka topic {topic}",
                    Level.OK,
                    "not there yet: the first collector or worker creates it",
                )
            )
        elif len(t.partitions) != k.partitions:
            out.append(
                Finding(
                    f"kafka topic {topic}",
                    Level.WARN,
                    f"has {len(t.partitions)} partitions, [kafka] partitions says {k.partitions}",
                    "people are placed by the topic's own count; set [kafka] partitions to it",
                )
            )
        else:
            out.append(Finding(f"kafka topic {topic}", Level.OK, f"{len(t.partitions)} partitions"))
    return out


def check_python() -> Finding:
    v = sys.version_info
    if v < (3, 11):
        return Finding("python", Level.PROBLEM, f"{v.major}.{v.minor} is too old", "install Python >= 3.11")
    return Finding("python", Level.OK, f"{v.major}.{v.minor}.{v.micro}")


def check_clock(state: ClockState | None = None) -> Finding:
    """Whether the kernel says the clock is synchronised (stresswatch/timesync.py); `state` for tests."""
    state = kernel_clock_state() if state is None else state
    if state.synchronised:
        return Finding("system clock", Level.OK, state.detail)
    if state.synchronised is None:
        return Finding(
            "system clock",
            Level.WARN,
            f"cannot tell whether it is synchronised: {state.detail}",
            "check `timedatectl`: it should say 'System clock synchronized: yes'",
        )
    return Finding("system clock", Level.WARN, state.detail, UNSYNCED_FIX)


def check_state(cfg: Config) -> list[Finding]:
    """Writable, private (health data), with room for an outbox that grows during outages."""
    path = Path(cfg.state.directory).expanduser()
    what = f"state directory {path}"
    if path.exists() and not path.is_dir():
        return [
            Finding(what, Level.PROBLEM, "is a file, not a directory", "point [state] directory elsewhere")
        ]
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        return [
            Finding(
                what,
                Level.PROBLEM,
                f"{existing} is not writable by this user",
                f"create it for this user: mkdir -p {path} && chmod 700 {path}",
            )
        ]
    out = []
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        out.append(
            Finding(
                what,
                Level.WARN,
                f"only {free / 2**20:.0f} MiB free",
                "free some space: an outage buffers every beat on disk",
            )
        )
    if path.exists() and path.stat().st_mode & 0o077:
        out.append(
            Finding(
                what,
                Level.WARN,
                f"readable by others (mode {path.stat().st_mode & 0o777:o})",
                f"chmod 700 {path}",
            )
        )
    if not out:
        out.append(Finding(what, Level.OK, f"writable, {free / 2**30:.1f} GiB free"))
    pid = lock_holder(path)  # looks only: a service starting now must not find the lock taken
    out.append(
        Finding(
            "service",
            Level.OK,
            f"running as PID {pid} on this state directory" if pid else "not running on this state directory",
        )
    )
    return out


def check_bluetooth(cfg: Config) -> list[Finding]:
    """D-Bus, BlueZ and the adapter (blocking only when straps are configured), and the group."""
    import asyncio

    from collector.ble import bluetooth_problem

    level = Level.PROBLEM if cfg.devices else Level.WARN
    out = [bluez_version_finding(_bluez_version_text(), level)]
    # bluetooth_problem's line already ends with what to do ("...: apt install dbus")
    problem = asyncio.run(bluetooth_problem(cfg.bluetooth.adapter))
    if problem:
        out.append(Finding("bluetooth", level, problem))
    else:
        out.append(
            Finding(
                "bluetooth", Level.OK, f"BlueZ answers, adapter {cfg.bluetooth.adapter or 'default'} present"
            )
        )
    if os.geteuid() != 0:
        try:
            if grp.getgrnam("bluetooth").gr_gid not in os.getgroups():
                out.append(
                    Finding(
                        "bluetooth group",
                        level,
                        "this user is not in the `bluetooth` group",
                        "sudo usermod -aG bluetooth $USER, then log in again",
                    )
                )
        except KeyError:
            out.append(
                Finding("bluetooth group", level, "there is no `bluetooth` group", "sudo apt install bluez")
            )
    return out


# How long `check_devices` listens for the configured straps (a strap advertises several times a second).
DEVICE_SCAN_S = 8.0


def check_devices(cfg: Config, timeout_s: float = DEVICE_SCAN_S) -> list[Finding]:
    """Each configured device that advertises: model, battery, whether it sends RR intervals, and
    which motion sources it offers (an accelerometer and its rates, a foot pod, none); a device
    not seen is a warning (a strap sleeps without skin contact)."""
    import asyncio

    from collector.ble import RR_PROBE_S, BluetoothUnavailable, DeviceSpec, scan

    try:
        rows = asyncio.run(scan(timeout_s, details=True, adapter=cfg.bluetooth.adapter))
    except BluetoothUnavailable:  # check_bluetooth has said why
        return []
    out = []
    for d in cfg.devices:
        spec = DeviceSpec(d.person, d.address, d.name)
        what = f"device {spec.label} ({d.person})"
        row = next((r for r in rows if spec.matches(r["address"], r["name"])), None)
        if row is None:
            out.append(
                Finding(
                    what,
                    Level.WARN,
                    f"not seen in {timeout_s:g} s of scanning",
                    "wear it (Polar straps sleep without skin contact) and close phone apps that hold "
                    "it; `stresswatch scan` lists what advertises",
                )
            )
        elif "error" in row:
            out.append(
                Finding(
                    what,
                    Level.WARN,
                    f"seen, but connecting failed: {row['error']}",
                    "try again; if it persists, remove and re-pair it in bluetoothctl",
                )
            )
        else:
            foot_pod = "foot pod" in row.get("motion", "")
            sends_rr = row.get("sends_rr")  # None: no heart rate came (not worn), or a foot pod
            rr = (
                "yes"
                if sends_rr
                else "no"
                if sends_rr is False or foot_pod
                else "unknown (no heart rate came)"
            )
            detail = (
                f"{row.get('model') or row['name']}, battery {row.get('battery_pct')} %, RR intervals "
                f"{rr}, motion: {row.get('motion', 'none')}"
            )
            if sends_rr or foot_pod:
                out.append(Finding(what, Level.OK, detail))
            elif sends_rr is False:
                out.append(
                    Finding(
                        what,
                        Level.WARN,
                        detail,
                        "this device sends heart rate without RR intervals: no HRV from it; a chest "
                        "strap does",
                    )
                )
            else:
                out.append(
                    Finding(
                        what,
                        Level.WARN,
                        detail,
                        f"no heart rate came within {RR_PROBE_S:g} s: wear it (a strap measures only "
                        "on the skin) and run doctor again",
                    )
                )
    return out


def check_straps(cfg: Config) -> list[Finding]:
    """Each configured strap the service has seen: whether it sends RR intervals (HRV needs
    them). Read from what the service kept in the state store (`Service._remember_rr`): the
    service holds the strap's one connection, so doctor cannot ask the strap itself."""
    from datetime import datetime

    from alerts.timeofday import zone
    from collector.ble import DeviceSpec
    from sinks.store import StoreError, peek_saved_states
    from stresswatch.device_health import saved_key

    tz = zone(cfg.service.zone_name(), "service.timezone")

    straps = [(d.person, DeviceSpec(d.person, d.address, d.name).label) for d in cfg.devices]
    keys = [saved_key(person, label) for person, label in straps]
    try:
        seen = peek_saved_states(cfg.state_path, keys)
    except StoreError as exc:
        return [
            Finding(
                "straps",
                Level.WARN,
                f"what the service saw of the straps is unknown: {exc}",
                "run doctor as the user the service runs as",
            )
        ]
    out = []
    for (person, label), key in zip(straps, keys):
        saved = seen.get(key)
        if saved is None:
            continue  # not seen by the service yet: `stresswatch scan --details` tells
        what = f"strap {label} ({person})"
        when = datetime.fromtimestamp(saved.get("time") or 0, tz).strftime("%Y-%m-%d %H:%M")
        if saved.get("sends_rr"):
            out.append(Finding(what, Level.OK, f"sends RR intervals (seen by the service {when})"))
        else:
            out.append(
                Finding(
                    what,
                    Level.WARN,
                    f"sends heart rate without RR intervals (seen by the service {when}): heart rate is recorded, "
                    "but HRV and the stress state are unavailable from it",
                    "HRV needs RR intervals: wear a strap that sends them (a chest strap such as Polar H10, Garmin "
                    "HRM-Pro or Wahoo TICKR; some send them only after a firmware update); `stresswatch scan "
                    "--details` shows sends_rr",
                )
            )
    return out


# bleak's BlueZ backend needs BlueZ 5.55 or newer (README "Bluetooth").
MIN_BLUEZ = (5, 55)


def _bluez_version_text() -> str | None:
    """What `bluetoothctl --version` (or bluetoothd's) prints, or None when BlueZ is not installed."""
    import subprocess

    for argv in (
        ["bluetoothctl", "--version"],
        ["/usr/libexec/bluetooth/bluetoothd", "--version"],
        ["/usr/lib/bluetooth/bluetoothd", "--version"],
    ):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return None


def bluez_version_finding(text: str | None, level: Level) -> Finding:
    """The installed BlueZ version against MIN_BLUEZ, from `bluetoothctl --version` ("bluetoothctl: 5.66")."""
    if text is None:
        return Finding("BlueZ", level, "not installed", "sudo apt install bluez")
    import re

    m = re.search(r"(\d+)\.(\d+)", text)
    if not m:
        return Finding(
            "BlueZ", Level.WARN, f"version not understood: {text!r}", "check `bluetoothctl --version`"
        )
    version = (int(m.group(1)), int(m.group(2)))
    if version < MIN_BLUEZ:
        return Finding(
            "BlueZ",
            level,
            f"{version[0]}.{version[1]} is older than {MIN_BLUEZ[0]}.{MIN_BLUEZ[1]}",
            "upgrade BlueZ (Raspberry Pi OS Bookworm ships 5.66)",
        )
    return Finding("BlueZ", Level.OK, f"{version[0]}.{version[1]}")


def check_mqtt(cfg: Config) -> Finding:
    """Connects once (no publishing) and reports the broker's answer."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from sinks.mqtt import authenticate

    s = cfg.mqtt.settings()
    what = f"MQTT broker {s.host}:{s.port}"
    done = threading.Event()
    result: dict = {}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{s.client_id}-doctor", protocol=mqtt.MQTTv5)
    authenticate(c, s)

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        done.set()

    c.on_connect = on_connect
    try:
        c.connect(s.host, s.port, keepalive=10)
    except OSError as exc:  # refused, unreachable, TLS handshake or certificate errors
        return Finding(
            what,
            Level.PROBLEM,
            f"cannot connect: {exc.strerror or exc}",
            "is the broker running and the [mqtt] url right? (mosquitto: systemctl status mosquitto)",
        )
    c.loop_start()
    try:
        if not done.wait(TIMEOUT_S):
            return Finding(
                what, Level.PROBLEM, f"no answer within {TIMEOUT_S:g} s", "check the [mqtt] url and port"
            )
        rc = result["rc"]
        if rc.is_failure:
            fix = (
                "check [mqtt] username and password (or password_file)"
                if rc.value in (0x86, 0x87, 4, 5)
                else "see the broker's log"
            )
            return Finding(what, Level.PROBLEM, f"the broker refused the connection: {rc}", fix)
    finally:
        c.disconnect()
        c.loop_stop()
    auth = "with a password" if s.username else "anonymously"
    tls = "over TLS" if s.tls else "without TLS"
    return Finding(what, Level.OK, f"connected {auth}, {tls}")


def check_influx(cfg: Config) -> list[Finding]:
    """Reachable, credentials accepted, the database (bucket) exists, InfluxQL answers."""
    i = cfg.influx
    s = i.settings()
    base = s.url.rstrip("/")
    what = f"InfluxDB {redact_url(base)}"
    headers = {}
    if s.api == "v1" and s.username:
        import base64

        headers["Authorization"] = "Basic " + base64.b64encode(f"{s.username}:{s.password}".encode()).decode()
    elif s.token:
        headers["Authorization"] = f"Token {s.token}"
    try:
        status, _ = _http("GET", base + "/ping", headers)
    except OSError as exc:
        return [
            Finding(
                what,
                Level.PROBLEM,
                f"not reachable: {getattr(exc, 'reason', None) or exc}",
                "is InfluxDB running and the [influx] url right?",
            )
        ]
    if status >= 400:
        return [Finding(what, Level.PROBLEM, f"/ping answered {status}", "check the [influx] url")]
    db = s.bucket.split("/")[0]
    query = urllib.parse.urlencode({"q": "SHOW DATABASES"})
    try:
        status, body = _http("GET", f"{base}/query?{query}", headers)
    except OSError as exc:
        return [Finding(what, Level.PROBLEM, f"InfluxQL query failed: {exc}", "check the [influx] url")]
    if status in (401, 403):
        key = "username and password" if s.api == "v1" else "token (or token_file)"
        return [Finding(what, Level.PROBLEM, f"credentials refused ({status})", f"check [influx] {key}")]
    if status == 404 and s.api == "v2":
        return [
            Finding(
                what,
                Level.PROBLEM,
                "no InfluxQL endpoint (/query)",
                "InfluxDB 2.x/3.x: enable the v1 compatibility API and a DBRP mapping for the dashboards",
            )
        ]
    if status >= 400:
        return [
            Finding(what, Level.PROBLEM, f"InfluxQL answered {status}: {body[:200]}", "see the server's log")
        ]
    names = _database_names(body)
    if names is not None and db not in names:
        fix = (
            f"create it: influx -execute 'CREATE DATABASE \"{db}\"'"
            if s.api == "v1"
            else f"create bucket {db!r} and a DBRP mapping for it"
        )
        return [
            Finding(
                what,
                Level.PROBLEM,
                f"database {db!r} does not exist (there are: {', '.join(names) or 'none'})",
                fix,
            )
        ]
    version = ""
    if s.api == "v2" and _looks_like_influx_1x(base, headers):
        return [
            Finding(
                what,
                Level.PROBLEM,
                "this is InfluxDB 1.x before 1.8, which has no v2 write API",
                'set [influx] api = "v1"',
            )
        ]
    return [Finding(what, Level.OK, f"reachable, database {db!r} exists, InfluxQL answers{version}")]


def _http(method: str, url: str, headers: dict) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _database_names(body: str) -> list[str] | None:
    try:
        series = json.loads(body)["results"][0].get("series") or []
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return [row[0] for s in series for row in s.get("values") or []]


def _looks_like_influx_1x(base: str, headers: dict) -> bool:
    """InfluxDB < 1.8 answers /ping with X-Influxdb-Version 1.x and has no /api/v2/write."""
    req = urllib.request.Request(base + "/ping", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            version = resp.headers.get("X-Influxdb-Version", "")
    except OSError:
        return False
    parts = version.lstrip("v").split(".")
    try:
        return int(parts[0]) == 1 and int(parts[1]) < 8
    except (ValueError, IndexError):
        return False


def command(args) -> int:
    """`stresswatch doctor`: every finding with its fix; exit 1 when something blocks the service
    (a PROBLEM), 0 otherwise (warnings included)."""
    findings = check_all(load(args.config))
    for f in findings:
        print(f.line())
    problems = sum(f.level == Level.PROBLEM for f in findings)
    print(f"\n{problems} problem(s) block the service" if problems else "\nnothing blocks the service")
    return EXIT_NOT_DONE if problems else EXIT_OK
