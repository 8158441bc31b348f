"""InfluxDB sink: the `beats`, `hrv`, `prompts`, `devices` schema, written in batches via an outbox.

Schema (contract, millisecond timestamps; see README "InfluxDB"):
- `beats`  tags person, device;  fields rr_ms (float), hr_bpm (float), artifact (string: kind
  or "none");
- `hrv`    tag person;  every numeric `Reading` field (floats; n_beats integer), activity and
  state as strings; null fields are left out;
- `prompts` tag person;  id, kind, exercise (strings), stress_score (float), response (string),
  and effect fields (e.g. rmssd_change_ms) when known;
- `devices` tags person, device;  battery_pct (float), connected (boolean).

Delivery: points go to the SQLite outbox first (`StateStore`, sink "influx") and are deleted
only after the server answered 2xx, so an outage or a SIGKILL loses nothing; re-sending a
point is harmless because InfluxDB (and VictoriaMetrics) keep one value per series key and
timestamp. A batch the server refuses with 4xx (bad point) is bisected until the offending
points are found; those are set aside with the server's reason and counted, the rest go
through. Connection errors, timeouts, 5xx and 429 keep the rows and back off.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from collector.events import Beat
from processing.reading import Reading
from sinks.store import OutboxRow, StateStore

log = logging.getLogger("stresswatch.influx")
SINK = "influx"

_STRING_FIELDS = ("activity", "state")
_INT_FIELDS = ("n_beats",)
_SKIP_FIELDS = ("person", "time")


@dataclass(frozen=True)
class Line:
    """One line of line protocol and its idempotency key (series key + timestamp)."""

    key: str
    text: str


def _escape_tag(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return _escape_str(str(value))


def line(measurement: str, tags: dict[str, str], fields: dict, t: float) -> Line | None:
    """A line-protocol line with millisecond timestamp; None when no field has a value.

    Floats are always written as floats (never `i`), so a value that happens to be whole
    cannot start a type conflict in InfluxDB."""
    tag_part = "".join(f",{_escape_tag(k)}={_escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    parts = []
    for k, v in fields.items():
        enc = _field(v)
        if enc is not None:
            parts.append(f"{_escape_tag(k)}={enc}")
    if not parts:
        return None
    ts = int(round(t * 1000))
    series = _escape_tag(measurement) + tag_part
    return Line(f"{series} {ts}", f"{series} {','.join(parts)} {ts}")


def beat_line(beat: Beat) -> Line | None:
    return line(
        "beats",
        {"person": beat.person, "device": beat.device},
        {
            "rr_ms": float(beat.rr_ms),
            "hr_bpm": None if beat.hr_bpm is None else float(beat.hr_bpm),
            "artifact": beat.artifact or "none",
        },
        beat.t,
    )


def reading_line(r: Reading) -> Line | None:
    fields = {}
    for k, v in r.to_dict(digits=9).items():
        if k in _SKIP_FIELDS:
            continue
        if k in _STRING_FIELDS:
            fields[k] = v
        elif k in _INT_FIELDS:
            fields[k] = int(v)
        elif v is not None:
            fields[k] = float(v)
    return line("hrv", {"person": r.person}, fields, r.time)


def prompt_line(prompt: dict, response: str | None = None, effects: dict | None = None) -> Line | None:
    fields = {
        "id": prompt["id"],
        "kind": prompt["kind"],
        "exercise": prompt["exercise"]["name"],
        "stress_score": None if prompt.get("stress_score") is None else float(prompt["stress_score"]),
        "response": response,
    }
    fields.update({k: float(v) for k, v in (effects or {}).items()})
    return line("prompts", {"person": prompt["person"]}, fields, prompt["time"])


def device_line(person: str, device: str, t: float, battery_pct: float | None, connected: bool) -> Line | None:
    return line(
        "devices",
        {"person": person, "device": device},
        {"battery_pct": None if battery_pct is None else float(battery_pct), "connected": bool(connected)},
        t,
    )


# -- the writer (I/O) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InfluxSettings:
    """Where and how to write (see `InfluxSink`); secrets already read from their files."""

    url: str
    bucket: str = "stresswatch"
    org: str = "-"
    token: str = ""
    api: str = "v2"
    username: str = ""
    password: str = ""
    batch_size: int = 5000
    flush_interval_s: float = 5.0
    write_beats: bool = True
    outbox_max_points: int = 2_000_000


class InfluxSink:
    """Batches outbox rows into writes.

    `api="v2"` (default) writes through influxdb-client: InfluxDB 2.x/3.x/Cloud, or 1.8+ through
    its compatibility endpoint with token `user:password`, org `-`, bucket `db/rp`.
    `api="v1"` posts line protocol to `/write?db=<bucket>` with HTTP basic auth (`username`,
    `password`), for InfluxDB 1.x before 1.8 (Debian and Raspberry Pi OS ship 1.6.7), which
    has no v2 endpoint; influxdb-client cannot talk to those.
    """

    def __init__(
        self,
        store: StateStore,
        url: str,
        bucket: str,
        org: str = "-",
        token: str = "",
        batch_size: int = 5000,
        timeout_s: float = 10.0,
        api: str = "v2",
        username: str = "",
        password: str = "",
    ):
        if api not in ("v1", "v2"):
            raise ValueError(f"api must be v1 or v2, got {api!r}")
        self.store = store
        self.bucket = bucket
        self.org = org
        self.batch_size = batch_size
        self.url = url.rstrip("/")
        self.api = api
        self.timeout_s = timeout_s
        self._auth = (username, password)
        self._client = None
        if api == "v2":
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000), retries=False)
            self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self.backoff_s = 0.0
        self._next_try = 0.0
        self.sent = 0
        self._last_error_log = 0.0

    @classmethod
    def from_settings(cls, store: StateStore, s: InfluxSettings) -> InfluxSink:
        return cls(store, s.url, bucket=s.bucket, org=s.org, token=s.token, batch_size=s.batch_size,
                   api=s.api, username=s.username, password=s.password)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def add(self, lines: list[Line | None]) -> None:
        """Queue lines durably; they are written by `flush`."""
        self.store.enqueue(SINK, [(ln.key, ln.text, None) for ln in lines if ln is not None])

    def flush(self, force: bool = False, max_batches: int = 100) -> int:
        """Write what the outbox holds, batch by batch; returns the number of points accepted.

        Stops at the first batch that cannot be delivered now (server down) and backs off
        exponentially (1 s doubling to 60 s); until then a call returns 0 at once unless
        `force` is set."""
        now = time.monotonic()
        if now < self._next_try and not force:
            return 0
        accepted = 0
        for _ in range(max_batches):
            rows = self.store.peek(SINK, self.batch_size)
            if not rows:
                break
            ok, delivered = self._deliver(rows)
            accepted += delivered
            if not ok:
                self.backoff_s = min(60.0, max(1.0, self.backoff_s * 2))
                self._next_try = now + self.backoff_s
                self.sent += accepted
                return accepted
        self.backoff_s = 0.0
        self.sent += accepted
        return accepted

    def _deliver(self, rows: list[OutboxRow]) -> tuple[bool, int]:
        """Write rows; on a 4xx split them to isolate bad points. (server reachable?, delivered)"""
        status, reason = self._post([r.payload for r in rows])
        if status is None:
            return True, self._done(rows)
        if status == "unreachable" or status >= 500 or status in (401, 403, 408, 429):
            self._log_error(f"InfluxDB at {self.url} not accepting writes ({status}): {reason}")
            return False, 0
        if len(rows) == 1:
            log.warning("InfluxDB refused a point (%s): %s; set aside: %s", status, reason, rows[0].payload[:200])
            self.store.set_aside(SINK, rows[0], f"{status}: {reason}")
            return True, 0
        half = len(rows) // 2
        ok1, n1 = self._deliver(rows[:half])
        if not ok1:
            return False, n1
        ok2, n2 = self._deliver(rows[half:])
        return ok2, n1 + n2

    def _done(self, rows: list[OutboxRow]) -> int:
        self.store.delete([r.id for r in rows])
        return len(rows)

    def _post(self, lines: list[str]) -> tuple[int | str | None, str]:
        """Send lines; (None, "") when accepted, (HTTP status or "unreachable", reason) otherwise."""
        if self.api == "v1":
            return self._post_v1(lines)
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._write.write(bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.MS)
            return None, ""
        except ApiException as exc:
            body = exc.body if isinstance(exc.body, str) else ""
            return int(exc.status or 0), (body or str(exc.reason or ""))[:500]
        except Exception as exc:  # urllib3 connection errors, timeouts: the server is not there
            return "unreachable", type(exc).__name__

    def _post_v1(self, lines: list[str]) -> tuple[int | str | None, str]:
        import base64
        import urllib.error
        import urllib.parse
        import urllib.request

        query = urllib.parse.urlencode({"db": self.bucket, "precision": "ms"})
        req = urllib.request.Request(f"{self.url}/write?{query}", data="\n".join(lines).encode(), method="POST")
        if self._auth[0]:
            cred = base64.b64encode(f"{self._auth[0]}:{self._auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {cred}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s):
                return None, ""
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")[:500]
        except OSError as exc:
            return "unreachable", type(exc).__name__

    def _log_error(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 60:
            self._last_error_log = now
            log.warning("%s; %d points wait in the outbox", message, self.store.pending(SINK))
