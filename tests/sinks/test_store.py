"""The SQLite state store: durable, idempotent, bounded outbox; prompt history; private files;
errors a person can act on."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sinks.store import Dropped, OverflowLog, StateStore, StoreError, StoreFull


def test_outbox_is_idempotent_by_key_and_replace_keeps_the_newest(tmp_path):
    st = StateStore(tmp_path / "state.db")
    st.enqueue("s", [("a", "1", None), ("b", "2", None)])
    st.enqueue("s", [("a", "1-again", None)])
    assert [r.payload for r in st.peek("s", 10)] == ["1", "2"]
    st.enqueue("s", [("a", "newest", None)], replace=True)
    assert sorted(r.payload for r in st.peek("s", 10)) == ["2", "newest"]


def test_outbox_survives_reopening_and_deletes_only_what_was_delivered(tmp_path):
    st = StateStore(tmp_path / "state.db")
    st.enqueue("s", [(str(i), str(i), None) for i in range(10)])
    rows = st.peek("s", 4)
    st.delete([r.id for r in rows])
    st.close()
    again = StateStore(tmp_path / "state.db")
    assert [r.payload for r in again.peek("s", 100)] == [str(i) for i in range(4, 10)]


def test_outbox_is_bounded_and_counts_what_it_drops(tmp_path):
    st = StateStore(tmp_path / "state.db", max_rows=100)
    st.enqueue("s", [(str(i), str(i), None) for i in range(150)])
    assert st.pending("s") == 100
    assert st.peek("s", 1)[0].payload == "50"  # the oldest went first
    assert st.counter("s.dropped_overflow") == 50


def test_set_aside_keeps_reason_and_counts():
    st = StateStore(":memory:")
    st.enqueue("s", [("k", "bad line", None)])
    st.set_aside("s", st.peek("s", 1)[0], "400: unable to parse")
    assert st.pending("s") == 0
    assert st.rejected("s") == [("bad line", "400: unable to parse")]
    assert st.counter("s.rejected") == 1


def test_prompt_history():
    st = StateStore(":memory:")
    st.record_prompt({"id": "p1", "person": "me", "time": 1.0, "expires_at": 2.0})
    assert st.prompt("p1")["status"] == "pending"
    assert st.set_prompt_status("p1", "delivered")
    assert st.answer_prompt("p1", {"id": "p1", "action": "done"})
    assert st.prompt("p1") == {
        "status": "done",
        "response": {"id": "p1", "action": "done"},
        "prompt": {"id": "p1", "person": "me", "time": 1.0, "expires_at": 2.0},
    }
    assert not st.set_prompt_status("nope", "delivered") and not st.answer_prompt("nope", {"action": "done"})


def test_the_first_answer_to_a_prompt_stands():
    st = StateStore(":memory:")
    st.record_prompt({"id": "p1", "person": "me", "time": 1.0, "expires_at": 2.0})
    assert st.answer_prompt("p1", {"id": "p1", "action": "snooze", "minutes": 30})
    assert not st.answer_prompt("p1", {"id": "p1", "action": "done", "minutes": None})
    assert not st.answer_prompt("p1", {"id": "p1", "action": "dismiss", "minutes": None})
    # nor does a delivery report that comes after the answer (a PUBACK after a reconnect) hide it
    assert not st.set_prompt_status("p1", "delivered")
    rec = st.prompt("p1")
    assert rec["status"] == "snooze" and rec["response"] == {"id": "p1", "action": "snooze", "minutes": 30}


def test_open_prompts_are_those_on_their_way_unexpired_and_no_delivery_status_replaces_an_answer():
    st = StateStore(":memory:")
    for pid, expires in (
        ("answered", 100.0),
        ("delivered", 100.0),
        ("pending", 90.0),
        ("old", 50.0),
        ("rejected", 100.0),
    ):
        st.record_prompt({"id": pid, "person": "me", "time": 1.0, "expires_at": expires})
    st.set_prompt_status("answered", "delivered")
    st.answer_prompt("answered", {"id": "answered", "action": "done"})
    st.set_prompt_status("delivered", "delivered")
    st.set_prompt_status("rejected", "rejected")
    # the broker acknowledging a prompt sent again after the phone answered it
    assert not st.set_prompt_status("answered", "delivered")
    assert st.prompt("answered")["status"] == "done"
    assert [(pid, expires) for pid, _, expires in st.open_prompts(60.0)] == [
        ("delivered", 100.0),
        ("pending", 90.0),
    ]
    assert [pid for pid, _, _ in st.open_prompts(95.0)] == ["delivered"]


# -- one process per state directory --------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from sinks.store import StateLock
StateLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def hold_lock_in_another_process(directory) -> subprocess.Popen:
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_state_directory_held_by_another_process_is_refused_naming_its_pid_until_it_dies(tmp_path):
    from sinks.store import LOCK_NAME, StateDirectoryBusy, StateLock, lock_holder

    state = tmp_path / "state"
    other = hold_lock_in_another_process(state)
    try:
        lock_file = state / LOCK_NAME
        assert lock_file.read_text() == f"{other.pid}\n" and stat.S_IMODE(lock_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        with pytest.raises(StateDirectoryBusy) as err:
            StateLock(state).acquire()
        assert str(err.value) == (
            f"another stresswatch (PID {other.pid}) is already running on the state directory "
            f"{state}: stop it first, or give this one its own state.directory and "
            "mqtt.client_id"
        )
        assert lock_holder(state) == other.pid
    finally:
        other.kill()  # SIGKILL: the file still names it, but the kernel has dropped its lock
        other.wait()
    assert lock_file.read_text() == f"{other.pid}\n" and lock_holder(state) is None
    with StateLock(state):
        assert lock_holder(state) == os.getpid()
    assert lock_file.read_text() == "" and lock_holder(state) is None


# -- the per-sink row count: exact, and O(1) ------------------------------------------------------


def true_count(st: StateStore, sink: str) -> int:
    return st._db.execute("SELECT COUNT(*) FROM outbox WHERE sink = ?", (sink,)).fetchone()[0]


def test_row_count_stays_exact_through_every_operation_and_a_reopen(tmp_path):
    st = StateStore(tmp_path / "state.db", limits={"a": 50, "b": 1000})

    def check():
        for sink in ("a", "b"):
            assert st.pending(sink) == true_count(st, sink)

    st.enqueue("a", [(f"k{i}", "x", None) for i in range(30)])
    check()
    st.enqueue("a", [(f"k{i}", "again", None) for i in range(20, 40)])  # 10 duplicates ignored
    check()
    assert st.pending("a") == 40
    st.enqueue("a", [(f"k{i}", "newer", None) for i in range(35, 45)], replace=True)  # 5 replaced, 5 new
    check()
    assert st.pending("a") == 45
    st.enqueue("a", [(f"n{i}", "x", None) for i in range(20)])  # 65 > 50: the oldest 15 dropped
    check()
    assert st.pending("a") == 50 and st.counter("a.dropped_overflow") == 15
    st.enqueue("b", [(f"k{i}", "x", None) for i in range(7)])
    st.delete([r.id for r in st.peek("a", 12)])
    check()
    st.set_aside("a", st.peek("a", 1)[0], "400: bad")
    check()
    assert (st.pending("a"), st.pending("b")) == (37, 7)
    st.close()
    st = StateStore(tmp_path / "state.db", limits={"a": 50, "b": 1000})
    check()
    assert (st.pending("a"), st.pending("b")) == (37, 7)
    st.enqueue("a", [("after-reopen", "x", None)])
    check()


def test_a_database_from_before_the_maintained_count_is_counted_once_on_open(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "state.db")
    old.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, key TEXT NOT NULL,"
        " payload TEXT NOT NULL, created REAL NOT NULL, expires REAL, UNIQUE (sink, key))"
    )
    old.executemany(
        "INSERT INTO outbox (sink, key, payload, created) VALUES (?, ?, 'p', 0)",
        [("influx", str(i)) for i in range(120)] + [("mqtt", str(i)) for i in range(3)],
    )
    old.commit()
    old.close()
    st = StateStore(tmp_path / "state.db")
    assert (st.pending("influx"), st.pending("mqtt")) == (120, 3)
    st.delete([r.id for r in st.peek("influx", 20)])
    assert st.pending("influx") == true_count(st, "influx") == 100


def sqlite_steps(st: StateStore, fn) -> int:
    """SQLite virtual-machine instructions `fn` makes the store execute (a measure of work that,
    unlike time, does not depend on the machine)."""
    steps = [0]

    def tick():
        steps[0] += 1
        return 0

    st._db.set_progress_handler(tick, 1)
    try:
        fn()
    finally:
        st._db.set_progress_handler(None, 1)
    return steps[0]


def test_enqueue_work_does_not_grow_with_the_outbox(tmp_path):
    """One enqueue at 30,000 waiting rows does no more work than at 300, below and at the bound
    (benchmarks/store.py times it up to 2,000,000 rows)."""
    work = {}
    for n in (300, 30_000):
        st = StateStore(tmp_path / f"{n}.db", limits={"s": 10 * n})
        st.enqueue("s", [(f"k{i}", "x" * 100, None) for i in range(n)])
        below = sqlite_steps(st, lambda st=st: st.enqueue("s", [("one more", "x" * 100, None)]))
        st.limits["s"] = st.pending("s")
        at_bound = sqlite_steps(st, lambda st=st: st.enqueue("s", [("and one", "x" * 100, None)]))
        assert st.pending("s") == n + 1 and st.counter("s.dropped_overflow") == 1
        work[n] = (below, at_bound)
    assert work[30_000][0] < 1.5 * work[300][0], work
    assert work[30_000][1] < 1.5 * work[300][1], work


@pytest.mark.slow
def test_dropping_past_rows_that_rank_higher_does_not_grow_with_them(tmp_path):
    """At the bound, the lowest-priority row is found through the index, however many rows of a
    higher priority (older ones included) the outbox holds."""
    work = {}
    for n in (300, 30_000):
        st = StateStore(tmp_path / f"{n}.db", limits={"s": 10 * n})
        st.enqueue("s", [(f"keep{i}", "x" * 100, None, 1) for i in range(n)])
        st.enqueue("s", [(f"k{i}", "x" * 100, None, 0) for i in range(n)])
        st.limits["s"] = st.pending("s")
        work[n] = sqlite_steps(st, lambda st=st: st.enqueue("s", [("one more", "x" * 100, None, 0)]))
        assert st.peek("s", 1)[0].key == "keep0" and st.counter("s.dropped_overflow") == 1
    assert work[30_000] < 1.5 * work[300], work


# -- overflow: what goes first, and saying so --------------------------------------------------------


def test_a_full_outbox_drops_the_lowest_priority_first_and_the_oldest_first_within_it(tmp_path, monkeypatch):
    clock = iter(range(1_800_000_000, 1_800_001_000))
    monkeypatch.setattr("sinks.store.time.time", lambda: float(next(clock)))  # one second per enqueue
    st = StateStore(tmp_path / "state.db", limits={"s": 10})
    assert st.enqueue("s", [(f"prompt{i}", "p", None, 5) for i in range(3)]) is None  # queued first
    for i in range(12):
        dropped = st.enqueue("s", [(f"beat{i}", "b", None)])  # priority 0 by default
    keys = [r.key for r in st.peek("s", 100)]
    assert keys == ["prompt0", "prompt1", "prompt2"] + [f"beat{i}" for i in range(5, 12)]
    assert dropped == Dropped(1, {0: 1}, 1_800_000_005.0, 1_800_000_005.0)  # beat4, the oldest beat left
    dropped = st.enqueue("s", [(f"reading{i}", "r", None, 2) for i in range(8)])
    assert dropped.n == 8 and dropped.by_priority == {0: 7, 2: 1}  # every beat, then the oldest reading
    assert (dropped.first_queued, dropped.last_queued) == (1_800_000_006.0, 1_800_000_013.0)
    assert [r.key for r in st.peek("s", 100)] == ["prompt0", "prompt1", "prompt2"] + [
        f"reading{i}" for i in range(1, 8)
    ]
    assert st.counter("s.dropped_overflow") == 5 + 8


def test_a_database_from_before_the_priorities_keeps_its_rows_at_priority_0(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "state.db")
    old.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, key TEXT NOT NULL,"
        " payload TEXT NOT NULL, created REAL NOT NULL, expires REAL, UNIQUE (sink, key))"
    )
    old.executemany(
        "INSERT INTO outbox (sink, key, payload, created) VALUES ('s', ?, 'p', 0)",
        [(str(i),) for i in range(5)],
    )
    old.commit()
    old.close()
    st = StateStore(tmp_path / "state.db", limits={"s": 5})
    st.enqueue("s", [("new", "p", None, 1)])
    assert [r.key for r in st.peek("s", 10)] == ["1", "2", "3", "4", "new"]
    st.close()
    assert StateStore(tmp_path / "state.db", limits={"s": 5}).pending("s") == 5  # opens again as it is


def test_drops_are_logged_at_once_then_at_most_once_a_minute_with_count_span_and_kinds(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "stresswatch.store")
    st = StateStore(tmp_path / "state.db", limits={"s": 100})
    now = [0.0]
    report = OverflowLog(st, "s", "TestDB", "points", {0: "beats", 1: "hrv"}, clock=lambda: now[0])

    def lines():
        return [r.getMessage() for r in caplog.records]

    t0 = 1_800_000_000.0
    report.add(Dropped(3, {0: 3}, t0, t0 + 2))
    assert lines() == [
        (
            "TestDB outbox full (at most 100 points): dropped 3 points (beats 3) queued from "
            "2027-01-15 08:00:00 UTC to 2027-01-15 08:00:02 UTC (2 s); 0 dropped so far (s.dropped_overflow)"
        )
    ]
    for k in range(50):  # the rest of the minute: summed, not logged
        now[0] += 1
        report.add(Dropped(2, {0: 1, 1: 1}, t0 + 10 + k, t0 + 11 + k))
        report.flush()
    assert len(lines()) == 1
    now[0] = 60.0
    report.flush()
    assert len(lines()) == 2
    assert (
        "dropped 100 points (beats 50, hrv 50) queued from 2027-01-15 08:00:10 UTC to 2027-01-15 08:01:00 UTC (50 s)"
        in lines()[1]
    )
    report.flush(force=True)  # nothing left to say
    now[0] = 100.0
    report.add(Dropped(1, {1: 1}, t0 + 3600, t0 + 3600))  # within the minute after the last line
    assert len(lines()) == 2
    report.flush(force=True)  # a stop says what is left at once
    assert len(lines()) == 3 and "dropped 1 point (hrv 1)" in lines()[2]


# -- per-sink bounds --------------------------------------------------------------------------------


def test_each_sink_has_its_own_bound(tmp_path):
    st = StateStore(tmp_path / "state.db", max_rows=7, limits={"influx": 20, "mqtt": 5})
    for sink in ("influx", "mqtt", "other"):
        st.enqueue(sink, [(str(i), str(i), None) for i in range(30)])
    assert (st.pending("influx"), st.pending("mqtt"), st.pending("other")) == (20, 5, 7)
    assert st.counter("mqtt.dropped_overflow") == 25 and st.counter("influx.dropped_overflow") == 10
    assert st.peek("mqtt", 1)[0].payload == "25"  # the oldest went first


# -- private files ----------------------------------------------------------------------------------


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_state_directory_is_0700_and_its_files_0600(tmp_path):
    st = StateStore(tmp_path / "new" / "state" / "state.db")
    st.enqueue("s", [("k", "heart rate", None)])
    folder = tmp_path / "new" / "state"
    assert mode(folder) == 0o700
    for name in ("state.db", "state.db-wal", "state.db-shm"):  # all exist while the store is open
        assert mode(folder / name) == 0o600, name


def test_every_folder_the_store_creates_is_0700_and_existing_ones_are_left_alone(tmp_path):
    """`mkdir -p` would make the folders above the state directory 0755 (~/.local/share for the
    default ~/.local/share/stresswatch); the store makes each one it creates 0700."""
    tmp_path.chmod(0o755)
    old = os.umask(0o022)  # the usual umask, under which a plain mkdir gives 0755
    try:
        StateStore(tmp_path / "a" / "b" / "state" / "state.db").close()
    finally:
        os.umask(old)
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/state")] == [0o700] * 3
    assert mode(tmp_path) == 0o755


def test_a_file_in_the_way_above_the_state_directory_is_one_clear_error(tmp_path):
    (tmp_path / "a").write_text("a file")
    with pytest.raises(StoreError) as err:
        StateStore(tmp_path / "a" / "b" / "state.db")
    text = one_line(err)
    assert "not a directory" in text and f"a file is in the way at {tmp_path / 'a'})" in text


def test_files_a_previous_version_left_world_readable_are_made_private(tmp_path):
    StateStore(tmp_path / "state.db").close()
    os.chmod(tmp_path / "state.db", 0o644)
    st = StateStore(tmp_path / "state.db")
    st.enqueue("s", [("k", "v", None)])
    assert [mode(tmp_path / n) for n in ("state.db", "state.db-wal", "state.db-shm")] == [0o600] * 3


# -- errors a person can act on ---------------------------------------------------------------------


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_garbage_state_db_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    (tmp_path / "state.db").write_bytes(b"this is not a database\n" * 300)
    st = StateStore(tmp_path / "state.db")
    st.enqueue("s", [("k", "v", None)])
    assert st.pending("s") == 1
    [aside] = tmp_path.glob("state.db.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    [msg] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "DAMAGED" in msg and str(tmp_path / "state.db") in msg and aside.name in msg


def test_a_truncated_state_db_is_moved_aside_and_a_fresh_one_started(tmp_path, caplog):
    st = StateStore(tmp_path / "state.db")
    st.enqueue("s", [(str(i), "x" * 200, None) for i in range(5000)])
    st.close()
    size = os.path.getsize(tmp_path / "state.db")
    with open(tmp_path / "state.db", "r+b") as fh:
        fh.truncate(size // 2)  # e.g. a copy interrupted, a power cut on a card that lies about fsync
    st = StateStore(tmp_path / "state.db")
    assert st.pending("s") == 0
    st.enqueue("s", [("k", "v", None)])
    assert st.pending("s") == 1
    [aside] = tmp_path.glob("state.db.corrupt-*")
    assert os.path.getsize(aside) == size // 2
    assert any("DAMAGED" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_file_where_the_state_directory_should_be_is_one_clear_error(tmp_path):
    (tmp_path / "state").write_text("oops")
    with pytest.raises(StoreError) as err:
        StateStore(tmp_path / "state" / "state.db")
    text = one_line(err)
    assert str(tmp_path / "state") in text and "not a directory" in text and "state.directory" in text


@contextlib.contextmanager
def read_only(folder):
    """`folder` that this process cannot write to; root ignores file modes, so as root the folder
    is made immutable instead (chattr +i)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("existing", [False, True], ids=["new-database", "existing-database"])
def test_a_read_only_state_directory_is_one_clear_error(tmp_path, existing):
    folder = tmp_path / "state"
    folder.mkdir()
    if existing:
        StateStore(folder / "state.db").close()
    with read_only(folder), pytest.raises(StoreError) as err:
        StateStore(folder / "state.db")
    text = one_line(err)
    assert str(folder / "state.db") in text and "writable" in text and "state.directory" in text


def test_a_full_disk_fails_the_write_whole_and_writes_resume_when_space_is_freed(tmp_path):
    """A full disk, made real with SQLite's own page limit on the store's connection."""
    st = StateStore(tmp_path / "state.db")
    st.enqueue("s", [(f"a{i}", "x" * 200, None) for i in range(100)])
    st.limit_pages(1)  # SQLite keeps the current size: nothing more fits
    with pytest.raises(StoreFull) as err:
        st.enqueue("s", [(f"b{i}", "x" * 200, None) for i in range(100)])
    text = one_line(err)
    assert str(tmp_path / "state.db") in text and "disk is full" in text
    assert isinstance(err.value, StoreError)
    assert st.pending("s") == true_count(st, "s") == 100  # all or nothing
    st.limit_pages(None)  # space freed
    st.enqueue("s", [(f"b{i}", "x" * 200, None) for i in range(100)])
    assert st.pending("s") == true_count(st, "s") == 200
