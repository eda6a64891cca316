"""docker-compose.yml is valid Compose and wires the services the way the code expects.

No Docker needed: the file is checked against the official Compose Specification JSON Schema
(a fixture), then for the settings the services read.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft7Validator

from tests.support.fixtures_path import FIXTURES

COMPOSE_SPEC = FIXTURES / "compose-spec" / "compose-spec.json"

APP_SERVICES = {"publish": 8000, "catalog": 8001, "ingest": 8002, "feeds": 8003}
REQUIRED_ENV = ("CITYOS_KAFKA_BOOTSTRAP", "CITYOS_DATABASE_URL")
# Inside a container the services must listen on all interfaces; the settings default to 127.0.0.1.
BIND_ENV = {
    "publish": "CITYOS_PUBLISH_HOST",
    "catalog": "CITYOS_CATALOG_HOST",
    "ingest": "CITYOS_INGEST_METRICS_HOST",
    "feeds": "CITYOS_FEEDS_METRICS_HOST",
}
# The port each service listens on, by setting: the published container port must be this one.
PORT_SETTING = {
    "publish": "publish_port",
    "catalog": "catalog_port",
    "ingest": "ingest_metrics_port",
    "feeds": "feeds_metrics_port",
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
