"""The benchmark scripts' command line: `--help` explains and runs nothing; a script that needs the
reference recordings and cannot find them says so in one line naming STRESSWATCH_REFERENCE_DATA."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    p.name for p in (ROOT / "benchmarks").glob("*.py") if 'if __name__ == "__main__"' in p.read_text()
)
# The scripts that read the reference recordings.
NEED_DATA = ["peers.py", "processing.py", "stress_predict.py"]


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # A guard only, far above a --help (< 1 s); the benchmarks themselves run for minutes.
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        check=False,
    )


def test_every_benchmark_script_is_covered():
    assert len(SCRIPTS) >= 8 and set(NEED_DATA) <= set(SCRIPTS)
    for name in NEED_DATA:  # each of them reads STRESSWATCH_REFERENCE_DATA through the shared helper
        tree = ast.parse((ROOT / "benchmarks" / name).read_text())
        called = {
            n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert "reference_data" in called, name


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_the_usage_and_runs_nothing(script, tmp_path):
    # No reference data and no servers: a --help that started the benchmark would fail or hang.
    proc = run(script, "--help", env={"STRESSWATCH_REFERENCE_DATA": str(tmp_path / "none")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {script}") and "asserts nothing" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.slow
@pytest.mark.parametrize("script", NEED_DATA)
def test_missing_reference_data_is_one_line_naming_the_variable(script, tmp_path):
    proc = run(script, env={"STRESSWATCH_REFERENCE_DATA": str(tmp_path / "none")})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{script}: reference data not found: {tmp_path / 'none'} does not exist")
    assert "set STRESSWATCH_REFERENCE_DATA" in proc.stderr


@pytest.mark.slow
def test_a_data_folder_without_the_recording_names_the_missing_file(tmp_path):
    (tmp_path / "data").mkdir()
    proc = run("stress_predict.py", env={"STRESSWATCH_REFERENCE_DATA": str(tmp_path / "data")})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert str(tmp_path / "data" / "stress/stress_predict/time_logs.csv") in proc.stderr
