"""The embedded SQLite state store: the outbox of undelivered points and messages, prompt history.

One file (`state.db`, WAL mode) under the configured state directory. The outbox is what makes
delivery survive outages and restarts: a sink enqueues before it sends and deletes only after
the server accepted. Rows have a per-sink unique `key` (InfluxDB: series + timestamp; MQTT
state: the topic; MQTT prompt: its id), so re-enqueueing the same thing is idempotent and a
newer retained state replaces an undelivered older one.

Bounded: each sink keeps at most `max_rows` rows; beyond that the oldest rows are dropped and
counted in `counters` (`<sink>.dropped_overflow`), so a week-long outage cannot fill the SD card.
Thread-safe (paho-mqtt calls back from its network thread): one connection behind a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    UNIQUE (sink, key)
);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    status TEXT NOT NULL,
    response TEXT,
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxRow:
    id: int
    key: str
    payload: str
    expires: float | None


class StateStore:
    """The state database. `path` may be ':memory:' for tests of pure logic."""

    def __init__(self, path: str | Path, max_rows: int = 2_000_000):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.max_rows = max_rows
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills in WAL mode
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- outbox --------------------------------------------------------------------------------

    def enqueue(self, sink: str, items: list[tuple[str, str, float | None]], replace: bool = False) -> None:
        """Add (key, payload, expires) rows for `sink` in one transaction.

        An existing key is kept (idempotent re-send) unless `replace`, where the new payload
        takes its place (a newer retained state)."""
        if not items:
            return
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                f"{verb} INTO outbox (sink, key, payload, created, expires) VALUES (?, ?, ?, ?, ?)",
                [(sink, k, p, now, e) for k, p, e in items],
            )
            over = self._count(sink) - self.max_rows
            if over > 0:
                self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE sink = ? ORDER BY id LIMIT ?)",
                    (sink, over),
                )
                self._bump(f"{sink}.dropped_overflow", over)
            self._db.execute("COMMIT")

    def peek(self, sink: str, limit: int) -> list[OutboxRow]:
        """The oldest `limit` rows of `sink`, not removed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key, payload, expires FROM outbox WHERE sink = ? ORDER BY id LIMIT ?", (sink, limit)
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
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")

    def pending(self, sink: str) -> int:
        with self._lock:
            return self._count(sink)

    def set_aside(self, sink: str, row: OutboxRow, reason: str) -> None:
        """A row the server refused for good (e.g. HTTP 400): keep it with the reason, stop retrying."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO rejected (sink, payload, reason, at) VALUES (?, ?, ?, ?)",
                (sink, row.payload, reason[:2000], time.time()),
            )
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
            self._bump(f"{sink}.rejected", 1)
            self._db.execute("COMMIT")

    def rejected(self, sink: str) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute("SELECT payload, reason FROM rejected WHERE sink = ? ORDER BY id", (sink,)).fetchall()

    # -- counters ------------------------------------------------------------------------------

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
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
        return self._db.execute("SELECT COUNT(*) FROM outbox WHERE sink = ?", (sink,)).fetchone()[0]

    # -- prompts -------------------------------------------------------------------------------

    def record_prompt(self, prompt: dict) -> None:
        """Remember a prompt that was produced (status `pending` until delivered)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO prompts (id, person, created, expires, status, body) VALUES (?, ?, ?, ?, ?, ?)",
                (prompt["id"], prompt["person"], prompt["time"], prompt["expires_at"], "pending", json.dumps(prompt)),
            )

    def set_prompt_status(self, prompt_id: str, status: str, response: dict | None = None) -> bool:
        """Update a prompt's status (`delivered`, `expired`, `done`, `snooze`, `dismiss`);
        False when the id is unknown."""
        with self._lock:
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
