"""The embedded SQLite state store: what must survive a restart (ARCHITECTURE "State").

One file (`state.db`, WAL mode) under the configured state directory, with these tables:
- `outbox`: points and messages not yet accepted by their server, per sink; a sink enqueues before
  it sends and deletes only after the server accepted, so delivery survives outages and restarts.
  Rows have a per-sink unique `key` (InfluxDB: series + timestamp; MQTT state: the topic; MQTT
  prompt: its id): re-enqueueing the same thing is idempotent, and a newer retained state
  replaces an undelivered older one. `outbox_count` keeps each sink's row count, by triggers in
  the same transactions as the rows, so the bound check is O(1) and exact across restarts;
- `rejected`: rows a server refused for good, with its reason;
- `counters`: named totals (`<sink>.dropped_overflow`, `influx.rejected`, `mqtt.expired`, ...);
- `saved_state`: JSON snapshots by key (each person's baseline and alert engine state, what each
  strap has shown about itself);
- `prompts`: every prompt sent, its status and the phone's answer.

Bounded per sink: `limits` ({"influx": points, "mqtt": messages}; `max_rows` for any other
sink). Beyond its bound a sink's rows are dropped, lowest `priority` first and oldest first
within a priority (each sink ranks its rows: InfluxDB drops beats long before a prompt or a day's
summary), and counted (`<sink>.dropped_overflow`), so a long outage cannot fill the SD card.
`enqueue` returns what it dropped (`Dropped`), which the sink logs through an `OverflowLog`.

Private: the directory (and any missing folder above it) is created 0700 and the files 0600
(they hold health data). Errors a person can act on (a file in the way, a read-only folder, a
full disk) raise `StoreError` with one line naming the path and what to do; a damaged database is
moved aside as `state.db.corrupt-<time>` and a fresh one started (what was queued in it is lost,
loudly). Thread-safe (the InfluxDB writer flushes on its own thread, the MQTT sink works on the
event loop, a synchronous caller on its own): one connection behind a lock. One process per state directory: every command that uses one (`run`, `demo`, `measure`
when no service runs, `collect`, `worker`, `deliver`) holds a `StateLock` on it
(`stresswatch.lock`, with its PID), and a second copy refuses to start.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from collector.log_limit import EVERY_S, LogLimit

log = logging.getLogger("stresswatch.store")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    priority INTEGER NOT NULL DEFAULT 0,
    UNIQUE (sink, key)
)""",
    # Oldest-first reads of one sink without sorting the whole table.
    "CREATE INDEX IF NOT EXISTS outbox_order ON outbox (sink, id)",
    "CREATE TABLE IF NOT EXISTS outbox_count (sink TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
)""",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # What the service restores at start: each person's stress baseline and alert engine (JSON).
    "CREATE TABLE IF NOT EXISTS saved_state (key TEXT PRIMARY KEY, value TEXT NOT NULL, saved REAL NOT NULL)",
    """CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    status TEXT NOT NULL,
    response TEXT,
    body TEXT NOT NULL
)""",
)

# Overflow drops (lowest priority, then oldest) without sorting the sink's rows; created after
# `priority` is added to a database from before it (see `_migrate`).
DROP_INDEX = "CREATE INDEX IF NOT EXISTS outbox_drop ON outbox (sink, priority, id)"

# Rows an overflow selects and deletes at a time (one at a time is the usual case: a beat in, a beat out).
DROP_CHUNK = 10_000

# The row count per sink, kept by the database itself. INSERT OR REPLACE deletes the old row
# first; its delete trigger fires only with `PRAGMA recursive_triggers=ON` (set on connect).
COUNT_TRIGGERS = (
    """CREATE TRIGGER outbox_count_insert AFTER INSERT ON outbox BEGIN
    INSERT INTO outbox_count (sink, n) VALUES (NEW.sink, 1) ON CONFLICT(sink) DO UPDATE SET n = n + 1;
END""",
    """CREATE TRIGGER outbox_count_delete AFTER DELETE ON outbox BEGIN
    UPDATE outbox_count SET n = n - 1 WHERE sink = OLD.sink;
END""",
)

# SQLite primary result codes (https://www.sqlite.org/rescode.html).
_PERM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 8, 10, 11, 13, 14, 26
_ACTIONABLE = (_PERM, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB)


# A prompt's delivery statuses (`set_prompt_status`) while it is on its way to the phone; the
# phone's answer (`answer_prompt`) replaces them for good.
OPEN_STATUSES = ("pending", "sent", "delivered")


class StoreError(OSError):
    """The state database cannot be used; the message is one line naming the path and what to do."""


class StoreFull(StoreError):
    """A write failed because the disk holding the state database is full; nothing was written."""


@dataclass(frozen=True)
class Dropped:
    """Rows one `enqueue` dropped to keep a sink's outbox within its bound: how many of each
    priority, and the span of wall-clock time in which the dropped rows had been queued."""

    n: int
    by_priority: dict[int, int]
    first_queued: float
    last_queued: float


@dataclass(frozen=True)
class OutboxRow:
    id: int
    key: str
    payload: str
    expires: float | None


class StateStore:
    """The state database. `path` may be ':memory:' for tests of pure logic.

    `limits` bounds the outbox per sink ({"influx": N, "mqtt": M}); sinks not named there get
    `max_rows`."""

    def __init__(self, path: str | Path, max_rows: int = 2_000_000, limits: dict[str, int] | None = None):
        self.path = str(path)
        self.max_rows = max_rows
        self.limits = dict(limits or {})
        self._lock = threading.RLock()
        self._default_max_pages: int | None = None
        self._db = self._open()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def limit(self, sink: str) -> int:
        """The most rows `sink` may keep in the outbox."""
        return self.limits.get(sink, self.max_rows)

    def limit_pages(self, pages: int | None) -> None:
        """Cap the database at `pages` pages (SQLite `max_page_count`, never below the current
        size; None = SQLite's default again): writes that need more space fail as on a full disk.
        For tests."""
        with self._lock:
            if self._default_max_pages is None:
                self._default_max_pages = self._db.execute("PRAGMA max_page_count").fetchone()[0]
            self._db.execute(f"PRAGMA max_page_count = {int(pages or self._default_max_pages)}")

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            return self._connect()
        db_path = Path(self.path)
        _private_dir(db_path.parent)
        for f in _files(db_path):
            try:
                os.chmod(f, 0o600)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not make %s private (chmod 600): %s", f, exc.strerror)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if _code(exc) not in (_CORRUPT, _NOTADB):
                raise self._error(exc) from None
        aside = _move_aside(db_path)
        log.error(
            "STATE DATABASE DAMAGED: %s could not be read (truncated or not an SQLite file); moved it "
            "aside to %s and started an empty one. Points and messages queued in it are not delivered; "
            "baselines and prompt history start over.",
            db_path,
            aside,
        )
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def _connect(self) -> sqlite3.Connection:
        old_umask = os.umask(0o077)  # new files (state.db, -wal, -shm) readable by this user only
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills in WAL mode
                db.execute("PRAGMA recursive_triggers=ON")
                _migrate(db)
            except BaseException:
                db.close()
                raise
        finally:
            os.umask(old_umask)
        return db

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """`exc` as a `StoreError` whose message tells a person what to do."""
        where = Path(self.path).parent
        code = _code(exc)
        if code == _FULL:
            return StoreFull(
                f"state database {self.path}: the disk is full; free some space on it "
                f"(or set state.directory to a folder on another disk)"
            )
        if code in (_READONLY, _CANTOPEN, _PERM):
            return StoreError(
                f"cannot write the state database {self.path}: make {where} writable for this "
                f"user (uid {os.getuid()}) or set state.directory to a writable folder"
            )
        if code == _IOERR:
            return StoreError(f"input/output error on the state database {self.path} ({exc}): check the disk")
        if code in (_CORRUPT, _NOTADB):
            return StoreError(
                f"the state database {self.path} is damaged ({exc}): restart stresswatch, "
                f"which moves it aside and starts a fresh one"
            )
        return StoreError(f"state database {self.path}: {exc}")

    @contextlib.contextmanager
    def _write(self):
        """One write transaction; failures a person can fix become `StoreError`, nothing half-written."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                yield
                self._db.execute("COMMIT")
            except BaseException as exc:
                # SQLite may already have rolled back (it does on some SQLITE_FULL / IOERR cases).
                with contextlib.suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError) and _code(exc) in _ACTIONABLE:
                    raise self._error(exc) from None
                raise

    # -- outbox --------------------------------------------------------------------------------

    def enqueue(self, sink: str, items: list[tuple], replace: bool = False) -> Dropped | None:
        """Add (key, payload, expires) or (key, payload, expires, priority) rows for `sink` in one
        transaction; what the bound made it drop, or None.

        An existing key is kept (idempotent re-send) unless `replace`, where the new payload
        takes its place (a newer retained state). Beyond the sink's bound the rows of the lowest
        priority (default 0) go first, oldest first: the new rows too, if they rank lowest."""
        if not items:
            return None
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        now = time.time()
        with self._write():
            self._db.executemany(
                f"{verb} INTO outbox (sink, key, payload, created, expires, priority) VALUES (?, ?, ?, ?, ?, ?)",
                [(sink, it[0], it[1], now, it[2], it[3] if len(it) > 3 else 0) for it in items],
            )
            over = self._count(sink) - self.limit(sink)
            if over <= 0:
                return None
            by_priority: dict[int, int] = {}
            first, last = float("inf"), float("-inf")
            # A chunk at a time: a bound lowered by a million rows must not load them all at once.
            for done in range(0, over, DROP_CHUNK):
                rows = self._db.execute(
                    "SELECT id, priority, created FROM outbox WHERE sink = ? ORDER BY priority, id LIMIT ?",
                    (sink, min(DROP_CHUNK, over - done)),
                ).fetchall()
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(r[0],) for r in rows])
                for _, priority, created in rows:
                    by_priority[priority] = by_priority.get(priority, 0) + 1
                    first, last = min(first, created), max(last, created)
            self._bump(f"{sink}.dropped_overflow", over)
        return Dropped(over, by_priority, first, last)

    def peek(self, sink: str, limit: int, after_id: int = 0) -> list[OutboxRow]:
        """The oldest `limit` rows of `sink` with an id above `after_id`, not removed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key, payload, expires FROM outbox WHERE sink = ? AND id > ? ORDER BY id LIMIT ?",
                (sink, after_id, limit),
            ).fetchall()
        return [OutboxRow(*r) for r in rows]

    def peek_id(self, sink: str, row_id: int) -> OutboxRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, key, payload, expires FROM outbox WHERE sink = ? AND id = ?", (sink, row_id)
            ).fetchone()
        return OutboxRow(*row) if row else None

    def delete(self, ids: list[int]) -> None:
        """Remove delivered rows."""
        if not ids:
            return
        with self._write():
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def pending(self, sink: str) -> int:
        with self._lock:
            return self._count(sink)

    def set_aside(self, sink: str, row: OutboxRow, reason: str) -> None:
        """A row the server refused for good (e.g. HTTP 400): keep it with the reason, stop retrying."""
        with self._write():
            self._db.execute(
                "INSERT INTO rejected (sink, payload, reason, at) VALUES (?, ?, ?, ?)",
                (sink, row.payload, reason[:2000], time.time()),
            )
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
            self._bump(f"{sink}.rejected", 1)

    def rejected(self, sink: str) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT payload, reason FROM rejected WHERE sink = ? ORDER BY id", (sink,)
            ).fetchall()

    # -- counters ------------------------------------------------------------------------------

    def bump(self, name: str, by: int = 1) -> None:
        with self._write():
            self._bump(name, by)

    def counter(self, name: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            (name, by, by),
        )

    def _count(self, sink: str) -> int:
        row = self._db.execute("SELECT n FROM outbox_count WHERE sink = ?", (sink,)).fetchone()
        return row[0] if row else 0

    # -- prompts -------------------------------------------------------------------------------

    def save_state(self, key: str, value: dict) -> None:
        """Keep `value` (JSON-ready) under `key`, replacing what was there."""
        self.save_states({key: value})

    def save_states(self, values: dict[str, dict]) -> None:
        """`save_state` for several keys in one transaction (the service saves every person's
        state at a stop: a transaction each cost more than the rest of the save)."""
        now = time.time()
        rows = [(key, json.dumps(value), now) for key, value in values.items()]
        with self._write():
            self._db.executemany(
                "INSERT INTO saved_state (key, value, saved) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, saved = excluded.saved",
                rows,
            )

    def load_state(self, key: str) -> dict | None:
        """What `save_state` kept under `key`, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM saved_state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def record_prompt(self, prompt: dict) -> None:
        """Remember a prompt that was produced (status `pending` until delivered)."""
        with self._write():
            self._db.execute(
                "INSERT OR IGNORE INTO prompts (id, person, created, expires, status, body) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    prompt["id"],
                    prompt["person"],
                    prompt["time"],
                    prompt["expires_at"],
                    "pending",
                    json.dumps(prompt),
                ),
            )

    def set_prompt_status(self, prompt_id: str, status: str) -> bool:
        """Update a prompt's delivery status (`pending`, `sent`, `delivered`, `expired`,
        `rejected`); False when the id is unknown or the prompt is answered (its answer stays its
        status: a PUBACK that arrives after the answer, on a reconnect, must not hide it)."""
        with self._write():
            cur = self._db.execute(
                "UPDATE prompts SET status = ? WHERE id = ? AND response IS NULL", (status, prompt_id)
            )
        return cur.rowcount == 1

    def answer_prompt(self, prompt_id: str, response: dict) -> bool:
        """Record the phone's answer (`response["action"]` becomes the status: `done`, `snooze`,
        `dismiss`, `not_stressed`). The first answer stands: False, and nothing changes, when the
        prompt is already answered (or the id unknown)."""
        with self._write():
            cur = self._db.execute(
                "UPDATE prompts SET status = ?, response = ? WHERE id = ? AND response IS NULL",
                (str(response["action"]), json.dumps(response), prompt_id),
            )
        return cur.rowcount == 1

    def open_prompts(self, expiring_after: float) -> list[tuple[str, str, float]]:
        """(id, body as produced, expires) of each prompt not answered, not set aside and expiring
        after `expiring_after`, oldest first: what a phone should still be showing."""
        with self._lock:
            return self._db.execute(
                f"SELECT id, body, expires FROM prompts WHERE status IN ({', '.join('?' * len(OPEN_STATUSES))}) "
                "AND expires > ? ORDER BY created, id",
                (*OPEN_STATUSES, expiring_after),
            ).fetchall()

    def prompt(self, prompt_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status, response, body FROM prompts WHERE id = ?", (prompt_id,)
            ).fetchone()
        if row is None:
            return None
        return {
            "status": row[0],
            "response": json.loads(row[1]) if row[1] else None,
            "prompt": json.loads(row[2]),
        }


class OverflowLog:
    """Says what a sink's outbox dropped for space: one warning line with the count, the span of
    time the dropped rows had been queued in, what they were (`labels`: priority -> name) and the
    total so far (`<sink>.dropped_overflow`). At most one line every `every_s`: the first drop
    after a quiet spell is logged at once, later ones are summed into the next line, which
    `add` writes once `every_s` has passed and `flush` (called periodically, and with `force` at
    a stop) writes when drops are left unsaid. Thread-safe."""

    def __init__(
        self,
        store: StateStore,
        sink: str,
        what: str,
        unit: str,
        labels: Mapping[int, str],
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store, self.sink, self.what, self.unit, self.labels = store, sink, what, unit, dict(labels)
        self.every_s = every_s
        self.clock = clock
        self._lock = threading.Lock()
        self._limit = LogLimit(clock=lambda: self.clock())
        self._pending: list[Dropped] = []

    def add(self, dropped: Dropped) -> None:
        with self._lock:
            self._pending.append(dropped)
        self.flush()

    def flush(self, force: bool = False) -> None:
        with self._lock:
            if not self._pending or not (self._limit.allow(every_s=self.every_s) or force):
                return
            pending, self._pending = self._pending, []
        n = sum(d.n for d in pending)
        kinds: dict[int, int] = {}
        for d in pending:
            for priority, count in d.by_priority.items():
                kinds[priority] = kinds.get(priority, 0) + count
        what = ", ".join(f"{self.labels.get(p, f'priority {p}')} {c}" for p, c in sorted(kinds.items()))
        first, last = min(d.first_queued for d in pending), max(d.last_queued for d in pending)
        try:
            total = f"{self.store.counter(f'{self.sink}.dropped_overflow')} dropped so far"
        except (StoreError, sqlite3.Error):  # the line matters more than the total
            total = "total not readable"
        log.warning(
            "%s outbox full (at most %d %s): dropped %d %s (%s) queued from %s to %s (%s); %s "
            "(%s.dropped_overflow)",
            self.what,
            self.store.limit(self.sink),
            self.unit,
            n,
            self.unit if n != 1 else self.unit.removesuffix("s"),
            what,
            _utc(first),
            _utc(last),
            _span(last - first),
            total,
            self.sink,
        )


# -- one process per state directory -------------------------------------------------------------

LOCK_NAME = "stresswatch.lock"


class StateDirectoryBusy(StoreError):
    """Another process holds the state directory's lock; the message names its PID."""


class StateLock:
    """An exclusive lock on a state directory: `flock` on `<directory>/stresswatch.lock` (0600),
    which holds the PID of the process that has it.

    Two processes on one state directory share its outbox, and with the same MQTT client id they
    take the broker session from each other every second (seen: 171 reconnects in 130 s) while
    an answer reaches the copy that never sent the prompt. The kernel drops a `flock` when its
    process ends, however it ends: a copy killed with SIGKILL never blocks the next start. The
    file stays when the lock is released (emptied): removing it would let a third process lock a
    new file while a second still waits on the old one."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock or raise `StateDirectoryBusy` (naming the holder's PID) at once; other
        failures a person can fix raise `StoreError`."""
        _private_dir(self.directory)
        old_umask = os.umask(0o077)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StoreError(
                f"cannot open the lock file {self.path} ({exc.strerror}): make {self.directory} "
                f"writable for this user (uid {os.getuid()}) or set state.directory elsewhere"
            ) from None
        finally:
            os.umask(old_umask)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (
                errno.EWOULDBLOCK,
                errno.EAGAIN,
            ):  # a file system without locks (NFS without lockd)
                os.close(fd)
                log.warning(
                    "cannot lock %s (%s): a second copy on this state directory would not be stopped",
                    self.path,
                    exc.strerror,
                )
                return
            pid = _holder_pid(fd)
            os.close(fd)
            raise StateDirectoryBusy(
                f"another stresswatch ({f'PID {pid}' if pid else 'PID not known'}) is already running on the state "
                f"directory {self.directory}: stop it first, or give this one its own state.directory and "
                f"mqtt.client_id"
            ) from None
        with contextlib.suppress(OSError):  # a file left readable by an older version
            os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # no stale PID for `lock_holder` to read
        os.close(self._fd)  # drops the lock
        self._fd = None


def _holder_pid(fd: int, wait_s: float = 1.0) -> int | None:
    """The PID the holder of the lock on `fd` wrote (it writes it just after locking: wait a moment)."""
    deadline = time.monotonic() + wait_s
    while True:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit() or time.monotonic() > deadline:
            return int(text) if text.isdigit() else None
        time.sleep(0.02)


def lock_holder(directory: str | Path) -> int | None:
    """The PID of the process holding `directory`'s lock, or None; never takes the lock (a
    `stresswatch run` starting at that moment must not find it taken). On Linux the kernel's table
    of locks (/proc/locks) says whether the file is locked; elsewhere, whether the PID it names
    is alive."""
    path = Path(directory) / LOCK_NAME
    try:
        text = path.read_text(errors="replace").strip()
        st = path.stat()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:  # alive, another user's
            pass
        return pid
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return pid if any("FLOCK" in line and inode in line.split() for line in table.splitlines()) else None


def peek_saved_states(path: str | Path, keys: list[str]) -> dict[str, dict]:
    """What `save_state` kept under `keys` in the database at `path`, read only (nothing is
    created, migrated or tightened; for `stresswatch doctor`, which only looks): {} when there is
    no database yet. Raises `StoreError` (one line) when it cannot be read."""
    path = Path(path)
    if not path.exists() or not keys:
        return {}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = db.execute(
                f"SELECT key, value FROM saved_state WHERE key IN ({', '.join('?' * len(keys))})", keys
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the state database {path}: {exc}") from None
    return {key: json.loads(value) for key, value in rows}


# -- helpers -------------------------------------------------------------------------------------


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _files(db_path: Path) -> tuple[Path, Path, Path]:
    return db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")


def _private_dir(directory: Path) -> None:
    """Create the state directory 0700, and so every missing folder above it (`mkdir -p` makes
    those 0755: ~/.local/share created for ~/.local/share/stresswatch was world-readable, as was
    the base folder the demo makes for its demo/). The XDG Base Directory specification asks the
    same of a missing $XDG_DATA_HOME. A folder that exists is left as its owner set it."""
    missing = []
    d = directory
    while not d.is_dir() and d != d.parent:  # also a path under a file: is_dir() is False
        missing.append(d)
        d = d.parent
    try:
        for d in reversed(missing):
            d.mkdir(mode=0o700, exist_ok=True)  # exist_ok: another process may have made it meanwhile
    except (FileExistsError, NotADirectoryError):
        where = "" if d == directory else f" at {d}"
        raise StoreError(
            f"the state directory {directory} is not a directory (a file is in the way{where}): "
            f"move that file or set state.directory to another path"
        ) from None
    except PermissionError:
        raise StoreError(
            f"cannot create the state directory {directory}: create it for this user "
            f"(uid {os.getuid()}) or set state.directory to a writable folder"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot create the state directory {directory}: {exc.strerror}") from None


def _move_aside(db_path: Path) -> Path:
    """Rename a damaged database (and its WAL, which must not be replayed onto a fresh file)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = db_path.with_name(f"{db_path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = db_path.with_name(f"{db_path.name}.corrupt-{stamp}-{n}")
    for src, suffix in zip(_files(db_path), ("", "-wal", "-shm"), strict=True):
        try:
            os.replace(src, f"{aside}{suffix}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(
                f"the state database {db_path} is damaged and could not be moved aside "
                f"({exc.strerror}): move or delete it by hand"
            ) from None
    return aside


def _migrate(db: sqlite3.Connection) -> None:
    """Create the tables; on a database from before the maintained counts, count once; on one from
    before the outbox's priorities, add the column (the rows queued then rank 0, as beats do)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for stmt in SCHEMA:
            db.execute(stmt)
        if "priority" not in {row[1] for row in db.execute("PRAGMA table_info(outbox)")}:
            db.execute("ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
        db.execute(DROP_INDEX)
        have = db.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'outbox_count_%'"
        )
        if have.fetchone()[0] != len(COUNT_TRIGGERS):
            db.execute("DROP TRIGGER IF EXISTS outbox_count_insert")
            db.execute("DROP TRIGGER IF EXISTS outbox_count_delete")
            for stmt in COUNT_TRIGGERS:
                db.execute(stmt)
            db.execute("DELETE FROM outbox_count")
            db.execute("INSERT INTO outbox_count (sink, n) SELECT sink, COUNT(*) FROM outbox GROUP BY sink")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
