"""At most one log line per key and interval (a minute unless said) for problems that repeat at the
edges: a strap that keeps failing to connect, a server that stays away, a full disk, an outbox
that keeps dropping. The first line about a key is said at once; the repeats within the interval
are counted, not logged.

In collector/, the first package of the flow (collector -> processing -> alerts -> sinks ->
stresswatch), because the Bluetooth collector and the sinks both use it; it reads the monotonic
clock, so it belongs to the edges, never to the pure inner stages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

EVERY_S = 60.0  # ours: a line a minute says a problem goes on without filling a Pi's journal


class LogLimit:
    """Whether a line about `key` may be logged now (`allow`), or the line itself (`warning`).

    Per key (None is a key too): yes the first time, and again once `every_s` seconds of `clock`
    (monotonic, injectable for tests) have passed since the last line about that key; otherwise
    the call is counted as suppressed, and `warning` adds the count to the next line it writes
    ("(3 similar suppressed)"). `forget(key)` makes the next line about `key` come at once (a
    sink whose problem changed says the new one straight away). Thread-safe."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger = logger
        self.every_s = every_s
        self.clock = clock
        self._lock = threading.Lock()
        self._said: dict[Hashable, float] = {}  # key -> when its last line was allowed
        self._held: dict[Hashable, int] = {}  # key -> lines suppressed since then

    def allow(self, key: Hashable = None, every_s: float | None = None) -> bool:
        """True when a line about `key` may be logged now (`every_s` overrides the interval for
        this call); the caller then logs it."""
        return self._take(key, every_s) is not None

    def warning(self, key: Hashable, msg: str, *args, level: int = logging.WARNING) -> bool:
        """Log `msg % args` at `level` on `logger` when allowed, with the count of the lines about
        `key` suppressed since the last one; True when it was logged."""
        held = self._take(key, None)
        if held is None:
            return False
        assert self.logger is not None, "LogLimit.warning needs the logger given to LogLimit()"
        self.logger.log(level, msg + (f" ({held} similar suppressed)" if held else ""), *args)
        return True

    def forget(self, key: Hashable = None) -> None:
        with self._lock:
            self._said.pop(key, None)
            self._held.pop(key, None)

    def clear(self) -> None:
        """Forget every key (a connection that succeeded: its next failure is news)."""
        with self._lock:
            self._said.clear()
            self._held.clear()

    def _take(self, key: Hashable, every_s: float | None) -> int | None:
        """The count suppressed since the last line about `key` when one may be logged now
        (and the interval starts again), else None (and one more is counted)."""
        now = self.clock()
        interval = self.every_s if every_s is None else every_s
        with self._lock:
            last = self._said.get(key)
            if last is not None and now - last < interval:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._said[key] = now
            return self._held.pop(key, 0)
