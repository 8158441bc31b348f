"""The embedded SQLite state store: the outbox of undelivered points and messages, prompt history.

One file (`state.db`, WAL mode) under the configured state directory. The outbox is what makes
delivery survive outages and restarts: a sink enqueues before it sends and deletes only after
the server accepted. Rows have a per-sink unique `key` (InfluxDB: series + timestamp; MQTT
state: the topic; MQTT prompt: its id), so re-enqueueing the same thing is idempotent and a
newer retained state replaces an undelivered older one.

Bounded per sink: `limits` ({"influx": points, "mqtt": messages}; `max_rows` for any other
sink); beyond its bound a sink's oldest rows are dropped and counted in `counters`
(`<sink>.dropped_overflow`), so a week-long outage cannot fill the SD card. The bound check is
O(1): triggers keep a per-sink row count (`outbox_count`) in the same transactions as the rows,
so it stays exact through inserts, ignored duplicates, replacements, deletes and restarts.

Private: the directory is created 0700 and the files are 0600 (they hold health data).
Errors a person can act on (a file in the way, a read-only folder, a full disk) raise
`StoreError` with one line naming the path and what to do; a damaged database is moved aside
as `state.db.corrupt-<time>` and a fresh one started (what was queued in it is lost, loudly).
Thread-safe (paho-mqtt calls back from its network thread): one connection behind a lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("stresswatch.store")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    UNIQUE (sink, key)
)""",
    # Oldest-first reads and overflow drops of one sink without sorting the whole table.
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


class StoreError(OSError):
    """The state database cannot be used; the message is one line naming the path and what to do."""


class StoreFull(StoreError):
    """A write failed because the disk holding the state database is full; nothing was written."""


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
            "baselines and prompt history start over.", db_path, aside,
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
            return StoreFull(f"state database {self.path}: the disk is full; free some space on it "
                             f"(or set state.directory to a folder on another disk)")
        if code in (_READONLY, _CANTOPEN, _PERM):
            return StoreError(f"cannot write the state database {self.path}: make {where} writable for this "
                              f"user (uid {os.getuid()}) or set state.directory to a writable folder")
        if code == _IOERR:
            return StoreError(f"input/output error on the state database {self.path} ({exc}): check the disk")
        if code in (_CORRUPT, _NOTADB):
            return StoreError(f"the state database {self.path} is damaged ({exc}): restart stresswatch, "
                              f"which moves it aside and starts a fresh one")
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

    def enqueue(self, sink: str, items: list[tuple[str, str, float | None]], replace: bool = False) -> None:
        """Add (key, payload, expires) rows for `sink` in one transaction.

        An existing key is kept (idempotent re-send) unless `replace`, where the new payload
        takes its place (a newer retained state)."""
        if not items:
            return
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        now = time.time()
        with self._write():
            self._db.executemany(
                f"{verb} INTO outbox (sink, key, payload, created, expires) VALUES (?, ?, ?, ?, ?)",
                [(sink, k, p, now, e) for k, p, e in items],
            )
            over = self._count(sink) - self.limit(sink)
            if over > 0:
                self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sink = ? ORDER BY id LIMIT ?)",
                    (sink, over),
                )
                self._bump(f"{sink}.dropped_overflow", over)

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
            return self._db.execute("SELECT payload, reason FROM rejected WHERE sink = ? ORDER BY id", (sink,)).fetchall()

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
                (prompt["id"], prompt["person"], prompt["time"], prompt["expires_at"], "pending", json.dumps(prompt)),
            )

    def set_prompt_status(self, prompt_id: str, status: str, response: dict | None = None) -> bool:
        """Update a prompt's status (`pending`, `sent`, `delivered`, `expired`, `rejected`, or the
        phone's answer `done`, `snooze`, `dismiss`, `not_stressed`); False when the id is unknown."""
        with self._write():
            cur = self._db.execute(
                "UPDATE prompts SET status = ?, response = COALESCE(?, response) WHERE id = ?",
                (status, json.dumps(response) if response is not None else None, prompt_id),
            )
        return cur.rowcount == 1

    def prompt(self, prompt_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status, response, body FROM prompts WHERE id = ?", (prompt_id,)
            ).fetchone()
        if row is None:
            return None
        return {"status": row[0], "response": json.loads(row[1]) if row[1] else None, "prompt": json.loads(row[2])}


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
            rows = db.execute(f"SELECT key, value FROM saved_state WHERE key IN ({', '.join('?' * len(keys))})",
                              keys).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the state database {path}: {exc}") from None
    return {key: json.loads(value) for key, value in rows}


# -- helpers -------------------------------------------------------------------------------------


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _files(db_path: Path) -> tuple[Path, Path, Path]:
    return db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")


def _private_dir(directory: Path) -> None:
    """Create the state directory 0700 (an existing one is left as its owner set it)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StoreError(f"the state directory {directory} is not a directory (a file is in the way): "
                         f"move that file or set state.directory to another path") from None
    except PermissionError:
        raise StoreError(f"cannot create the state directory {directory}: create it for this user "
                         f"(uid {os.getuid()}) or set state.directory to a writable folder") from None
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
            raise StoreError(f"the state database {db_path} is damaged and could not be moved aside "
                             f"({exc.strerror}): move or delete it by hand") from None
    return aside


def _migrate(db: sqlite3.Connection) -> None:
    """Create the tables; on a database from before the maintained counts, count once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for stmt in SCHEMA:
            db.execute(stmt)
        have = db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'outbox_count_%'")
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
