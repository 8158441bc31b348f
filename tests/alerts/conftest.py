"""Fixtures that start real servers on free loopback ports and always stop them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import servers


@pytest.fixture
def vm(tmp_path):
    """A running VictoriaMetrics (accepts influxdb-client writes on /api/v2/write)."""
    server = servers.victoria_metrics(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def influxdb(tmp_path):
    """A running InfluxDB 1.6.7 with database `stresswatch` (v1 /write and /query)."""
    server = servers.influxdb(tmp_path).start()
    servers.influx_query(server, "CREATE DATABASE stresswatch")
    yield server
    server.stop()


@pytest.fixture
def broker(tmp_path):
    """A running Mosquitto accepting anonymous clients."""
    server = servers.mosquitto(tmp_path).start()
    yield server
    server.stop()
