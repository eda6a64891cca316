"""The open-data API run as several worker processes (``CITYOS_PUBLISH_WORKERS``): it answers
every page exactly as one process does, over keep-alive connections, and stops with all its
workers."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path
from urllib.parse import quote, urlsplit

from cityos.kernel.settings import REPO_ROOT
from tests.support.publish import events, load, publish_process, yaizu_aed_rows

BASE = "https://opendata.example.jp"
PATHS = [
    "/api/v1/datasets/aed/records?limit=10",
    "/api/v1/datasets/aed/records?limit=25&offset=30",
    "/api/v1/datasets/aed/records?format=csv&limit=50",
    "/api/v1/datasets/aed/records?format=geojson&limit=20&offset=5",
    f"/api/v1/datasets/aed/records?fields={quote('NO,名称')}&limit=40",
    "/api/v1/datasets",
    "/api/v1/datasets/aed",
]


def _bodies(url: str, rounds: int = 5) -> list[bytes]:
    """Each path's body, ``rounds`` times, on one keep-alive connection."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    bodies = []
    try:
        for _ in range(rounds):
            for path in PATHS:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                assert response.status == 200, (path, body[:300])
                bodies.append(body)
    finally:
        connection.close()
    return bodies


def test_two_workers_answer_as_one_process(database_url: str, tmp_path: Path) -> None:
    schemas = REPO_ROOT / "schemas"
    load(database_url, schemas, events("aed", yaizu_aed_rows(schemas))).dispose()
    env = {"CITYOS_PUBLIC_BASE_URL": BASE, "CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE": "100000"}
    with publish_process(database_url, tmp_path / "one.log", **env) as one:
        expected = _bodies(one)
    with publish_process(database_url, tmp_path / "two.log", CITYOS_PUBLISH_WORKERS="2", **env) as two:
        assert _bodies(two) == expected
        # Both workers serve: concurrent connections are spread over them by the kernel, and
        # each answers on its own keep-alive connection.
        assert all(_bodies(two, rounds=1) == expected[: len(PATHS)] for _ in range(4))
        port = urlsplit(two).port
    log = (tmp_path / "two.log").read_text(errors="replace")
    assert log.count("Started server process") == 2, log[-2000:]
    # Stopped with its workers: nothing listens on the port any more.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port or 0)) != 0
