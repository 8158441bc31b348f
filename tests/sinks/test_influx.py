"""InfluxDB sink against real servers: VictoriaMetrics (influxdb-client v2 writes) and InfluxDB 1.6.7.

Every point produced arrives, none twice, through server outages and a killed service.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import servers
from servers import wait_for  # VictoriaMetrics indexes new series within ~1 s

from alerts.prompt import Prompt
from collector.simulator import phase, simulate, to_beats
from processing.pipeline import Settings, run
from sinks.influx import InfluxSink, beat_line, device_line, line, prompt_line, reading_line
from sinks.store import StateStore

ROOT = Path(__file__).resolve().parents[2]


def recent_beats_and_readings(minutes: float = 6, person: str = "ann"):
    """Simulated beats ending now (VictoriaMetrics keeps only data inside its retention)."""
    start = time.time() - minutes * 60 - 5
    sim = simulate([phase("rest", minutes / 2), phase("stress", minutes / 2)], seed=2)
    beats = [b for b in to_beats(sim, person=person, device="h10")]
    shift = start - beats[0].t
    from dataclasses import replace

    beats = [replace(b, t=b.t + shift) for b in beats]
    readings = run(beats, person, Settings(step_s=10))
    return beats, readings


def rr_series(vm):
    return servers.vm_export(vm, '{__name__="beats_rr_ms"}')


# -- line protocol ------------------------------------------------------------------------------


def test_line_protocol_types_escaping_and_nulls():
    ln = line(
        "hrv",
        {"person": "a b,c", "empty": ""},
        {"x": 1.0, "n": 3, "s": 'say "hi"', "ok": True, "no": None},
        1.2346,
    )
    assert ln.text == 'hrv,person=a\\ b\\,c x=1.0,n=3i,s="say \\"hi\\"",ok=true 1235'
    assert ln.key == "hrv,person=a\\ b\\,c 1235"
    assert line("hrv", {}, {"a": None, "b": float("nan")}, 1.0) is None


def test_every_measurement_we_write_has_its_place_in_the_overflow_drop_order():
    """A new measurement must be ranked on purpose (an unranked one would go with the beats)."""
    import ast
    import inspect

    import sinks.line_protocol as lp
    from sinks.influx import DROP_ORDER

    written = {
        node.args[0].value
        for node in ast.walk(ast.parse(inspect.getsource(lp)))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "line"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert written == set(DROP_ORDER) and len(DROP_ORDER) == 7
    assert DROP_ORDER[0] == "beats" and set(DROP_ORDER[-2:]) == {"prompts", "daily"}


def test_reading_fields_keep_stable_types():
    """Every numeric Reading field is written as a float (even when whole), n_beats as an integer,
    activity, state and motion as strings, nulls left out: InfluxDB never sees a field change type."""
    _, readings = recent_beats_and_readings(minutes=4)
    for r in (readings[0], readings[-1]):
        fields = dict(kv.split("=", 1) for kv in reading_line(r).text.split(" ")[1].split(","))
        for name, value in r.to_dict(digits=9).items():
            if name in ("person", "time"):
                continue
            if value is None:
                assert name not in fields
            elif name == "n_beats":
                assert fields[name] == f"{value}i"
            elif name in ("activity", "state", "motion"):
                assert fields[name] == f'"{value}"'
            else:
                assert fields[name] == repr(float(value)) and not fields[name].endswith("i")


# -- VictoriaMetrics: influxdb-client writes -------------------------------------------------------


def test_points_written_with_influxdb_client_read_back_exactly(vm, tmp_path):
    beats, readings = recent_beats_and_readings()
    store = StateStore(tmp_path / "state.db")
    sink = InfluxSink(store, vm.url, bucket="stresswatch", org="home", token="secret", batch_size=500)
    sink.add([beat_line(b) for b in beats] + [reading_line(r) for r in readings])
    assert sink.flush() == len(beats) + len(readings)
    assert store.pending("influx") == 0
    got = wait_for(lambda: (s := rr_series(vm)) and sum(map(len, s.values())) >= len(beats) and s)
    series = got[("beats_rr_ms", (("device", "h10"), ("person", "ann")))]
    assert len(series) == len(beats)
    assert all(series[round(b.t * 1000)] == pytest.approx(b.rr_ms, abs=1e-9) for b in beats)
    hrv = wait_for(lambda: servers.vm_export(vm, '{__name__="hrv_rmssd_ms"}'))
    assert len(next(iter(hrv.values()))) == sum(r.rmssd_ms is not None for r in readings)


def test_two_flushes_at_once_send_each_point_once(vm, tmp_path):
    """The demo flushes from its producing calls while the service's flusher thread does too:
    each point goes to the server once, and `sent` counts it once."""
    import threading

    store = StateStore(tmp_path / "state.db")
    beats, _ = recent_beats_and_readings(minutes=6)
    sink = InfluxSink(store, vm.url, bucket="b", batch_size=50)
    sink.add([beat_line(b) for b in beats])
    go = threading.Barrier(3)

    def flush_until_empty():
        go.wait()
        while store.pending("influx"):
            sink.flush()

    threads = [threading.Thread(target=flush_until_empty) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sink.flush(force=True)
    assert sink.sent == len(beats)
    assert wait_for(lambda: sum(map(len, rr_series(vm).values())) == len(beats))


def test_server_killed_mid_stream_nothing_lost_nothing_doubled(vm, tmp_path):
    beats, _ = recent_beats_and_readings()
    store = StateStore(tmp_path / "state.db")
    sink = InfluxSink(store, vm.url, bucket="b", batch_size=200, timeout_s=2)
    chunks = [beats[i : i + 100] for i in range(0, len(beats), 100)]
    for k, chunk in enumerate(chunks):
        if k == len(chunks) // 3:
            # Outage starts. SIGTERM, not SIGKILL: VictoriaMetrics acknowledges a write before it
            # reaches disk (it flushes memory every second), so killing *it* with SIGKILL loses
            # its last second of acknowledged points, which no client can notice.
            vm.stop()
        sink.add([beat_line(b) for b in chunk])
        sink.flush(force=True)  # try every time, ignoring the backoff
    waiting = store.pending("influx")
    assert waiting > 0  # produced during the outage, held in the outbox
    vm.start()
    assert sink.flush(force=True) == waiting
    got = wait_for(lambda: (s := rr_series(vm)) and sum(map(len, s.values())) >= len(beats) and s)
    series = got[("beats_rr_ms", (("device", "h10"), ("person", "ann")))]
    print(f"\nVM outage: produced {len(beats)}, held during outage {waiting}, read back {len(series)}")
    assert sorted(series) == sorted(round(b.t * 1000) for b in beats)  # none lost, none doubled


def test_service_killed_during_outage_delivers_after_restart(vm, tmp_path):
    """The producing process is SIGKILLed while the server is down; a new process on the same
    state directory delivers everything once the server is back."""
    vm.stop()
    db = tmp_path / "state.db"
    child = textwrap.dedent(
        f"""
        import sys, time
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}, {str(ROOT / "tests" / "sinks")!r}]
        from test_influx import recent_beats_and_readings
        from sinks.influx import InfluxSink, beat_line
        from sinks.store import StateStore
        beats, _ = recent_beats_and_readings()
        sink = InfluxSink(StateStore({str(db)!r}), {vm.url!r}, bucket="b", timeout_s=1)
        for b in beats:
            sink.add([beat_line(b)])
        sink.flush()
        print(len(beats), flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    produced = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    vm.start()
    store = StateStore(db)
    assert store.pending("influx") == produced
    sink = InfluxSink(store, vm.url, bucket="b")
    assert sink.flush() == produced
    got = wait_for(lambda: (s := rr_series(vm)) and sum(map(len, s.values())) >= produced and s)
    n = sum(map(len, got.values()))
    print(f"\nservice SIGKILLed during outage: produced {produced}, read back {n}")
    assert n == produced


# -- InfluxDB 1.6.7: the line protocol and the rejection path -------------------------------------


def test_real_influxdb_accepts_our_lines_with_types_tags_and_timestamps(influxdb, tmp_path):
    beats, readings = recent_beats_and_readings(minutes=4)
    prompt = Prompt(
        "p-1",
        "ann",
        readings[-1].time,
        "acute",
        "Your RMSSD fell for 10 minutes.",
        81.5,
        readings[-1].time + 900,
    ).to_dict()
    store = StateStore(tmp_path / "state.db")
    sink = InfluxSink(store, influxdb.url, bucket="stresswatch", api="v1")
    sink.add([beat_line(b) for b in beats[:50]] + [reading_line(r) for r in readings])
    sink.add([prompt_line(prompt, response="done", effects={"rmssd_change_ms": 6.5})])
    sink.add([device_line("ann", "h10", readings[-1].time, 87.0, True)])
    sink.flush()
    assert store.pending("influx") == 0 and store.rejected("influx") == []

    fields = servers.influx_query(influxdb, "SHOW FIELD KEYS", db="stresswatch")["results"][0]["series"]
    types = {(s["name"], k): t for s in fields for k, t in s["values"]}
    assert types[("beats", "rr_ms")] == "float" and types[("beats", "artifact")] == "string"
    assert types[("hrv", "n_beats")] == "integer" and types[("hrv", "rmssd_ms")] == "float"
    assert types[("hrv", "state")] == "string" and types[("devices", "connected")] == "boolean"
    assert types[("prompts", "stress_score")] == "float" and types[("prompts", "response")] == "string"

    res = servers.influx_query(
        influxdb, "SELECT rr_ms, device FROM beats WHERE person='ann'", db="stresswatch"
    )
    rows = res["results"][0]["series"][0]["values"]
    assert [(t, v, d) for t, v, d in rows] == [(round(b.t * 1000), b.rr_ms, "h10") for b in beats[:50]]
    res = servers.influx_query(influxdb, "SELECT count(rmssd_ms) FROM hrv", db="stresswatch")
    assert res["results"][0]["series"][0]["values"][0][1] == sum(r.rmssd_ms is not None for r in readings)


def test_a_point_the_server_refuses_is_set_aside_and_does_not_block_the_rest(influxdb, tmp_path):
    beats, readings = recent_beats_and_readings(minutes=4)
    store = StateStore(tmp_path / "state.db")
    sink = InfluxSink(store, influxdb.url, bucket="stresswatch", api="v1", batch_size=1000)
    sink.add([reading_line(readings[0])])
    sink.flush()
    # A point whose field type conflicts with the existing series: InfluxDB answers 400.
    bad = f"hrv,person=ann n_beats=1.5 {round(readings[1].time * 1000)}"
    sink.add([beat_line(b) for b in beats[:40]])
    store.enqueue("influx", [("bad", bad, None)])
    sink.add([beat_line(b) for b in beats[40:80]])
    sink.flush()
    assert store.pending("influx") == 0
    rejected = store.rejected("influx")
    assert [p for p, _ in rejected] == [bad] and "400" in rejected[0][1] and "conflict" in rejected[0][1]
    assert store.counter("influx.rejected") == 1
    res = servers.influx_query(influxdb, "SELECT count(rr_ms) FROM beats", db="stresswatch")
    assert res["results"][0]["series"][0]["values"][0][1] == 80


@pytest.mark.parametrize("dedup", [True, False], ids=["with-dedup-flag", "vm-default"])
def test_a_resent_point_is_kept_once_only_where_the_server_deduplicates(tmp_path, dedup):
    """A write that landed but whose answer was lost (client time-out) is sent again. InfluxDB
    overwrites the same series key + timestamp; VictoriaMetrics keeps one copy only when started
    with -dedup.minScrapeInterval (as the test server and the README do), otherwise both."""
    (tmp_path / "vm").mkdir()
    server = servers.victoria_metrics(tmp_path / "vm", dedup=dedup).start()
    try:
        beats, _ = recent_beats_and_readings(minutes=2)
        sink = InfluxSink(StateStore(tmp_path / "state.db"), server.url, bucket="b")
        for _ in range(2):
            sink.add([beat_line(b) for b in beats])
            assert sink.flush() == len(beats)
        want = len(beats) if dedup else 2 * len(beats)
        got = wait_for(
            lambda: (
                (s := servers.vm_samples(server, '{__name__="beats_rr_ms"}'))
                and sum(map(len, s.values())) >= want
                and s
            )
        )
        stamps = sorted(ts for ts, _ in got[("beats_rr_ms", (("device", "h10"), ("person", "ann")))])
        expected = sorted(round(b.t * 1000) for b in beats)
        assert stamps == (expected if dedup else sorted(expected * 2))
    finally:
        server.stop()


# -- settings problems: 401, 403, 404 keep the points ----------------------------------------------


def warnings_of(caplog, logger="stresswatch.influx"):
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


def influx_count(server, auth=None) -> int:
    res = servers.influx_query(server, "SELECT count(rr_ms) FROM beats", db="stresswatch", auth=auth)
    series = res["results"][0].get("series")
    return series[0]["values"][0][1] if series else 0


def test_v2_api_against_influxdb_before_1_8_keeps_points_and_says_to_set_api_v1(influxdb, tmp_path, caplog):
    """InfluxDB 1.6.7 has no /api/v2/write (404): that is the setting, not the points."""
    beats, _ = recent_beats_and_readings(minutes=4)
    store = StateStore(tmp_path / "state.db")
    sink = InfluxSink(store, influxdb.url, bucket="stresswatch", timeout_s=5)  # api="v2", the default
    sink.add([beat_line(b) for b in beats])
    for _ in range(3):
        assert sink.flush(force=True) == 0
    assert store.pending("influx") == len(beats) and store.rejected("influx") == []
    assert sink.backoff_s > 0
    [warning] = warnings_of(caplog)  # one line, not one per point
    assert "404" in warning and 'api = "v1"' in warning and influxdb.url in warning
    fixed = InfluxSink(store, influxdb.url, bucket="stresswatch", api="v1")  # the user fixes the setting
    assert fixed.flush() == len(beats)
    assert influx_count(influxdb) == len(beats)


def test_v1_database_that_does_not_exist_keeps_points_until_it_is_created(influxdb, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stresswatch")
    beats, _ = recent_beats_and_readings(minutes=4)
    store = StateStore(tmp_path / "state.db")
    sink = InfluxSink(store, influxdb.url, bucket="health", api="v1")
    sink.add([beat_line(b) for b in beats])
    for _ in range(3):
        assert sink.flush(force=True) == 0
    assert store.pending("influx") == len(beats) and store.rejected("influx") == []
    [warning] = warnings_of(caplog)
    assert "404" in warning and "'health'" in warning and 'CREATE DATABASE "health"' in warning
    servers.influx_query(influxdb, 'CREATE DATABASE "health"')
    assert sink.flush(force=True) == len(beats)
    res = servers.influx_query(influxdb, "SELECT count(rr_ms) FROM beats", db="health")
    assert res["results"][0]["series"][0]["values"][0][1] == len(beats)
    assert any("accepts writes again" in r.getMessage() for r in caplog.records)


def test_wrong_password_keeps_points_and_points_at_the_credentials(tmp_path, caplog):
    (tmp_path / "influxdb").mkdir()
    server = servers.influxdb(tmp_path / "influxdb", auth=True).start()
    try:
        admin = ("admin", "right-pw")
        servers.influx_query(server, "CREATE USER admin WITH PASSWORD 'right-pw' WITH ALL PRIVILEGES")
        servers.influx_query(server, "CREATE DATABASE stresswatch", auth=admin)
        beats, _ = recent_beats_and_readings(minutes=2)
        store = StateStore(tmp_path / "state.db")
        sink = InfluxSink(
            store, server.url, bucket="stresswatch", api="v1", username="admin", password="wrong"
        )
        sink.add([beat_line(b) for b in beats])
        assert sink.flush(force=True) == 0 and sink.flush(force=True) == 0
        assert store.pending("influx") == len(beats) and store.rejected("influx") == []
        [warning] = warnings_of(caplog)
        assert "401" in warning and "username / password" in warning and "wrong" not in warning
        fixed = InfluxSink(
            store, server.url, bucket="stresswatch", api="v1", username="admin", password="right-pw"
        )
        assert fixed.flush() == len(beats)
        assert influx_count(server, auth=admin) == len(beats)
    finally:
        server.stop()


# -- beats carry the correction applied ------------------------------------------------------------


def with_ectopic_beats(beats, every: int = 60):
    """A premature beat (60 % of the RR) and its compensatory pause every `every` beats."""
    from dataclasses import replace

    out = list(beats)
    for i in range(every, len(out) - 1, every):
        early = out[i].rr_ms * 0.6
        out[i] = replace(out[i], t=out[i - 1].t + early / 1000.0, rr_ms=early)
        out[i + 1] = replace(out[i + 1], rr_ms=out[i + 1].rr_ms + out[i].rr_ms / 0.6 * 0.4)
    return out


def test_corrected_beats_are_stored_with_the_kind_of_correction(influxdb, tmp_path):
    """The pipeline's corrected beats (`beats_out`) reach `beats.artifact` as the kind's value
    ("ectopic", ...), the untouched ones as "none"."""
    from processing.pipeline import Pipeline

    beats, _ = recent_beats_and_readings(minutes=4)
    pipe = Pipeline("ann")
    corrected = []
    for b in with_ectopic_beats(beats):
        pipe.feed(b)
        corrected += pipe.beats_out
    pipe.finish()
    corrected += pipe.beats_out
    kinds = {b.artifact for b in corrected if b.artifact is not None}
    assert kinds  # the corrector found the ectopic beats
    store = StateStore(tmp_path / "state.db")
    sink = InfluxSink(store, influxdb.url, bucket="stresswatch", api="v1")
    sink.add([beat_line(b) for b in corrected])
    sink.flush()
    res = servers.influx_query(influxdb, "SELECT artifact FROM beats", db="stresswatch")
    stored = {t: a for t, a in res["results"][0]["series"][0]["values"]}
    assert stored == {round(b.t * 1000): (b.artifact.value if b.artifact else "none") for b in corrected}
    assert {a for a in stored.values()} == {k.value for k in kinds} | {"none"}
