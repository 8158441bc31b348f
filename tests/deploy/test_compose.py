"""deploy/docker-compose.yml and what it mounts: parsed and cross-checked (no Docker engine runs
here), the Mosquitto config run by a real Mosquitto, the stresswatch service's settings run
through `stresswatch config check`."""

from __future__ import annotations

import getpass
import os
import re
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import servers

yaml = pytest.importorskip("yaml", reason="PyYAML reads the compose file: add pyyaml to the test extras")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    out = {}
    for ln in (DEPLOY / ".env.example").read_text().splitlines():
        if ln.strip() and not ln.startswith("#"):
            key, _, value = ln.partition("=")
            out[key] = value
    return out


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} substitution."""

    def one(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return VAR.sub(one, value)


def mounts(service: dict) -> dict[str, str]:
    """Container path -> host source (relative to deploy/ for bind mounts, a name for volumes)."""
    out = {}
    for v in service.get("volumes", []):
        source, target = v.split(":")[:2]
        out[target] = source
    return out


CLUSTER = ("kafka", "worker", "deliver-influx", "deliver-mqtt")
STRESSWATCH_SERVICES = ("stresswatch", "worker", "deliver-influx", "deliver-mqtt")


def test_the_stack_has_its_four_services_on_pinned_images():
    services = compose()["services"]
    # The home default: what starts without a profile.
    assert {n for n, s in services.items() if "profiles" not in s} == {
        "mosquitto",
        "influxdb",
        "grafana",
        "stresswatch",
    }
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    # InfluxDB's `latest` moved to 3.x, whose setup and API differ: stay on 2.x.
    assert re.fullmatch(r"influxdb:2\.\d+(\.\d+)?", services["influxdb"]["image"])
    assert re.fullmatch(r"grafana/grafana(-oss)?:\d+\.\d+\.\d+", services["grafana"]["image"])
    assert services["stresswatch"]["build"] == {
        "context": "..",
        "dockerfile": "deploy/Dockerfile",
        "args": {"STRESSWATCH_UID": "${STRESSWATCH_UID:?set STRESSWATCH_UID in deploy/.env}"},
    }


def test_every_variable_the_stack_uses_is_in_env_example_and_every_key_there_is_used():
    text = (DEPLOY / "docker-compose.yml").read_text()
    used = {m.group(1) for m in VAR.finditer(text)}
    keys = set(env_example())
    assert used - keys == set()
    assert keys - used == set()
    # what the user must set has no silent default
    for secret in ("INFLUXDB_PASSWORD", "INFLUXDB_TOKEN", "MQTT_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in text, secret
        assert env_example()[secret] == "change-me"


def test_the_user_files_are_git_ignored_and_their_examples_exist():
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in ignored and "stresswatch.toml" in ignored
    assert (DEPLOY / ".env.example").is_file() and (DEPLOY / "stresswatch.toml.example").is_file()


def test_every_bind_mount_exists_and_every_named_volume_is_declared():
    spec = compose()
    declared = set(spec["volumes"])
    for name, service in spec["services"].items():
        for source in mounts(service).values():
            if source.startswith("/"):
                continue  # a host path: the D-Bus socket
            if source.startswith("."):
                path = DEPLOY / source
                # the person's own config is made from the checked-in example
                assert path.exists() or Path(str(path) + ".example").exists(), f"{name}: {source}"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_influxdb_is_set_up_from_the_environment_and_maps_a_dbrp_for_influxql():
    influx = compose()["services"]["influxdb"]
    env = influx["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("USERNAME", "PASSWORD", "ORG", "BUCKET", "ADMIN_TOKEN"):
        assert env[f"DOCKER_INFLUXDB_INIT_{key}"].startswith("${INFLUXDB_"), key
    initdb = DEPLOY / mounts(influx)["/docker-entrypoint-initdb.d"]
    scripts = sorted(initdb.glob("*.sh"))
    assert scripts
    for script in scripts:
        assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} must be executable"
        subprocess.run(["bash", "-n", str(script)], check=True)
    text = " ".join(s.read_text() for s in scripts).replace("\\\n", " ")
    assert re.search(
        r'influx v1 dbrp create\s.*--bucket-id "\$\{DOCKER_INFLUXDB_INIT_BUCKET_ID\}"', text, re.DOTALL
    )
    assert '--db "${DOCKER_INFLUXDB_INIT_BUCKET}"' in text and "--default" in text


def test_grafana_provisions_the_influxql_datasource_the_dashboards_use():
    grafana = compose()["services"]["grafana"]
    m = mounts(grafana)
    provisioning = DEPLOY / m["/etc/grafana/provisioning"]
    ds_file = yaml.safe_load((provisioning / "datasources" / "influxdb.yml").read_text())
    (ds,) = ds_file["datasources"]
    assert ds["type"] == "influxdb" and ds["uid"] == "stresswatch-influxdb"
    assert ds["url"] == "http://influxdb:8086"  # the compose service name
    assert ds["jsonData"]["version"] == "InfluxQL"
    assert ds["jsonData"]["dbName"] == "${INFLUXDB_BUCKET}"  # the DBRP's database
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUXDB_TOKEN}"
    # Grafana expands ${VAR} in provisioning files from its own environment
    prov_text = "".join(p.read_text() for p in provisioning.rglob("*.yml"))
    assert {v.group(1) for v in VAR.finditer(prov_text)} <= set(grafana["environment"])
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "stresswatch.yml").read_text())["providers"]
    dash_dir = provider["options"]["path"]
    assert DEPLOY / m[dash_dir] == DEPLOY / "grafana" / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_dir + "/") and (DEPLOY / m[dash_dir] / Path(home).name).is_file()


def test_the_stresswatch_container_reaches_bluez_and_keeps_its_state():
    spec = compose()
    sw = spec["services"]["stresswatch"]
    m = mounts(sw)
    assert m["/run/dbus/system_bus_socket"] == "/run/dbus/system_bus_socket"
    assert sw["group_add"] == ["${BLUETOOTH_GID:?set BLUETOOTH_GID in deploy/.env}"]
    assert m[sw["environment"]["STRESSWATCH_STATE__DIRECTORY"]] in spec["volumes"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    config_path = re.search(r'CMD \["--config", "([^"]+)"', dockerfile).group(1)
    assert m[config_path] == "./stresswatch.toml"


@pytest.mark.slow
@pytest.mark.parametrize("service", STRESSWATCH_SERVICES)
def test_the_containers_settings_with_the_example_config_pass_config_check(service, tmp_path):
    env = {
        k: interpolate(str(v), env_example())
        for k, v in compose()["services"][service]["environment"].items()
    }
    assert env["STRESSWATCH_INFLUX__TOKEN"] == env_example()["INFLUXDB_TOKEN"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRESSWATCH_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stresswatch.cli",
            "config",
            "check",
            str(DEPLOY / "stresswatch.toml.example"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**clean, **env},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "change-me" not in proc.stdout + proc.stderr  # secrets are never echoed


# -- profile `cluster`: Kafka, a worker and the deliveries (README "More than one machine") ------


def test_the_cluster_profile_is_kafka_a_worker_and_the_deliveries_off_by_default():
    services = compose()["services"]
    assert {n for n, s in services.items() if "profiles" in s} == set(CLUSTER)
    for name in CLUSTER:
        assert services[name]["profiles"] == ["cluster"], name
    for name in CLUSTER[1:]:  # the project's image with the `kafka` extra
        build = services[name]["build"]
        assert build["args"]["STRESSWATCH_EXTRAS"] == "kafka"
        assert {k: v for k, v in build.items() if k != "args"} == {
            k: v for k, v in services["stresswatch"]["build"].items() if k != "args"
        }
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "kafka" in extras
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'ARG STRESSWATCH_EXTRAS=""' in dockerfile  # the home image stays without Kafka's clients
    assert re.search(r'pip install "/src\$\{STRESSWATCH_EXTRAS:\+\[\$STRESSWATCH_EXTRAS\]\}"', dockerfile)


def test_kafka_is_one_kraft_node_on_the_version_the_tests_run_and_every_client_finds_it():
    import base64

    from kafka_server import VERSION

    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"] == f"apache/kafka:{VERSION}"  # pinned, and what tests/kafka_server.py runs
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft: no ZooKeeper
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16  # a KRaft cluster id
    listeners = dict(x.split("://") for x in env["KAFKA_LISTENERS"].split(","))
    controller_port = listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]].lstrip(":")
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{controller_port}"
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
    assert advertised == f"kafka:{listeners['PLAINTEXT'].lstrip(':')}"
    assert mounts(kafka)[env["KAFKA_LOG_DIRS"]] in compose()["volumes"]  # the log survives a restart
    # One node: its internal topics and ours replicated once, else nothing could be written.
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_MIN_INSYNC_REPLICAS",
    ):
        assert env[key] == "1", key
    for name in CLUSTER[1:]:
        client = services[name]
        assert client["environment"]["STRESSWATCH_KAFKA__BOOTSTRAP_SERVERS"] == advertised, name
        assert client["depends_on"]["kafka"] == {"condition": "service_healthy"}, name
    assert str(services["worker"]["environment"]["STRESSWATCH_KAFKA__REPLICATION"]) == "1"


def test_each_cluster_process_has_its_command_and_a_state_volume_of_its_own():
    spec = compose()
    states = []
    for name, command in (
        ("worker", ["worker"]),
        ("deliver-influx", ["deliver", "influx"]),
        ("deliver-mqtt", ["deliver", "mqtt"]),
    ):
        service = spec["services"][name]
        assert service["command"] == ["--config", "/etc/stresswatch/stresswatch.toml", *command]
        assert mounts(service)["/etc/stresswatch/stresswatch.toml"] == "./stresswatch.toml"
        states.append(mounts(service)[service["environment"]["STRESSWATCH_STATE__DIRECTORY"]])
        # the command line the container runs is one the CLI takes
        proc = subprocess.run(
            [sys.executable, "-m", "stresswatch.cli", *command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    states.append(mounts(spec["services"]["stresswatch"])["/var/lib/stresswatch"])
    # one process per state directory (its lock), so no two share a volume
    assert len(set(states)) == len(states) and set(states) <= set(spec["volumes"])
    # the notifier is not the home service's MQTT client (the broker keeps one session per id)
    assert spec["services"]["deliver-mqtt"]["environment"]["STRESSWATCH_MQTT__CLIENT_ID"] != "stresswatch"


def test_the_dockerfile_installs_every_package_of_the_project():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    copied = set()
    for m in re.finditer(r"^COPY (.+) (\S+)$", dockerfile, re.MULTILINE):
        copied.update(m.group(1).split())
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    folders = {p.split(".")[0] for p in packages}  # a subpackage is copied with its folder
    assert folders | {"pyproject.toml", "README.md"} == copied
    allowed = {
        ln[1:] for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if ln.startswith("!")
    }
    assert copied <= allowed
    for c in copied:
        assert (ROOT / c).exists()


# -- Mosquitto: the checked-in config, ACL and start script, run by a real broker ---------------


@pytest.fixture
def stack_broker(tmp_path, monkeypatch):
    """Mosquitto started by deploy/mosquitto/start.sh with the checked-in config and ACL; only
    the listener (a free loopback port) and the data paths are changed for the test."""
    servers.need("mosquitto_passwd")
    port = servers.free_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert "listener 1883\n" in conf and "allow_anonymous false" in conf
    conf = (
        conf.replace("listener 1883\n", f"listener {port} 127.0.0.1\nuser {getpass.getuser()}\n")
        .replace("/mosquitto/config/", f"{DEPLOY}/mosquitto/")
        .replace("/mosquitto/data/", f"{tmp_path}/")
    )
    (tmp_path / "mosquitto.conf").write_text(conf)
    passwords = {
        "MQTT_PASSWORD": "pw-service",
        "MQTT_PHONE_PASSWORD": "pw-phone",
        "MQTT_HOMEASSISTANT_PASSWORD": "",
    }
    for k, v in passwords.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MOSQUITTO_CONF", str(tmp_path / "mosquitto.conf"))
    monkeypatch.setenv("MOSQUITTO_PASSWD", str(tmp_path / "passwd"))
    server = servers.Server(
        "mosquitto", ["sh", str(DEPLOY / "mosquitto" / "start.sh")], port, tmp_path
    ).start()
    yield server
    server.stop()


def client(port: int, user: str | None, password: str | None, received: list | None = None, topic: str = ""):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user:
        c.username_pw_set(user, password)
    result = {}
    c.on_connect = lambda cl, ud, flags, rc, props: result.setdefault("rc", rc)
    c.on_subscribe = lambda cl, ud, mid, codes, props: result.setdefault("subscribed", codes)
    if received is not None:
        c.on_message = lambda cl, ud, msg: received.append((msg.topic, msg.payload.decode()))
    c.connect("127.0.0.1", port)
    c.loop_start()
    servers.wait_for(lambda: "rc" in result, 10)
    if topic and not result["rc"].is_failure:
        c.subscribe(topic, qos=1)
        servers.wait_for(lambda: "subscribed" in result, 10)  # the subscription is in place
    return c, result.get("rc")


def test_the_broker_refuses_anonymous_and_applies_the_acl(stack_broker):
    port = stack_broker.port
    anon, rc = client(port, None, None)
    assert rc is not None and rc.is_failure
    anon.loop_stop()
    wrong, rc = client(port, "stresswatch", "nope")
    assert rc.is_failure
    wrong.loop_stop()
    nobody, rc = client(port, "homeassistant", "")  # no password in .env: no login
    assert rc.is_failure
    nobody.loop_stop()

    service_got, phone_got = [], []
    service, rc = client(port, "stresswatch", "pw-service", service_got, "stresswatch/#")
    assert not rc.is_failure
    phone, rc = client(port, "phone", "pw-phone", phone_got, "stresswatch/#")
    assert not rc.is_failure
    service.publish("stresswatch/me/state", '{"stress_score": 42}', qos=1).wait_for_publish(5)
    phone.publish("stresswatch/me/state", "forged", qos=1).wait_for_publish(5)  # not its topic
    phone.publish("stresswatch/me/prompt/response", '{"id": "p1", "action": "done"}', qos=1).wait_for_publish(
        5
    )
    assert servers.wait_for(
        lambda: ("stresswatch/me/prompt/response", '{"id": "p1", "action": "done"}') in service_got, 10
    )
    assert servers.wait_for(lambda: ("stresswatch/me/state", '{"stress_score": 42}') in phone_got, 10)
    time.sleep(0.3)  # the forged one, had the broker let it through, would have come by now
    assert ("stresswatch/me/state", "forged") not in service_got
    for c in (service, phone):
        c.disconnect()
        c.loop_stop()


# -- README "Install at home" ----------------------------------------------------------------------


def install_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Install at home\n")
    return readme[start : readme.index("\n## ", start + 1)]


def test_every_deploy_file_the_install_section_names_exists():
    text = install_section()
    named = {
        m.group(1).rstrip(".")
        for m in re.finditer(r"(?:(?<=/opt/stresswatch/)|(?<![\w/]))(deploy/[\w./-]+)", text)
    }
    assert {
        "deploy/stresswatch.service",
        "deploy/docker-compose.yml",
        "deploy/Dockerfile",
        "deploy/stresswatch.toml.example",
        "deploy/grafana/dashboards.py",
    } <= named
    for path in named:  # .env and stresswatch.toml are the person's, made from their examples
        assert (ROOT / path).exists() or (ROOT / f"{path}.example").exists(), path


def test_the_install_steps_put_things_where_the_unit_expects_them():
    text = install_section()
    unit = (DEPLOY / "stresswatch.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) --config (\S+) ", unit, re.MULTILINE)
    venv = exec_start.group(1).removesuffix("/bin/stresswatch")
    assert f"python3 -m venv {venv}" in text and f"{venv}/bin/pip install" in text
    assert exec_start.group(2) == "/etc/stresswatch/stresswatch.toml"
    assert f"deploy/stresswatch.toml.example {exec_start.group(2)}" in text
    assert "--groups bluetooth stresswatch" in text
    assert "/etc/systemd/system/" in text and "systemctl enable --now stresswatch" in text
