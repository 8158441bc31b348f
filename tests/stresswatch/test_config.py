"""The configuration model: every problem names its key; env overrides; `config check`."""

from __future__ import annotations

import pytest

from stresswatch import config
from stresswatch.cli import main


def write(tmp_path, text):
    p = tmp_path / "stresswatch.toml"
    p.write_text(text)
    return p


def test_defaults_and_the_example_are_valid(tmp_path):
    assert config.load(None, environ={}).processing.window_s == 300
    cfg = config.load(write(tmp_path, config.EXAMPLE), environ={})
    assert cfg.people[0].name == "me" and cfg.processing.artifact_correction is True


def test_every_problem_is_reported_with_its_key(tmp_path):
    path = write(
        tmp_path,
        '[processing]\nwindow_s = -5\nstep_s = "often"\ncolour = "red"\n'
        '[[people]]\nname = "a"\nage = 400\n[[people]]\nname = "a"\n',
    )
    with pytest.raises(config.ConfigError) as err:
        config.load(path, environ={})
    problems = err.value.problems
    assert "processing.window_s: must be >= 30, got -5" in problems
    assert "processing.step_s: must be a number, got 'often'" in problems
    assert any(p.startswith("processing.colour: unknown key") for p in problems)
    assert "people[0].age: must be <= 120, got 400" in problems
    assert "people: name 'a' is used more than once" in problems


def test_broken_toml_is_one_clear_line(tmp_path):
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[processing\nwindow_s = 1"), environ={})


def test_environment_overrides_file_values(tmp_path):
    path = write(tmp_path, "[processing]\nstep_s = 10\n")
    cfg = config.load(path, environ={"STRESSWATCH_PROCESSING__STEP_S": "5", "STRESSWATCH_X": "ignored"})
    assert cfg.processing.step_s == 5.0
    with pytest.raises(config.ConfigError, match="processing.artifact_correction: must be true or false"):
        config.load(path, environ={"STRESSWATCH_PROCESSING__ARTIFACT_CORRECTION": "maybe"})


def test_config_check_command(tmp_path, capsys):
    good = write(tmp_path, "[processing]\nstep_s = 5\n")
    assert main(["config", "check", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[processing]\nwindow_s = 'x'\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "processing.window_s: must be a number" in err and "Traceback" not in err
    assert main(["config", "check", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[processing\n")
    assert main(["config", "check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid TOML" in err and str(broken) in err
