"""deploy/stresswatch.service, deploy/sysusers.d and deploy/stresswatch.toml.example, checked by
the tools that will read them: systemd-analyze, systemd-sysusers and `stresswatch config check`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "stresswatch.service"
EXAMPLE = DEPLOY / "stresswatch.toml.example"
EXEC = "/opt/stresswatch/.venv/bin/stresswatch"
EXEC_START = f"{EXEC} --config /etc/stresswatch/stresswatch.toml run --quiet"


def systemd_tool(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not os.path.exists(path):
        pytest.skip(f"{name} is not installed (Debian package systemd)")
    return path


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (a key may repeat), comments and sections dropped."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        s = raw.strip()
        if not s or s.startswith(("#", ";", "[")):
            continue
        key, _, value = s.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def installable_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    exe = tmp_path / "bin" / "stresswatch"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    text = UNIT.read_text() if text is None else text
    assert text.count(EXEC) == 1
    unit = tmp_path / "stresswatch.service"
    unit.write_text(text.replace(EXEC, str(exe)))
    return unit


def verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [systemd_tool("systemd-analyze"), "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path):
    unit = installable_copy(tmp_path)
    proc = verify(unit)
    assert proc.returncode == 0, proc.stderr
    about_unit = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "stresswatch" in ln]
    assert about_unit == []


def test_verify_would_catch_a_misspelt_setting(tmp_path):
    # The check above is only worth something if verify speaks up about our unit's mistakes.
    unit = installable_copy(tmp_path, UNIT.read_text().replace("ProtectSystem=", "ProtectSytem="))
    proc = verify(unit)
    assert "Unknown key 'ProtectSytem'" in proc.stderr


def test_the_unit_runs_the_service_as_a_static_bluetooth_user_with_a_state_directory():
    s = unit_settings(UNIT.read_text())
    assert s["ExecStart"] == [EXEC_START]
    assert s["User"] == ["stresswatch"] and "bluetooth" in s["SupplementaryGroups"][0].split()
    assert "DynamicUser" not in s  # BlueZ's D-Bus policy checks the user's groups in /etc/group
    assert s["Restart"] == ["on-failure"]
    assert s["StateDirectory"] == ["stresswatch"]
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    for key, value in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
    ]:
        assert s[key] == [value], key


def test_the_unit_starts_after_the_clock_is_synchronised():
    """Issue 16: a Pi has no real-time clock. Ordered after time-sync.target, not pulling it in
    (systemd.special(7): the NTP service does, and systemd-time-wait-sync delays it)."""
    s = unit_settings(UNIT.read_text())
    assert "time-sync.target" in " ".join(s["After"]).split()
    assert "time-sync.target" not in " ".join(s.get("Wants", [])).split()


def allowed_syscalls(filters: list[str]) -> set[str]:
    """The system calls an allow-list SystemCallFilter= lets through, groups expanded by systemd-analyze."""
    out: set[str] = set()
    todo = [name for line in filters for name in line.split()]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if not name.startswith("@"):
            out.add(name)
            continue
        proc = subprocess.run(
            [systemd_tool("systemd-analyze"), "syscall-filter", "--no-pager", name],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        todo += [
            ln.strip() for ln in proc.stdout.splitlines()[1:] if ln.strip() and not ln.strip().startswith("#")
        ]
    return out


def test_the_service_may_read_the_clock_state_but_never_set_the_clock():
    """stresswatch/timesync.py reads the kernel's clock state with adjtimex (glibc makes it the
    clock_adjtime call); setting the clock stays impossible: no CAP_SYS_TIME."""
    s = unit_settings(UNIT.read_text())
    allowed = allowed_syscalls(s["SystemCallFilter"])
    assert {"adjtimex", "clock_adjtime"} <= allowed
    assert not {"clock_settime", "settimeofday"} & allowed
    assert s["CapabilityBoundingSet"] == [""] and s["AmbientCapabilities"] == [""]
    assert s.get("ProtectClock", ["no"]) == ["no"]  # its filter refuses even reading (systemd #26413)


def test_the_unit_exposure_is_rated_ok_by_systemd_analyze_security(tmp_path):
    unit = installable_copy(tmp_path)
    # --threshold is on systemd's 0-100 scale (printed /10): 20 = at most 2.0 (it is 1.8 with systemd 252:
    # 1.5 before adjtimex was let through, without ProtectClock=, for the clock check).
    proc = subprocess.run(
        [systemd_tool("systemd-analyze"), "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr
    assert "Overall exposure level for stresswatch.service" in proc.stdout


def test_the_sysusers_snippet_creates_the_user_in_the_bluetooth_group(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nbluetooth:x:112:\n")
    snippet = (DEPLOY / "sysusers.d" / "stresswatch.conf").read_text()
    proc = subprocess.run(
        [systemd_tool("systemd-sysusers"), f"--root={tmp_path}", "--dry-run", "-"],
        input=snippet,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Creating user 'stresswatch'" in proc.stderr + proc.stdout
    entries = [ln.split() for ln in snippet.splitlines() if ln and not ln.startswith("#")]
    assert ["m", "stresswatch", "bluetooth"] in entries
    assert entries[0][:2] == ["u", "stresswatch"] and entries[0][-1] == "/var/lib/stresswatch"


def config_check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRESSWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**clean, **env},
        cwd=ROOT,
    )


@pytest.mark.slow
def test_the_example_config_passes_config_check_once_its_secret_files_exist(tmp_path):
    secrets = {}
    for key in ("MQTT__PASSWORD_FILE", "INFLUX__TOKEN_FILE"):
        f = tmp_path / key.lower()
        f.write_text("s3cret\n")
        secrets[f"STRESSWATCH_{key}"] = str(f)
    proc = config_check(EXAMPLE, secrets)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_example_config_names_the_secret_files_the_readme_asks_for():
    proc = config_check(EXAMPLE, {})
    assert proc.returncode == 2
    assert "mqtt.password_file: file '/etc/stresswatch/mqtt-password' does not exist" in proc.stderr
    assert "influx.token_file: file '/etc/stresswatch/influx-token' does not exist" in proc.stderr
    readme = (ROOT / "README.md").read_text()
    assert "/etc/stresswatch/mqtt-password" in readme and "/etc/stresswatch/influx-token" in readme


def test_the_example_config_keeps_state_where_systemd_gives_the_service_a_directory():
    cfg = tomllib.loads(EXAMPLE.read_text())
    assert cfg["state"]["directory"] == "/var/lib/" + unit_settings(UNIT.read_text())["StateDirectory"][0]


# Run the service's code under the kernel's own W^X rule (PR_SET_MDWE, Linux >= 6.3), the
# rule MemoryDenyWriteExecute=yes sets up with seccomp: a module that needs a writable and
# executable mapping (a JIT, libffi closures without static trampolines) fails here.
MDWE = r"""
import ctypes, mmap, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("a writable and executable mapping was allowed: the guard is not on")
except PermissionError:
    pass
import collector.ble, bleak, dbus_fast  # what `run` adds to what `demo` runs
from stresswatch.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_service_code_runs_with_memory_deny_write_execute(tmp_path, broker):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MDWE,
            "demo",
            "--seconds",
            "0",
            "--plot",
            "",
            "--mqtt",
            f"mqtt://127.0.0.1:{broker.port}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    readings = re.search(r"readings: (\d+)", proc.stdout)
    assert readings and int(readings.group(1)) > 300  # the whole simulated day went through
