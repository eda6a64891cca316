"""A newcomer's first hour on the real stack: `cityos demo`, then the documented release
(`cityos release run`) accepts the demo's personal records; `cityos records delete` removes records
from the open-data API; `cityos demo --reset` starts clean and `cityos demo --fresh-ids` loads again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from tests.support.stack import Stack

PUBLIC = ("aed", "evacuation-space", "public-facility", "public-toilet", "tourism")
# The DX plan's KPI datasets get a monthly series per department from April 2021 through this month.
KPI_SOURCES = ("copier-usage", "rpa-ai-hours", "e-approval", "telework")


def _demo_counts() -> dict[str, int]:
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    months = (today.year - 2021) * 12 + today.month - 4 + 1
    departments = len(load_schema_dir(Settings().schemas_dir).departments)
    return {
        **{d: 25 for d in (*PUBLIC, "resident-moves")},
        **{d: months * departments for d in KPI_SOURCES},
    }


def _cli(stack: Stack, *args: str) -> str:
    result = stack.cli(*args)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    return result.stdout.decode()


def _counts(stack: Stack) -> dict[str, int]:
    listing: list[dict[str, Any]] = httpx.get(
        stack.url("catalog", "/api/v1/admin/datasets"), headers=stack.admin_headers
    ).json()
    return {d["id"]: d["record_count"] for d in listing}


def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """The catalog applies what ingest validated a moment later."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def _keys(stack: Stack, dataset: str) -> set[str]:
    body = httpx.get(
        stack.url("publish", f"/api/v1/datasets/{dataset}/records"), params={"limit": 1000}
    ).json()
    return {record["NO"] for record in body["records"]}


def _all_demo_records(stack: Stack) -> bool:
    counts = _counts(stack)
    return all(counts.get(d) == expected for d, expected in _demo_counts().items())


@pytest.mark.timeout(420)
def test_demo_release_delete_and_reset(stack: Stack) -> None:
    stack.start("catalog")
    stack.start("ingest", "publish")
    _cli(stack, "demo", "--per-dataset", "25", "--wait", "60")
    _eventually(lambda: _all_demo_records(stack), "demo records in the catalog")

    # The documented release flow (README "Anonymized releases", docs/anonymization.md) accepts them.
    release = json.loads(_cli(stack, "release", "run"))
    assert release["classification"] == "public" and 20 <= release["rows"] <= 25

    # Deleting two AEDs as the fire department: gone from the open-data API, the rest stays.
    printed = _cli(stack, "records", "delete", "aed", "DEMO-00001", "DEMO-00002")
    lines = [line.split("\t") for line in printed.splitlines()]
    assert [(key, topic) for key, topic, _ in lines] == [
        ("aed/DEMO-00001", stack.settings.department_topic("fire")),
        ("aed/DEMO-00002", stack.settings.department_topic("fire")),
    ]
    _eventually(lambda: len(_keys(stack, "aed")) == 23, "two AEDs deleted")
    assert not {"DEMO-00001", "DEMO-00002"} & _keys(stack, "aed")

    # Starting clean removes every record the demo wrote, personal ones included.
    _cli(stack, "demo", "--reset", "--wait", "60")
    _eventually(
        lambda: all(_counts(stack)[d] == 0 for d in _demo_counts()),
        "demo records deleted",
    )
    assert _keys(stack, "aed") == set()

    # The catalog ignores events it has processed; fresh ids load the demo again.
    _cli(stack, "demo", "--fresh-ids", "--wait", "60")
    _eventually(lambda: _all_demo_records(stack), "demo records loaded again")
