"""Fault tests on the local three-node cluster (`make chaos`): real brokers killed, real service
processes killed and scaled, a real PostgreSQL restarted, while events flow.

Collected only when asked for (``CITYOS_CHAOS=1``, which `make chaos` sets): they start three
brokers and a PostgreSQL server of their own and take minutes, so the ordinary suite leaves them out.
The cluster and the server are started when not running and stopped afterwards when started here.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cityos.kernel.settings import REPO_ROOT
from tests.support import cluster as cluster_script
from tests.support.cluster import Cluster
from tests.support.stack import Stack

if os.environ.get("CITYOS_CHAOS") != "1":
    collect_ignore_glob = ["test_*.py"]

POSTGRES_SCRIPT = REPO_ROOT / "deploy" / "local" / "postgres.sh"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    started = False
    if not cluster_script.running():
        result = cluster_script.script("start")
        assert result.returncode == 0, result.stdout + result.stderr
        started = True
    yield Cluster.local()
    if started and os.environ.get("CITYOS_CHAOS_KEEP_CLUSTER") != "1":
        cluster_script.script("stop")


class Postgres:
    """A PostgreSQL server of the fault tests' own (port and data folder apart from the one the
    other tests share), so restarting it disturbs nobody else."""

    def __init__(self, port: int, run_dir: Path) -> None:
        self.env = {**os.environ, "PGPORT": str(port), "CITYOS_RUN_DIR": str(run_dir)}

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["bash", str(POSTGRES_SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    def running(self) -> bool:
        return (
            subprocess.run(
                ["bash", str(POSTGRES_SCRIPT), "status"], env=self.env, capture_output=True, check=False
            ).returncode
            == 0
        )

    @property
    def url(self) -> str:
        return self.run("url")

    def fresh_database(self) -> str:
        name = f"cityos_chaos_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(
            self.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url.rpartition('/')[0]}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    # Under .cache (not var/, which is private to its owner): the server runs as the postgres user.
    server = Postgres(int(os.environ.get("CITYOS_CHAOS_PGPORT", "55533")), REPO_ROOT / ".cache" / "chaos-run")
    started = not server.running()
    if started:
        server.run("start")
    yield server
    if started:
        server.run("stop")


@pytest.fixture
def database_url(postgres: Postgres) -> str:
    return postgres.fresh_database()


@pytest.fixture
def stack(cluster: Cluster, database_url: str, tmp_path: Path) -> Iterator[Stack]:
    cluster.heal()  # a node an earlier failed test left down is started again
    environment = Stack(kafka=cluster.kafka, database_url=database_url, log_dir=tmp_path)
    try:
        yield environment
    finally:
        environment.stop_all()
        cluster.heal()
        # A restarted broker recovers every partition it holds before it serves again: topics left
        # behind by earlier tests would slow every later restart.
        cluster.delete_topics(environment.prefix)


def start(stack: Stack, *services: str) -> None:
    """Start services on the cluster, each once. ACLs written by the set-up reach each broker
    through the cluster's metadata log a moment later: a service meeting a broker that does not
    know them yet must ride that out by itself (cityos.kernel.kafka_start), never exit. Its
    start-up retries, if any, are printed."""
    stack.start(*services)
    for name in services:
        retries = stack.log_tail(name, lines=100_000).count("cityos.kernel.kafka_start")
        if retries:
            print(f"{name}: {retries} start-up retries while the cluster settled; started without exiting")
