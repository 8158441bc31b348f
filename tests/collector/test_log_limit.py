"""LogLimit: the first line about a key at once, then at most one per interval per key, with the
count of what was held back; a forgotten key speaks at once again."""

from __future__ import annotations

import logging

from collector.log_limit import EVERY_S, LogLimit


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_allowed_once_a_minute_by_default_and_keys_are_independent():
    clock = Clock()
    limit = LogLimit(clock=clock)
    assert EVERY_S == 60.0
    assert limit.allow("disk") and limit.allow("broker")
    clock.now += 59.9
    assert not limit.allow("disk") and not limit.allow("broker")
    assert limit.allow("other")  # a new key is said at once
    clock.now += 0.1  # a minute after the first line
    assert limit.allow("disk") and not limit.allow("disk")


def test_the_interval_can_be_set_per_limiter_and_per_call():
    clock = Clock()
    limit = LogLimit(every_s=30.0, clock=clock)
    assert limit.allow() and not limit.allow()
    clock.now += 30.0
    assert limit.allow()
    clock.now += 100.0
    assert not limit.allow(every_s=600.0)  # a settings problem: every 10 min
    clock.now += 500.0
    assert limit.allow(every_s=600.0)


def test_forget_and_clear_let_the_next_line_come_at_once():
    clock = Clock()
    limit = LogLimit(clock=clock)
    assert limit.allow("problem") and not limit.allow("problem")
    limit.forget("problem")
    assert limit.allow("problem")
    assert limit.allow("other reason") and not limit.allow("other reason")
    limit.clear()
    assert limit.allow("problem") and limit.allow("other reason")


def test_warning_logs_with_the_count_of_suppressed_lines(caplog):
    clock = Clock()
    limit = LogLimit(logging.getLogger("test.limit"), every_s=30.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.limit"):
        assert limit.warning("connect", "%s: connection failed", "H10")
        for _ in range(3):
            assert not limit.warning("connect", "%s: connection failed", "H10")
        clock.now += 30.0
        assert limit.warning("connect", "%s: connection failed", "H10")
        assert limit.warning("rr", "%s: RR intervals again", "H10", level=logging.INFO)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "H10: connection failed"),
        (logging.WARNING, "H10: connection failed (3 similar suppressed)"),
        (logging.INFO, "H10: RR intervals again"),
    ]
