"""InfluxDB sink: writes the points of sinks/line_protocol.py (`beats`, `hrv`, `prompts`,
`devices`, `baseline`, `daily`, `morning`) from the outbox in batches, one flush at a time.

Delivery (at least once): points go to the SQLite outbox first (`StateStore`, sink "influx") and
are deleted only after the server answered 2xx, so an outage or a SIGKILL loses nothing. A point
sent twice (a write that landed but whose answer timed out) is harmless: InfluxDB keeps one value
per series key and timestamp (VictoriaMetrics with `-dedup.minScrapeInterval`, README).

Answers: a batch refused with another 4xx (a bad point) is bisected until the offending points
are found; those are set aside with the server's reason (`rejected`, counter `influx.rejected`)
and the rest go through. 401, 403 and 404 mean the settings are wrong (credentials, API version,
database or bucket), not the points: the rows stay and one line says which setting to change, at
most every 10 min. No answer, 5xx, 408 and 429 keep the rows and are logged at most once a minute
(a changed problem at once). After n flushes in a row that could not deliver, the next waits
min(60, 2 ** (n - 1)) s (collector/retry.py `backoff_s`; ours).

Overflow: when the outbox holds `outbox_max_points`, points are dropped in `DROP_ORDER`, oldest
first within a measurement, logged (`OverflowLog`: count, span, measurements; once a minute at
most) and counted (`influx.dropped_overflow`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from collector.log_limit import LogLimit
from collector.retry import backoff_s
from sinks.line_protocol import Line, beat_line, device_line, line, prompt_line, reading_line
from sinks.redact import split_userinfo
from sinks.store import OutboxRow, OverflowLog, StateStore

__all__ = [
    "InfluxSettings",
    "InfluxSink",
    "Line",
    "beat_line",
    "device_line",
    "line",
    "prompt_line",
    "reading_line",
]

log = logging.getLogger("stresswatch.influx")
SINK = "influx"
_CONFIG_STATUSES = (401, 403, 404)  # the settings are wrong, not the points
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 60.0  # between flushes that could not deliver (ours)
# What a full outbox drops first (ours), each measurement only when none of those before it is
# left: beats are nearly all of it (one a second per wearer, ~86,000 a day) and what they say is
# kept in the readings; the strap's battery and connection history next; then the readings, the
# baselines; last the few a day that nothing can recompute: the morning reading (its value is in
# the day's summary too, its trend and quality only here), prompts (with the phone's answer and
# the measured effect) and the day's summary. An unknown measurement ranks with the beats.
DROP_ORDER = ("beats", "devices", "hrv", "baseline", "morning", "prompts", "daily")
_DROP_RANK = {m: k for k, m in enumerate(DROP_ORDER)}


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
    Credentials in the URL (`http://user:password@host:8086`) are taken out of it before it is
    used or logged: they become the basic-auth user and password (v1) or the token
    `user:password` (v2, InfluxDB 1.8+) unless those are set explicitly.
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
        url, url_user, url_password = split_userinfo(url)
        if url_user and not (username or token):
            username, password = url_user, url_password
            token = f"{url_user}:{url_password}"
        self.store = store
        self.bucket = bucket
        self.org = org
        self.batch_size = batch_size
        self.url = url.rstrip("/")  # never holds credentials: safe to log
        self.api = api
        self.timeout_s = timeout_s
        self._auth = (username, password)
        self._client = None
        if api == "v2":
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS

            self._client = InfluxDBClient(
                url=self.url, token=token, org=org, timeout=int(timeout_s * 1000), retries=False
            )
            self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._failures = 0  # flushes in a row that could not deliver
        self.backoff_s = 0.0
        self._next_try = 0.0
        self.sent = 0
        self._problem = ""  # the last problem logged, "" while writes go through
        # One flush at a time: two would read the same outbox rows and both send them (the demo
        # flushes from its producing calls and the service's flusher thread at once).
        self._flushing = threading.Lock()
        self._problem_log = LogLimit()
        self.overflow = OverflowLog(store, SINK, "InfluxDB", "points", dict(enumerate(DROP_ORDER)))

    @classmethod
    def from_settings(cls, store: StateStore, s: InfluxSettings) -> InfluxSink:
        return cls(
            store,
            s.url,
            bucket=s.bucket,
            org=s.org,
            token=s.token,
            batch_size=s.batch_size,
            api=s.api,
            username=s.username,
            password=s.password,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def add(self, lines: list[Line | None], replace: bool = False) -> None:
        """Queue lines durably; they are written by `flush`. A line whose point (series and time)
        already waits is ignored (a re-send), unless `replace`: a newer version of the same point
        (a prompt with its answer and effect) takes the waiting one's place."""
        rows = [(ln.key, ln.text, None, _DROP_RANK.get(ln.measurement, 0)) for ln in lines if ln is not None]
        dropped = self.store.enqueue(SINK, rows, replace=replace)
        if dropped:
            self.overflow.add(dropped)

    def flush(self, force: bool = False, max_batches: int = 100) -> int:
        """Write what the outbox holds, batch by batch; returns the number of points accepted.

        Stops at the first batch that cannot be delivered now (server down) and backs off
        exponentially (1 s doubling to 60 s); until then a call returns 0 at once unless
        `force` is set. A call while another flush runs returns 0 at once (that one writes what
        is waiting), unless `force`: then it waits for it and writes what is left."""
        if not self._flushing.acquire(blocking=force):
            return 0
        try:
            return self._flush(force, max_batches)
        finally:
            self._flushing.release()

    def _flush(self, force: bool, max_batches: int) -> int:
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
                self._failures += 1
                self.backoff_s = backoff_s(self._failures, BACKOFF_FIRST_S, BACKOFF_MAX_S)
                self._next_try = now + self.backoff_s
                self.sent += accepted
                return accepted
        self._failures, self.backoff_s = 0, 0.0
        self.sent += accepted
        if self._problem and accepted:
            log.info("InfluxDB at %s accepts writes again", self.url)
            self._problem = ""
        return accepted

    def _deliver(self, rows: list[OutboxRow]) -> tuple[bool, int]:
        """Write rows; on a 4xx split them to isolate bad points. (server reachable?, delivered)"""
        status, reason = self._post([r.payload for r in rows])
        if status is None:
            return True, self._done(rows)
        if status in _CONFIG_STATUSES:
            self._log_problem(self._settings_hint(status, reason), every_s=600)
            return False, 0
        if status == "unreachable" or status >= 500 or status in (408, 429):
            self._log_problem(f"InfluxDB at {self.url} not accepting writes ({status}): {reason}", every_s=60)
            return False, 0
        if len(rows) == 1:
            log.warning(
                "InfluxDB refused a point (%s): %s; set aside: %s", status, reason, rows[0].payload[:200]
            )
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
            self._write.write(
                bucket=self.bucket, org=self.org, record=lines, write_precision=WritePrecision.MS
            )
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
        req = urllib.request.Request(
            f"{self.url}/write?{query}", data="\n".join(lines).encode(), method="POST"
        )
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

    def _settings_hint(self, status: int, reason: str) -> str:
        """One line for a 401/403/404: what is wrong and which setting to change."""
        said = " ".join(reason.split())[:200]
        if status in (401, 403):
            which = (
                "username / password"
                if self.api == "v1"
                else 'token / token_file (InfluxDB 1.8+: token = "user:password")'
            )
            return (
                f"InfluxDB at {self.url} refused our credentials (HTTP {status}: {said}): "
                f"check [influx] {which}"
            )
        if self.api == "v1":
            if "database not found" in reason:
                return (
                    f"InfluxDB at {self.url} has no database {self.bucket!r} (HTTP 404): create it "
                    f'(CREATE DATABASE "{self.bucket}") or set [influx] bucket to an existing one'
                )
            return f"InfluxDB at {self.url} answered HTTP 404 on /write ({said}): check [influx] url"
        if "bucket" in reason.lower():
            return (
                f"InfluxDB at {self.url} has no bucket {self.bucket!r} (HTTP 404: {said}): create it "
                f"or set [influx] bucket (and org) to an existing one"
            )
        return (
            f"InfluxDB at {self.url} has no v2 write API (HTTP 404 on /api/v2/write): for InfluxDB 1.x "
            f'before 1.8 set [influx] api = "v1"'
        )

    def _log_problem(self, message: str, every_s: float) -> None:
        """Log a delivery problem once when it starts or changes, then at most every `every_s`."""
        if message != self._problem:
            self._problem_log.forget()
        if self._problem_log.allow(every_s=every_s):
            self._problem = message
            log.warning(
                "%s; %d points kept in the outbox, retrying with backoff", message, self.store.pending(SINK)
            )
