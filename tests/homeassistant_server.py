"""A real Home Assistant for the tests: its own cached venv, a throw-away config folder and an owner token."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from servers import free_port, wait_for

# The newest Home Assistant that runs on Python 3.11 (2024.4 needs 3.12).
VERSION = "2024.3.3"
# josepy 2 dropped ComparableX509, which acme (pulled in by hass-nabucasa) imports: with josepy 2
# every HTTP request of 2024.3 fails. The others are what Home Assistant would pip-install at its
# first start (recorder, frontend, image_upload, backup, mqtt, camera); installing them up front
# lets `hass --skip-pip` start in a few seconds without reaching PyPI.
EXTRAS = [
    "josepy<2",
    "SQLAlchemy",
    "fnv-hash-fast",
    "psutil-home-assistant",
    "Pillow",
    "janus",
    "home-assistant-frontend",
    "securetar",
    "paho-mqtt",
    "PyTurboJPEG",
    # the `rest` integration, whose notify platform stands in for the phone
    "jsonpath",
    "xmltodict",
]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stresswatch" / "ha-venv"


def venv() -> Path:
    """The venv with Home Assistant VERSION, created on first use and reused after (keyed by version and Python)."""
    extras = hashlib.sha256(" ".join(EXTRAS).encode()).hexdigest()[:8]
    key = f"{VERSION}-py{sys.version_info.major}.{sys.version_info.minor}-{extras}"
    target = CACHE / key
    ready = target / ".stresswatch-ready"
    CACHE.mkdir(parents=True, exist_ok=True)
    # Parallel test sessions on the CI machine must not build the same venv twice.
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        _build(target)
        ready.write_text(" ".join([f"homeassistant=={VERSION}", *EXTRAS]) + "\n")
    return target


def _build(target: Path) -> None:
    pip = [str(target / "bin" / "python"), "-m", "pip"]
    _run([sys.executable, "-m", "venv", str(target)])
    wheels = target / "download"
    _run([*pip, "download", "--quiet", "--no-deps", "-d", str(wheels), f"homeassistant=={VERSION}"])
    # HA pins its whole dependency tree in package_constraints.txt (shipped in the wheel): installing
    # against it gives the versions HA itself would pick, and spares pip a long backtracking search.
    wheel = next(wheels.glob("homeassistant-*.whl"))
    constraints = target / "package_constraints.txt"
    with zipfile.ZipFile(wheel) as archive:
        constraints.write_bytes(archive.read("homeassistant/package_constraints.txt"))
    _run([*pip, "install", "--quiet", "-c", str(constraints), str(wheel), *EXTRAS])
    shutil.rmtree(wheels)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-4000:]}")


CONFIG = """\
homeassistant:
  name: stresswatch test
  latitude: 52.52
  longitude: 13.40
  elevation: 34
  unit_system: metric
  time_zone: Europe/Berlin
  currency: EUR
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
automation: !include automations.yaml
# The phone: the `rest` notify platform posts each notification (message, title and the
# `data` a Companion app would get) as JSON to the test's receiver.
notify:
  - platform: rest
    name: phone
    resource: {notify_url}
    method: POST_JSON
    title_param_name: title
    data:
      data: "{{{{ data | tojson }}}}"
"""


@dataclass
class HomeAssistant:
    """A running `hass` with an owner account, its token, and MQTT set up on `broker_port`."""

    config: Path
    port: int
    proc: subprocess.Popen | None = None
    token: str = ""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.config / "home-assistant.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body=None, form: dict | None = None, auth: bool = True):
        """JSON from `path` (None for an empty answer); an HTTP error raises with HA's message."""
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code} {exc.read().decode()[:500]}") from None
        return json.loads(text) if text.strip() else None

    def states(self) -> dict[str, dict]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def state(self, entity_id: str) -> dict | None:
        try:
            return self.request("GET", f"/api/states/{entity_id}")
        except RuntimeError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise

    def value(self, entity_id: str) -> str | None:
        """The state of `entity_id`, None while it does not exist."""
        return (self.state(entity_id) or {}).get("state")

    def render(self, template: str) -> str:
        """`template` rendered by Home Assistant (POST /api/template), e.g. to reach the device registry."""
        req = urllib.request.Request(
            self.url + "/api/template",
            data=json.dumps({"template": template}).encode(),
            headers={"Authorization": f"Bearer {self.token}"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read().decode()

    def call(self, domain: str, service: str, **data):
        return self.request("POST", f"/api/services/{domain}/{service}", data)

    def fire(self, event_type: str, **data):
        return self.request("POST", f"/api/events/{event_type}", data)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def restart(self, timeout: float = 120.0) -> None:
        """Stop and start again on the same config folder and port: onboarding, the token and the
        MQTT entry are kept in it, so the answer is back once HTTP with the token works."""
        self.stop()
        _launch(self, venv())
        _wait(lambda: _answers(self, "/api/"), timeout, self, "answer HTTP after a restart")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def start(config: Path, broker_port: int, notify_url: str, timeout: float = 120.0) -> HomeAssistant:
    """Home Assistant on a free port with `config` as its folder, onboarded, with MQTT on the broker."""
    env = venv()
    port = free_port()
    config.mkdir(parents=True, exist_ok=True)
    (config / "configuration.yaml").write_text(CONFIG.format(port=port, notify_url=notify_url))
    (config / "automations.yaml").write_text("[]\n")
    ha = HomeAssistant(config, port)
    _launch(ha, env)
    try:
        _wait(lambda: _answers(ha), timeout, ha, "answer HTTP")
        _onboard(ha)
        _setup_mqtt(ha, broker_port)
    except BaseException:
        ha.stop()
        raise
    return ha


def _launch(ha: HomeAssistant, env: Path) -> None:
    with open(ha.config / "hass.out", "ab") as out:
        # --skip-pip: everything is in the venv already; HA must not reach for PyPI at start.
        ha.proc = subprocess.Popen(
            [str(env / "bin" / "hass"), "--config", str(ha.config), "--skip-pip", "--log-no-color"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _answers(ha: HomeAssistant, path: str = "/api/onboarding") -> bool:
    if ha.proc.poll() is not None:
        raise RuntimeError(f"hass exited with {ha.proc.returncode}; its log:\n{ha.log_tail()}")
    try:
        ha.request("GET", path, auth=path != "/api/onboarding")
        return True
    except (OSError, RuntimeError):
        return False


def _wait(fn, timeout: float, ha: HomeAssistant, what: str):
    value = wait_for(fn, timeout)
    if not value:
        raise TimeoutError(f"Home Assistant did not {what} within {timeout:.0f} s; its log:\n{ha.log_tail()}")
    return value


def _onboard(ha: HomeAssistant) -> None:
    """The owner account through onboarding, then a token for it (the OAuth2 code flow of the frontend)."""
    client_id = ha.url + "/"
    user = ha.request(
        "POST",
        "/api/onboarding/users",
        {
            "client_id": client_id,
            "name": "Test",
            "username": "test",
            "password": "test-password",
            "language": "en",
        },
        auth=False,
    )
    tokens = ha.request(
        "POST",
        "/auth/token",
        form={
            "grant_type": "authorization_code",
            "code": user["auth_code"],
            "client_id": client_id,
        },
        auth=False,
    )
    ha.token = tokens["access_token"]


def _setup_mqtt(ha: HomeAssistant, broker_port: int) -> None:
    flow = ha.request(
        "POST", "/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False}
    )
    result = ha.request(
        "POST",
        f"/api/config/config_entries/flow/{flow['flow_id']}",
        {"broker": "127.0.0.1", "port": broker_port},
    )
    if result.get("type") != "create_entry":
        raise RuntimeError(f"MQTT setup in Home Assistant failed: {result}")


if __name__ == "__main__":
    started = time.monotonic()
    print(venv(), f"{time.monotonic() - started:.0f} s")
