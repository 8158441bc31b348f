"""The SQLite state store: durable, idempotent, bounded outbox; prompt history."""

from __future__ import annotations

from sinks.store import StateStore


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
    assert st.set_prompt_status("p1", "done", {"action": "done"})
    assert st.prompt("p1")["response"] == {"action": "done"}
    assert not st.set_prompt_status("nope", "done")
