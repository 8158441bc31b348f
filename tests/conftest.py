"""Shared fixtures: the reference recordings (../shared/data) and the no-skip rule of CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_skipped: list[str] = []


@pytest.fixture(scope="session")
def reference() -> Path:
    """The folder of real recordings named by STRESSWATCH_REFERENCE_DATA (skip when unset)."""
    root = os.environ.get("STRESSWATCH_REFERENCE_DATA")
    if not root:
        pytest.skip("STRESSWATCH_REFERENCE_DATA is not set (the real recordings of ../shared/data)")
    path = Path(root)
    if not (path / "rr").is_dir():
        pytest.fail(f"STRESSWATCH_REFERENCE_DATA={root} has no rr/ folder")
    return path


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """With STRESSWATCH_FORBID_SKIPS=1 (set by .ci/run) a skipped test fails the run."""
    if os.environ.get("STRESSWATCH_FORBID_SKIPS") == "1" and _skipped:
        print(f"\n{len(_skipped)} test(s) skipped, which CI forbids: {', '.join(_skipped[:5])}")
        session.exitstatus = 1
