"""Real servers for tests: Mosquitto, VictoriaMetrics and InfluxDB 1.6.7 on free loopback ports.

Each is started from its Debian package binary with a private config and data folder, can be
killed and restarted on the same port (for outage scenarios), and is always stopped by the
fixture that made it.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def wait_for(fn, timeout: float = 15.0):
    """Poll `fn` until it returns something truthy (returned) or `timeout` s pass (last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def need(binary: str) -> str:
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.path.exists(p)), None
    )
    if path is None:
        pytest.skip(f"{binary} is not installed (scripts/test installs it with apt)")
    return path


class Server:
    """A server process that can be stopped, killed and started again with the same settings."""

    def __init__(self, name: str, argv: list[str], port: int, workdir: Path):
        self.name, self.argv, self.port, self.workdir = name, argv, port, workdir
        self.proc: subprocess.Popen | None = None
        self.log = workdir / f"{name}.log"

    def start(self) -> Server:
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start; its log:\n{self.log.read_text()[-2000:]}"
            ) from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def mosquitto(
    workdir: Path,
    users: dict[str, str] | None = None,
    acl: str | None = None,
    persistence: bool = False,
    tls: dict[str, str] | None = None,
) -> Server:
    """Mosquitto with a private config; with `users`, anonymous access is off and `acl` applies;
    with `persistence`, sessions and queued messages survive a restart; with `tls`
    ({cafile, certfile, keyfile}) the listener speaks TLS only."""
    binary = need("mosquitto")
    port = free_port()
    # Run as the current user: as root, mosquitto would switch to `mosquitto` and lose access
    # to the private test folder.
    lines = [
        f"listener {port} 127.0.0.1",
        f"user {getpass.getuser()}",
        f"log_dest file {workdir / 'mosquitto.log'}",
    ]
    if persistence:
        lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 1"]
    else:
        lines.append("persistence false")
    if tls:
        lines += [f"cafile {tls['cafile']}", f"certfile {tls['certfile']}", f"keyfile {tls['keyfile']}"]
        if tls.get("require_certificate"):
            lines.append("require_certificate true")
    if users:
        pw = workdir / "passwd"
        pw.write_text("")
        for user, password in users.items():
            subprocess.run([need("mosquitto_passwd"), "-b", str(pw), user, password], check=True)
        os.chmod(pw, 0o600)
        lines += ["allow_anonymous false", f"password_file {pw}"]
        if acl is not None:
            (workdir / "acl").write_text(acl)
            os.chmod(workdir / "acl", 0o600)
            lines.append(f"acl_file {workdir / 'acl'}")
    else:
        lines.append("allow_anonymous true")
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return Server("mosquitto", [binary, "-c", str(conf)], port, workdir)


def victoria_metrics(workdir: Path, dedup: bool = True) -> Server:
    """VictoriaMetrics as we tell users to run it: with de-duplication, so a point re-sent after
    a client time-out (same series, same millisecond) is kept once (`dedup=False`: the default
    of VictoriaMetrics, which keeps both)."""
    binary = need("victoria-metrics")
    port = free_port()
    argv = [
        binary,
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={workdir / 'vm-data'}",
        "-retentionPeriod=100y",
        "-search.latencyOffset=0s",
        "-search.disableCache",
    ]
    if dedup:
        argv.append("-dedup.minScrapeInterval=1ms")
    return Server("victoria-metrics", argv, port, workdir)


def vm_samples(server: Server, match: str) -> dict[tuple, list[tuple[int, float]]]:
    """Every stored sample of the series matching `match`, duplicates included:
    {(name, sorted tags): [(ts_ms, value), ...]}."""
    urllib.request.urlopen(server.url + "/internal/force_flush", timeout=10).read()
    query = urllib.parse.urlencode({"match[]": match, "start": "0"})
    body = urllib.request.urlopen(f"{server.url}/api/v1/export?{query}", timeout=30).read().decode()
    out: dict[tuple, list[tuple[int, float]]] = {}
    for row in body.splitlines():
        if not row.strip():
            continue
        rec = json.loads(row)
        metric = dict(rec["metric"])
        name = metric.pop("__name__")
        key = (name, tuple(sorted(metric.items())))
        out.setdefault(key, []).extend(zip(rec["timestamps"], rec["values"]))
    return out


def vm_export(server: Server, match: str) -> dict[tuple, dict[int, float]]:
    """All samples of the series matching `match`: {(name, sorted tags): {ts_ms: value}};
    fails when a series holds two samples with the same timestamp (a duplicate)."""
    out = {}
    for key, samples in vm_samples(server, match).items():
        series = dict(samples)
        assert len(series) == len(samples), f"{key}: {len(samples) - len(series)} duplicate samples"
        out[key] = series
    return out


def influxdb(workdir: Path, auth: bool = False) -> Server:
    """InfluxDB 1.6.7; with `auth`, HTTP authentication is on (create the first admin user with
    `influx_query` before anything else, as its documentation says)."""
    binary = need("influxd")
    port, rpc = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
        f'[meta]\n  dir = "{workdir}/meta"\n'
        f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        f"  auth-enabled = {'true' if auth else 'false'}\n"
        "[monitor]\n  store-enabled = false\n"
        "[ifql]\n  enabled = false\n"
    )
    return Server("influxd", [binary, "-config", str(conf)], port, workdir)


def influx_query(server: Server, q: str, db: str | None = None, auth: tuple[str, str] | None = None) -> dict:
    params = {"q": q, "epoch": "ms"}
    if db:
        params["db"] = db
    req = urllib.request.Request(server.url + "/query", data=urllib.parse.urlencode(params).encode())
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    return json.loads(urllib.request.urlopen(req, timeout=10).read())
