"""The deployment files the tests read (Compose, Prometheus) and how to read their YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cityos.kernel.settings import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)
