"""The command line as a user runs it: `stresswatch demo` and `stresswatch analyze`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from processing.reading import FIELDS
from stresswatch.cli import main


@pytest.fixture(autouse=True)
def own_state_directory(tmp_path, monkeypatch):
    """Each test's commands keep their state under its tmp_path: two demos on one state directory
    (test runs side by side with the same HOME) would be refused, as for a person."""
    monkeypatch.setenv("STRESSWATCH_STATE__DIRECTORY", str(tmp_path / "state"))


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_the_demo_without_matplotlib_says_how_to_get_the_plot_and_the_service_never_imports_it(tmp_path):
    """matplotlib is the optional `plot` extra: without it the demo runs and says so in one line."""
    import os

    hide = (
        "import sys; sys.modules['matplotlib'] = None; from stresswatch.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state")}
    proc = subprocess.run(
        [sys.executable, "-c", hide, "demo", "--seconds", "0", "--plot", str(tmp_path / "d.png")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "plot skipped: matplotlib is not installed (pip install 'stresswatch[plot]'" in proc.stdout
    assert not (tmp_path / "d.png").exists()
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, stresswatch.service, stresswatch.cli; print('matplotlib' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False"


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_saves_a_plot(tmp_path):
    png = tmp_path / "demo.png"
    proc = run_cli("demo", "--seconds", "0", "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "summary" in out and "work stress" in out and "exercise" in out
    rows = {
        line.split()[0]
        + (" " + line.split()[1] if line.startswith(("work", "morning", "evening")) else ""): line
        for line in out.splitlines()
        if line[:1].isalpha()
    }
    assert "stressed" in rows["work stress"]
    assert "active" in rows["exercise"] and "stressed" not in rows["exercise"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    assert f"plot saved to {png}" in out


def test_simulate_then_analyze_json_has_every_reading_field(tmp_path):
    rec = tmp_path / "day.csv"
    assert main(["simulate", str(rec), "--artifacts", "0.01"]) == 0
    proc = run_cli("analyze", str(rec), "--json", "--step", "30")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) > 100
    assert all(set(FIELDS) == set(r) for r in rows)
    assert any(r["artifact_pct"] > 0 for r in rows)
    assert all(0 <= r["quality"] <= 1 for r in rows)
    # each line is exactly what json.dumps writes (keys in field order, a person name escaped)
    assert all(line == json.dumps(row) for line, row in zip(proc.stdout.splitlines(), rows))
    assert list(rows[0]) == list(FIELDS)


def test_analyze_whole_gives_one_reading(tmp_path):
    rec = tmp_path / "rr.txt"
    rec.write_text("\n".join(str(800 + (i % 7) * 10) for i in range(400)))
    proc = run_cli("analyze", str(rec), "--whole", "--json", "--no-correction")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["n_beats"] == 400 and rows[0]["window_s"] is None


@pytest.mark.parametrize(
    "content, message", [("hello\n", "unknown format"), ("800\nx\n", ":2: RR value 'x'")]
)
def test_analyze_garbage_is_a_clear_error(tmp_path, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    proc = run_cli("analyze", str(bad))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_analyze_a_real_24h_recording(reference):
    proc = run_cli("analyze", str(reference / "rr/nsr2db_24h/nsr004.csv"), "--json", "--step", "300")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) > 250  # ~24 h in 5 min steps
    assert 40 < sum(r["hr_bpm"] for r in rows) / len(rows) < 120


@pytest.mark.slow
def test_demo_replays_a_real_recording(reference, tmp_path):
    proc = run_cli(
        "demo",
        "--recording",
        str(reference / "rr/rest_exercise/exercise_rri.hrm"),
        "--seconds",
        "0",
        "--plot",
        str(tmp_path / "x.png"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "exercise_rri.hrm" in proc.stdout and (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_every_folder_the_demo_creates_is_private(tmp_path):
    """The demo keeps its state in <state.directory>/demo: the base folder it creates for that
    (and any missing folder above it) is 0700 like demo/ itself, under the usual umask 022."""
    import os
    import stat

    base = tmp_path / "home" / "share" / "stresswatch"
    env = {"STRESSWATCH_STATE__DIRECTORY": str(base), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", "demo", "--seconds", "0", "--plot", ""],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        preexec_fn=lambda: os.umask(0o022),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for folder in (tmp_path / "home", tmp_path / "home" / "share", base, base / "demo"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert (base / "demo" / "state.db").exists()


def test_demo_with_mqtt_delivers_its_prompts_to_a_phone_before_they_expire(broker, tmp_path):
    """A phone subscribed to the prompt topic gets the demo's two prompts, still valid: the replayed
    day ends now (a day dated 2026-01-01 had both dropped by the sink as expired)."""
    import threading
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from servers import wait_for

    got, subscribed = [], threading.Event()
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    phone.on_message = lambda c, u, m: got.append((json.loads(m.payload), m.properties, time.time()))
    phone.on_subscribe = lambda *a: subscribed.set()
    phone.connect("127.0.0.1", broker.port)
    phone.subscribe("stresswatch/me/prompt", qos=1)
    phone.loop_start()
    try:
        assert subscribed.wait(10)
        env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "stresswatch.cli",
                "demo",
                "--seconds",
                "0",
                "--plot",
                "",
                "--mqtt",
                f"mqtt://127.0.0.1:{broker.port}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count(">> prompt") == 2 and "MQTT: 0 messages waiting" in proc.stdout
        wait_for(lambda: len(got) >= 2, 10)
    finally:
        phone.loop_stop()
        phone.disconnect()
    assert len(got) == 2 and len({p["id"] for p, _, _ in got}) == 2
    for prompt, props, arrived in got:
        assert prompt["person"] == "me" and prompt["kind"] == "acute"
        assert prompt["time"] <= arrived < prompt["expires_at"]  # made in the replayed day, not yet expired
        assert props.MessageExpiryInterval >= 60  # the broker keeps it for a phone that is away


def test_the_demo_day_ends_with_its_replay_and_keeps_its_clock_times():
    from stresswatch.demo import replay_now
    from stresswatch.sources import DEMO_START

    end = DEMO_START + 81 * 60  # 09:21 UTC on the simulated day
    for now in (1_796_657_400.0, 1_796_657_400.0 + 3600 * 14 + 17):  # 2026-12-07 00:30 UTC and 14:30:17
        shift, offset = replay_now(end, 25.0, now)
        assert now + 25.0 - 60 < end + shift <= now + 25.0
        assert shift % 60 == 0 and offset % 60 == 0 and -43200 < offset <= 43200
        assert (end + shift + offset) % 86400 == end % 86400  # local 09:21, whatever the hour


def test_demo_with_a_state_directory_that_is_a_file_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    (tmp_path / "state").write_text("a file, not a folder")
    env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stresswatch.cli",
            "demo",
            "--seconds",
            "0",
            "--plot",
            "",
            "--mqtt",
            "mqtt://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("stresswatch: error: ") and len(proc.stderr.strip().splitlines()) == 1


# -- bad input is refused with the reason, in one line, before any work --------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["analyze", "x.txt", "--window", "0"], "argument --window: must be more than 0 seconds, got '0'"),
        (["analyze", "x.txt", "--window", "-300"], "argument --window: must be more than 0 seconds"),
        (["analyze", "x.txt", "--step", "0"], "argument --step: must be more than 0 seconds"),
        (["analyze", "x.txt", "--step", "nan"], "argument --step: must be a finite number, got 'nan'"),
        (["analyze", "x.txt", "--step", "often"], "argument --step: must be a number, got 'often'"),
        (["demo", "--artifacts", "0.5"], "argument --artifacts: must be from 0 to 0.2 per beat, got '0.5'"),
        (
            ["simulate", "x.csv", "--artifacts", "-0.01"],
            "argument --artifacts: must be from 0 to 0.2 per beat",
        ),
        (["demo", "--seconds", "inf"], "argument --seconds: must be a finite number, got 'inf'"),
        (["demo", "--seconds", "nan"], "argument --seconds: must be a finite number"),
        (["demo", "--seconds", "-1"], "argument --seconds: must be 0 (no pauses) or more seconds, got '-1'"),
        (
            ["demo", "--plot", "/nonexistent/x.png"],
            "argument --plot: directory '/nonexistent' does not exist",
        ),
    ],
)
def test_bad_options_are_refused_by_the_parser_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert message in err and out == ""  # nothing ran


def test_demo_plot_into_a_directory_is_refused_before_the_run(tmp_path):
    proc = run_cli("demo", "--seconds", "0", "--plot", str(tmp_path))
    assert proc.returncode == 2 and "is a directory, not a file name" in proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_simulate_to_a_bad_path_is_one_line(tmp_path):
    proc = run_cli("simulate", str(tmp_path / "missing" / "day.csv"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "cannot write" in proc.stderr and "day.csv" in proc.stderr


def test_analyze_refuses_a_step_longer_than_the_window(tmp_path):
    rec = tmp_path / "rr.txt"
    rec.write_text("800\n" * 100)
    proc = run_cli("analyze", str(rec), "--window", "60", "--step", "120")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--step 120 is longer than the window (60 s)" in proc.stderr


@pytest.mark.parametrize(
    "name, content, fmt, message",
    [
        ("c.csv", "# only a comment\n\n", "csv", "c.csv: no CSV header"),
        ("f.csv", 'time,rr\n1,800\n2,"' + "9" * 200_000 + '"\n', "auto", "f.csv:3: not a valid CSV row"),
        ("b.csv", "time_s,rr_ms\n10,800\n9,800\n", "auto", "b.csv:3: time goes backwards"),
        (
            "d.hrm",
            "[Params]\nDate=yesterday\nInterval=238\n[HRData]\n800\n",
            "auto",
            "d.hrm:2: Date 'yesterday'",
        ),
    ],
)
def test_analyze_bad_recordings_are_one_line_errors(tmp_path, name, content, fmt, message):
    path = tmp_path / name
    path.write_text(content)
    proc = run_cli("analyze", str(path), "--format", fmt)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_analyze_streams_readings_before_a_late_error(tmp_path):
    # 20 minutes of beats, then a broken line: the readings of the good part are already out
    rec = tmp_path / "rr.txt"
    rec.write_text("".join(f"{800 + (i % 5) * 10}\n" for i in range(1500)) + "oops\n")
    proc = run_cli("analyze", str(rec), "--json", "--step", "30")
    assert proc.returncode == 2 and "rr.txt:1501: RR value 'oops'" in proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) > 30 and rows[-1]["time"] > 1000


def test_analyze_text_output_names_format_then_counts(tmp_path):
    rec = tmp_path / "rr.csv"
    rec.write_text("rr_ms\n" + "".join(f"{800 + (i % 5) * 10}\n" for i in range(600)))
    proc = run_cli("analyze", str(rec), "--step", "60")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"# {rec}: format csv"
    assert lines[-1].startswith("# 600 beats; corrected beats:") and len(lines) > 5


@pytest.mark.slow
def test_a_second_demo_on_the_same_state_directory_refuses_naming_the_first(tmp_path):
    import os

    from sinks.store import StateLock

    demo_state = tmp_path / "state" / "demo"  # the demo's own state directory, next to the service's
    with StateLock(demo_state):  # as a demo running in this process holds it
        proc = run_cli("demo", "--seconds", "0", "--plot", "")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"stresswatch: error: another stresswatch (PID {os.getpid()}) is already running on the "
        f"state directory {demo_state}: stop it first, or give this one its own state.directory "
        "and mqtt.client_id\n"
    )
    assert run_cli("demo", "--seconds", "0", "--plot", "").returncode == 0  # released: the next one runs


@pytest.mark.slow
def test_motion_reads_a_polar_sensor_logger_export_and_says_it_is_still(reference):
    proc = run_cli("motion", str(reference / "motion/polar_sense_rest/Polar_Sense_ACC.txt"))
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("51") and "still 100%" in last and "moving 0%" in last
    acc = str(reference / "motion/polar_sense_rest/Polar_Sense_ACC.txt")
    rows = [json.loads(x) for x in run_cli("motion", "--json", acc).stdout.splitlines()]
    assert len(rows) == 51 and {r["kind"] for r in rows} == {"still"} and rows[0]["intensity_mg"] < 25


def test_motion_on_a_file_that_is_not_an_acc_export_is_one_line(tmp_path):
    path = tmp_path / "rr.txt"
    path.write_text("800\n810\n")
    proc = run_cli("motion", str(path))
    assert proc.returncode == 2 and "not a Polar Sensor Logger ACC export" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_demo_days_first_ten_minutes_of_rest_get_no_score():
    """Issue 17: the demo's morning rest scored 94 at HR 68 while its baseline was young. The
    simulated day (the demo's seed and artifacts) through the pipeline the demo's service runs:
    the first 10 min of rest are calibration, with no score (processing/stress.py), and no reading
    of the morning rest reaches 70."""
    from processing.pipeline import run
    from stresswatch import config
    from stresswatch.sources import simulated_day

    beats, spans = simulated_day(seed=7, artifacts=0.005, person="me")
    assert spans[0].name == "morning rest" and spans[0].end - spans[0].start >= 600
    cfg = config.load(None)
    readings = run(beats, "me", cfg.processing.settings(), model=cfg.person("me").model())
    first = [r for r in readings if r.time < spans[0].start + 600]
    assert len(first) >= 30 and all(r.stress_score is None for r in first)
    assert all(r.stress_score < 70 for r in readings if r.time < spans[0].end and r.stress_score is not None)
