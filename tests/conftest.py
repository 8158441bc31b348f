"""Shared fixtures: the reference recordings (../shared/data), the real servers, the `slow` marker
and the no-skip rule of CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers

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


@pytest.fixture
def vm(tmp_path):
    """A running VictoriaMetrics (accepts influxdb-client writes on /api/v2/write)."""
    (tmp_path / "vm").mkdir()
    server = servers.victoria_metrics(tmp_path / "vm").start()
    yield server
    server.stop()


@pytest.fixture
def influxdb(tmp_path):
    """A running InfluxDB 1.6.7 with database `stresswatch` (v1 /write and /query)."""
    (tmp_path / "influxdb").mkdir()
    server = servers.influxdb(tmp_path / "influxdb").start()
    servers.influx_query(server, "CREATE DATABASE stresswatch")
    yield server
    server.stop()


@pytest.fixture
def broker(tmp_path):
    """A running Mosquitto accepting anonymous clients."""
    (tmp_path / "mosquitto").mkdir()
    server = servers.mosquitto(tmp_path / "mosquitto").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """A running one-node Apache Kafka (KRaft, from its Maven Central jars), shared by the session:
    tests use topics and consumer groups of their own."""
    import kafka_server

    cluster = kafka_server.start(tmp_path_factory.mktemp("kafka"), nodes=1)
    yield cluster
    cluster.stop()


# A test that starts a real server (or the private D-Bus of the fake BlueZ) takes seconds; the rest
# take milliseconds. `./scripts/test --fast` (pytest -m "not slow") runs only the latter.
SERVER_FIXTURES = frozenset(
    {"vm", "influxdb", "broker", "kafka", "mosquitto", "hass", "stack_broker", "system_bus"}
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: starts real servers or processes, or reads whole recordings "
        "(left out by ./scripts/test --fast)",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """With STRESSWATCH_FORBID_SKIPS=1 (set by .ci/run) a skipped test fails the run."""
    if os.environ.get("STRESSWATCH_FORBID_SKIPS") == "1" and _skipped:
        print(f"\n{len(_skipped)} test(s) skipped, which CI forbids: {', '.join(_skipped[:5])}")
        session.exitstatus = 1
