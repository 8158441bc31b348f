"""InfluxDB sink against real servers: VictoriaMetrics (influxdb-client v2 writes) and InfluxDB 1.6.7.

Every point produced arrives, none twice, through server outages and a killed service.
"""

from __future__ import annotations

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
    ln = line("hrv", {"person": "a b,c", "empty": ""}, {"x": 1.0, "n": 3, "s": 'say "hi"', "ok": True, "no": None}, 1.2346)
    assert ln.text == 'hrv,person=a\\ b\\,c x=1.0,n=3i,s="say \\"hi\\"",ok=true 1235'
    assert ln.key == "hrv,person=a\\ b\\,c 1235"
    assert line("hrv", {}, {"a": None, "b": float("nan")}, 1.0) is None


def test_reading_fields_keep_stable_types():
    """Every numeric Reading field is written as a float (even when whole), n_beats as an integer,
    activity and state as strings, nulls left out: InfluxDB never sees a field change type."""
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
            elif name in ("activity", "state"):
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
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}, {str(ROOT / 'tests' / 'sinks')!r}]
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
    prompt = Prompt("p-1", "ann", readings[-1].time, "acute", "Your RMSSD fell for 10 minutes.", 81.5,
                    readings[-1].time + 900).to_dict()
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

    res = servers.influx_query(influxdb, "SELECT rr_ms, device FROM beats WHERE person='ann'", db="stresswatch")
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
