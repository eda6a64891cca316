"""``cityos serve analysis`` as a real process: it writes every dataset's snapshot at start and again
every interval, reports runs, rows and bytes on ``/metrics`` (public datasets by name, the others
only summed under ``non-public``), answers ``/healthz``, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.department.demo import demo_records
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.db.models import Dataset
from cityos.kernel.events import ValidatedEvent
from cityos.kernel.schemas import default_schema_dir, load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from services.catalog.store import apply_batch, sync_schema_set
from tests.support.publish_catalog import T0, validated_events
from tests.support.stack import free_port

pytestmark = pytest.mark.integration

JST = timezone(timedelta(hours=9))


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_the_service_writes_every_dataset_and_reports_public_figures_only(
    database_url: str, tmp_path: Path
) -> None:
    schema_set = load_schema_dir(default_schema_dir())
    migrate(database_url)
    engine = make_engine(database_url)
    sent: dict[str, list[dict[str, Any]]] = {}
    events: list[ValidatedEvent] = []
    for dataset_id, meta in sorted(schema_set.datasets.items()):
        rows = demo_records(dataset_id, schema_set.latest(dataset_id).document, count=30, seed=3)
        sent[dataset_id] = rows
        events += validated_events(dataset_id, meta.record_key, rows, len(events))
    events = [replace(event, id=f"service-{n}") for n, event in enumerate(events)]
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=schema_set, now=T0)
        apply_batch(session, events=events, now=T0 + timedelta(hours=1))
    with Session(engine) as session:
        classification = {d.id: d.classification for d in session.scalars(select(Dataset))}
    public = {d for d, c in classification.items() if c == "public"}
    hidden = set(classification) - public
    assert public and hidden

    port = free_port()
    root = tmp_path / "snapshots"
    environment = {
        **os.environ,
        "CITYOS_DATABASE_URL": database_url,
        "CITYOS_SNAPSHOT_DIR": str(root),
        "CITYOS_ANALYSIS_PORT": str(port),
        "CITYOS_SNAPSHOT_INTERVAL_S": "1",
    }
    log = (tmp_path / "analysis.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cityos", "serve", "analysis"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return process.poll() is not None  # died: fail on the assertions below

        _wait(ready, 60, "the first snapshot run")
        assert process.poll() is None, (tmp_path / "analysis.log").read_text()
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}

        today = datetime.now(UTC).astimezone(JST).date().isoformat()
        for dataset_id, rows in sent.items():
            path = root / f"dataset={dataset_id}" / f"date={today}" / "part-0.parquet"
            assert pq.read_metadata(path).num_rows == len(rows), dataset_id

        text = httpx.get(f"{base}/metrics").text
        for dataset_id in hidden:
            assert dataset_id not in text  # a non-public dataset is never named on /metrics
        rows_gauge = _samples(text, "cityos_analysis_snapshot_rows")
        expected = {(("dataset", d),): float(len(sent[d])) for d in public}
        expected[(("dataset", "non-public"),)] = float(sum(len(sent[d]) for d in hidden))
        assert rows_gauge == expected
        sizes = _samples(text, "cityos_analysis_snapshot_size_bytes")
        for dataset_id in public:
            path = root / f"dataset={dataset_id}" / f"date={today}" / "part-0.parquet"
            assert sizes[(("dataset", dataset_id),)] == path.stat().st_size
        assert _samples(text, "cityos_analysis_snapshot_runs_total")[(("outcome", "success"),)] >= 1
        assert _samples(text, "cityos_analysis_snapshot_runs_total")[(("outcome", "failure"),)] == 0
        assert _samples(text, "cityos_analysis_snapshot_last_success_timestamp_seconds")[()] > T0.timestamp()

        # A new record shows in the next run's file and figures.
        aed = schema_set.latest("aed").document
        extra = demo_records("aed", aed, count=31, seed=99)[-1] | {"NO": "SVC-NEW-1"}
        with session_factory(engine)() as session, session.begin():
            apply_batch(
                session,
                events=[replace(validated_events("aed", "NO", [extra], 10_000)[0], id="service-extra")],
                now=datetime.now(UTC),
            )
        path = root / "dataset=aed" / f"date={today}" / "part-0.parquet"
        _wait(lambda: pq.read_metadata(path).num_rows == len(sent["aed"]) + 1, 30, "the next run")
        _wait(
            lambda: _samples(httpx.get(f"{base}/metrics").text, "cityos_analysis_snapshot_rows")[
                (("dataset", "aed"),)
            ]
            == len(sent["aed"]) + 1,
            30,
            "the next run's figures",
        )
        assert not [p for p in root.rglob("*") if p.is_file() and p.name != "part-0.parquet"]  # no leftovers
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
            engine.dispose()
    assert code == 0, (tmp_path / "analysis.log").read_text()
