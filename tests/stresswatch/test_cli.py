"""The command line as a user runs it: `stresswatch demo` and `stresswatch analyze`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from processing.reading import FIELDS
from stresswatch.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "stresswatch.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )


def test_demo_runs_the_whole_pipeline_and_saves_a_plot(tmp_path):
    png = tmp_path / "demo.png"
    proc = run_cli("demo", "--seconds", "0", "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "summary" in out and "work stress" in out and "exercise" in out
    rows = {line.split()[0] + (" " + line.split()[1] if line.startswith(("work", "morning", "evening")) else ""): line
            for line in out.splitlines() if line[:1].isalpha()}
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


def test_analyze_whole_gives_one_reading(tmp_path):
    rec = tmp_path / "rr.txt"
    rec.write_text("\n".join(str(800 + (i % 7) * 10) for i in range(400)))
    proc = run_cli("analyze", str(rec), "--whole", "--json", "--no-correction")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["n_beats"] == 400 and rows[0]["window_s"] is None


@pytest.mark.parametrize("content, message", [("hello\n", "unknown format"), ("800\nx\n", ":2: RR value 'x'")])
def test_analyze_garbage_is_a_clear_error(tmp_path, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    proc = run_cli("analyze", str(bad))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_analyze_a_real_24h_recording(reference):
    proc = run_cli("analyze", str(reference / "rr/nsr2db_24h/nsr004.csv"), "--json", "--step", "300")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) > 250  # ~24 h in 5 min steps
    assert 40 < sum(r["hr_bpm"] for r in rows) / len(rows) < 120


def test_demo_replays_a_real_recording(reference, tmp_path):
    proc = run_cli("demo", "--recording", str(reference / "rr/rest_exercise/exercise_rri.hrm"),
                   "--seconds", "0", "--plot", str(tmp_path / "x.png"))
    assert proc.returncode == 0, proc.stderr
    assert "exercise_rri.hrm" in proc.stdout and (tmp_path / "x.png").exists()


def test_demo_with_a_state_directory_that_is_a_file_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    (tmp_path / "state").write_text("a file, not a folder")
    env = {"STRESSWATCH_STATE__DIRECTORY": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "stresswatch.cli", "demo", "--seconds", "0", "--plot", "",
                           "--mqtt", "mqtt://127.0.0.1:1"], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("stresswatch: error: ") and len(proc.stderr.strip().splitlines()) == 1
