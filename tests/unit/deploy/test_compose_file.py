"""docker-compose.yml is valid Compose and wires the services the way the code expects.

No Docker needed: the file is checked against the official Compose Specification JSON Schema
(a fixture), then for the settings the services read.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft7Validator

from cityos.kernel.settings import REPO_ROOT
from tests.support.deploy_files import COMPOSE_FILE
from tests.support.fixtures_path import FIXTURES

COMPOSE_SPEC = FIXTURES / "compose-spec" / "compose-spec.json"

APP_SERVICES = {"publish": 8000, "catalog": 8001, "ingest": 8002, "feeds": 8003, "analysis": 8005}
REQUIRED_ENV = ("CITYOS_KAFKA_BOOTSTRAP", "CITYOS_DATABASE_URL", "CITYOS_SECRETS_DIR")
INIT_SECRETS = REPO_ROOT / "deploy" / "compose" / "init-secrets.sh"
# What cityos.kernel.secret_store writes: 32 random bytes, URL-safe base64 without padding.
SECRET_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Inside a container the services must listen on all interfaces; the settings default to 127.0.0.1.
BIND_ENV = {
    "publish": "CITYOS_PUBLISH_HOST",
    "catalog": "CITYOS_CATALOG_HOST",
    "ingest": "CITYOS_INGEST_METRICS_HOST",
    "feeds": "CITYOS_FEEDS_METRICS_HOST",
    "analysis": "CITYOS_ANALYSIS_HOST",
}
# The port each service listens on, by setting: the published container port must be this one.
PORT_SETTING = {
    "publish": "publish_port",
    "catalog": "catalog_port",
    "ingest": "ingest_metrics_port",
    "feeds": "feeds_metrics_port",
    "analysis": "analysis_port",
}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """Compose accepts both the mapping form and the list-of-"KEY=VALUE" form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _published_container_ports(service: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).rsplit(":", 1)[-1].split("/")[0]))
    return ports


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    assert COMPOSE_SPEC.is_file(), f"fixture missing: {COMPOSE_SPEC} (set CITYOS_FIXTURES)"
    schema = json.loads(COMPOSE_SPEC.read_text(encoding="utf-8"))
    errors = sorted(Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_compose_has_the_infrastructure_and_every_app_service(compose: dict[str, Any]) -> None:
    assert {"kafka", "postgres", "prometheus", *APP_SERVICES} <= set(compose["services"])


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_each_service_gets_its_settings_and_command(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    env = _environment(service)
    missing = [key for key in REQUIRED_ENV if not env.get(key)]
    assert not missing, f"{name} lacks {missing}"
    assert env.get(BIND_ENV[name]) == "0.0.0.0"
    assert service["command"] == ["cityos", "serve", name]
    assert "build" in service
    assert APP_SERVICES[name] in _published_container_ports(service)


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_service_settings_point_at_the_compose_infrastructure(compose: dict[str, Any], name: str) -> None:
    env = _environment(compose["services"][name])
    kafka_env = _environment(compose["services"]["kafka"])
    advertised = {
        listener.split("://", 1)[1] for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    assert env["CITYOS_KAFKA_BOOTSTRAP"] in advertised

    db = urlsplit(env["CITYOS_DATABASE_URL"])
    postgres_env = _environment(compose["services"]["postgres"])
    assert db.scheme == "postgresql+psycopg"
    assert db.hostname == "postgres"
    assert db.username == postgres_env["POSTGRES_USER"]
    assert db.password == postgres_env["POSTGRES_PASSWORD"]
    assert db.path.lstrip("/") == postgres_env["POSTGRES_DB"]


def test_compose_variables_are_real_settings() -> None:
    """A renamed setting would otherwise be ignored silently (the settings ignore unknown variables)."""
    from cityos.kernel.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    for variable in (*REQUIRED_ENV, *BIND_ENV.values()):
        field = variable.removeprefix(prefix).lower()
        assert field in Settings.model_fields, (
            f"{variable} does not match any field of cityos.kernel.settings.Settings"
        )


def test_app_service_ports_are_the_settings_defaults() -> None:
    """APP_SERVICES (published and scraped ports) must be where the services really listen."""
    from cityos.kernel.settings import Settings

    assert set(PORT_SETTING) == set(APP_SERVICES) == set(BIND_ENV)
    for name, port in APP_SERVICES.items():
        assert Settings.model_fields[PORT_SETTING[name]].default == port, name


def test_kafka_is_single_node_kraft(compose: dict[str, Any]) -> None:
    env = _environment(compose["services"]["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key


def test_prometheus_scrapes_every_service(prometheus_config: dict[str, Any]) -> None:
    scraped: dict[str, str] = {}
    for job in prometheus_config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                scraped[target] = job.get("metrics_path", "/metrics")
    for name, port in APP_SERVICES.items():
        assert scraped.get(f"{name}:{port}") == "/metrics", f"{name}:{port} not scraped at /metrics"


def test_prometheus_mounts_the_repository_config(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["prometheus"]["volumes"]
    assert any(
        str(v).startswith("./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml")
        for v in volumes
    )


# --- Kafka is secured as in production: SASL/SCRAM, ACLs, generated secrets -------------------------


def _kafka_env(compose: dict[str, Any]) -> dict[str, str]:
    return _environment(compose["services"]["kafka"])


def _listener_map(env: dict[str, str]) -> dict[str, str]:
    return dict(entry.split(":", 1) for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))


def _listener_names(value: str) -> set[str]:
    return {listener.split("://", 1)[0] for listener in value.split(",")}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (volume name or host path) of the service's short-form mounts."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        source, target, *_ = str(entry).split(":")
        mounts[target] = source
    return mounts


def test_every_kafka_listener_authenticates(compose: dict[str, Any]) -> None:
    env = _kafka_env(compose)
    protocols = _listener_map(env)
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}, protocols
    assert _listener_names(env["KAFKA_LISTENERS"]) == set(protocols)
    assert _listener_names(env["KAFKA_ADVERTISED_LISTENERS"]) <= set(protocols)
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-512"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in protocols
    # The controller listener alone takes PLAIN (KRaft controllers cannot read SCRAM credentials yet).
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["KAFKA_SASL_MECHANISM_CONTROLLER_PROTOCOL"] == "PLAIN"
    assert env[f"KAFKA_LISTENER_NAME_{controller}_SASL_ENABLED_MECHANISMS"] == "PLAIN"
    assert controller not in _listener_names(env["KAFKA_ADVERTISED_LISTENERS"])


def test_kafka_denies_what_no_acl_allows(compose: dict[str, Any]) -> None:
    env = _kafka_env(compose)
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin;User:controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_kafka_host_port_is_loopback_only(compose: dict[str, Any]) -> None:
    ports = [str(entry) for entry in compose["services"]["kafka"]["ports"]]
    assert ports and all(entry.startswith("127.0.0.1:") for entry in ports), ports


def test_no_kafka_password_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8").lower()
    assert "sasl.jaas.config" not in text
    assert "password=" not in text
    for name, service in compose["services"].items():
        for key in _environment(service):
            assert not re.search(r"KAFKA.*(PASSWORD|JAAS)|(PASSWORD|JAAS).*KAFKA", key), (name, key)


def test_kafka_healthcheck_authenticates(compose: dict[str, Any]) -> None:
    test = compose["services"]["kafka"]["healthcheck"]["test"]
    command = " ".join(test[1:]) if isinstance(test, list) else str(test)
    assert "--command-config" in command
    assert "/tmp/cityos-kafka/admin.properties" in command


def test_start_up_order_sets_kafka_up_before_any_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["kafka"]["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
    assert services["kafka-setup"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        dependency = services[name]["depends_on"].get("kafka-setup")
        assert dependency == {"condition": "service_completed_successfully"}, name
    # A one-shot that restarts would run again and again ("unless-stopped" restarts after exit 0).
    for name in ("secrets", "kafka-setup"):
        assert services[name]["restart"] == "no", name


def test_only_the_set_up_steps_hold_the_administrator_password(compose: dict[str, Any]) -> None:
    services = compose["services"]
    setup = services["kafka-setup"]
    assert _mounts(setup)[_environment(setup)["CITYOS_SECRETS_DIR"]] == "operator-secrets"
    assert _mounts(services["kafka"]).get("/etc/kafka/secrets") == "broker-secrets"
    for name in APP_SERVICES:
        mounts = _mounts(services[name])
        assert mounts[_environment(services[name])["CITYOS_SECRETS_DIR"]] == "service-secrets", name
        assert "operator-secrets" not in mounts.values(), name
    holders = {name for name, service in services.items() if "operator-secrets" in _mounts(service).values()}
    # kafka-setup-cluster: the same set-up step for the three-broker profile.
    assert holders == {"secrets", "kafka-setup", "kafka-setup-cluster"}
    assert {"operator-secrets", "broker-secrets", "service-secrets"} <= set(compose["volumes"])


def test_mounted_repository_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source in _mounts(service).values():
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"


def test_secrets_owners_match_the_images_users(compose: dict[str, Any]) -> None:
    """init-secrets.sh hands each volume to the user that reads it: the project image's, the broker's."""
    init_env = _environment(compose["services"]["secrets"])
    assert init_env["CITYOS_BROKER_OWNER"] == compose["services"]["kafka"]["user"]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    uid, gid = init_env["CITYOS_PLATFORM_OWNER"].split(":")
    assert f"--uid {uid}" in dockerfile
    assert f"--gid {gid}" in dockerfile


def _run_init_secrets(root: Path) -> None:
    owner = f"{os.getuid()}:{os.getgid()}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CITYOS_SECRETS_DIR": str(root / "operator"),
        "CITYOS_BROKER_SECRETS_DIR": str(root / "broker"),
        "CITYOS_SERVICE_SECRETS_DIR": str(root / "service"),
        "CITYOS_PLATFORM_OWNER": owner,
        "CITYOS_BROKER_OWNER": owner,
    }
    subprocess.run(["sh", str(INIT_SECRETS)], env=env, check=True, capture_output=True, timeout=30)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_secrets_generates_the_broker_passwords_once(tmp_path: Path) -> None:
    _run_init_secrets(tmp_path)
    first = {name: (tmp_path / "operator" / name).read_text() for name in ("kafka-admin", "kafka-controller")}
    for folder in ("operator", "broker", "service"):
        assert _mode(tmp_path / folder) == 0o700, folder
    for name, value in first.items():
        assert value.endswith("\n") and SECRET_VALUE.fullmatch(value.strip()), name
        assert _mode(tmp_path / "operator" / name) == 0o600
        assert (tmp_path / "broker" / name).read_text() == value
        assert _mode(tmp_path / "broker" / name) == 0o600
    assert first["kafka-admin"] != first["kafka-controller"]
    assert not any((tmp_path / "service").iterdir()), "the services' folder never gets the broker's passwords"

    # Every start re-runs it: the broker's storage was formatted with the first value, which must stay.
    _run_init_secrets(tmp_path)
    for name, value in first.items():
        assert (tmp_path / "operator" / name).read_text() == value
        assert (tmp_path / "broker" / name).read_text() == value
    leftovers = [p.name for folder in tmp_path.iterdir() for p in folder.iterdir() if p.name.startswith(".")]
    assert not leftovers


CLUSTER_NODES = ("kafka-1", "kafka-2", "kafka-3")


def test_cluster_profile_is_three_kraft_nodes_replicating_every_topic(compose: dict[str, Any]) -> None:
    """The three-broker shape: started only with --profile cluster, each node broker and controller
    of one quorum, every topic on three brokers with two in sync required."""
    services = compose["services"]
    envs = {name: _environment(services[name]) for name in CLUSTER_NODES}
    assert {env["KAFKA_NODE_ID"] for env in envs.values()} == {"1", "2", "3"}
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    for name, env in envs.items():
        assert services[name]["profiles"] == ["cluster"], name
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ",".join(f"{n}@kafka-{n}:9093" for n in (1, 2, 3))
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(f"CLIENT://{name}:19092,")
        # Each node keeps its own data.
        assert _mounts(services[name])["/var/lib/kafka/data"] == f"{name}-data"
    # The default `docker compose up` is unchanged: the single broker, no profile.
    assert "profiles" not in services["kafka"]


def test_cluster_nodes_are_secured_like_the_single_broker(compose: dict[str, Any]) -> None:
    single = _kafka_env(compose)
    for name in CLUSTER_NODES:
        env = _environment(compose["services"][name])
        for key in (
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "KAFKA_SASL_ENABLED_MECHANISMS",
            "KAFKA_AUTHORIZER_CLASS_NAME",
            "KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND",
            "KAFKA_SUPER_USERS",
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE",
        ):
            assert env[key] == single[key], f"{name}: {key}"
        assert all(value.startswith("SASL_") for value in _listener_map(env).values()), name
        for entry in compose["services"][name]["ports"]:
            assert str(entry).startswith("127.0.0.1:"), f"{name} publishes {entry} beyond loopback"


def test_cluster_set_up_runs_against_all_three_brokers(compose: dict[str, Any]) -> None:
    setup = compose["services"]["kafka-setup-cluster"]
    assert setup["profiles"] == ["cluster"]
    bootstrap = _environment(setup)["CITYOS_KAFKA_BOOTSTRAP"].split(",")
    assert bootstrap == [f"{name}:19092" for name in CLUSTER_NODES]
    assert set(setup["depends_on"]) == set(CLUSTER_NODES)
    assert all(c["condition"] == "service_healthy" for c in setup["depends_on"].values())
