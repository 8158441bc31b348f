"""The layout: each package imports only the packages before it in the data flow
collector -> processing -> alerts -> sinks -> stresswatch, and the inner stages are pure."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOW = ["collector", "processing", "alerts", "sinks", "stresswatch"]
# Modules that may do I/O at the edges; everything else in processing/ and alerts/ is pure.
IMPURE = {
    "socket",
    "sqlite3",
    "asyncio",
    "subprocess",
    "urllib",
    "http",
    "paho",
    "bleak",
    "influxdb_client",
    "time",
    "os",
    "threading",
    "pathlib",
}
# datetime and zoneinfo turn given times into local ones (calendar arithmetic, the tz database);
# what would read a clock through them is refused by name.
CLOCK_READS = {"now", "today", "utcnow"}


def imports_of(path: Path) -> set[str]:
    """Top-level package names a module imports (anywhere in the file, lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))  # subpackages too (stresswatch/config/)


def test_every_package_exists_and_each_module_says_what_it_is_for():
    for package in FLOW:
        for path in modules(package):
            doc = ast.get_docstring(ast.parse(path.read_text()))
            assert doc, f"{path.relative_to(ROOT)} has no module docstring"


def test_imports_point_down_the_flow_only():
    upward = []
    for rank, package in enumerate(FLOW):
        later = set(FLOW[rank + 1 :])
        for path in modules(package):
            for name in imports_of(path) & later:
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_the_inner_stages_are_pure():
    found = []
    for package in ("processing", "alerts"):
        for path in modules(package):
            for name in imports_of(path) & IMPURE:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in CLOCK_READS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} reads the clock ({node.attr})")
    assert found == []


def test_the_walk_sees_a_violation(tmp_path):
    """The check itself can fail: a planted upward import is found."""
    bad = tmp_path / "bad.py"
    bad.write_text('"""x"""\ndef f():\n    from stresswatch import config\n')
    assert "stresswatch" in imports_of(bad)
