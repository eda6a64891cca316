"""Fixtures shared by the deployment-file tests: the parsed Compose file and Prometheus config."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.deploy_files import COMPOSE_FILE, PROMETHEUS_CONFIG, load_yaml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    data = load_yaml(PROMETHEUS_CONFIG)
    assert isinstance(data, dict)
    return data
