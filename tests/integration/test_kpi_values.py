"""KPI values over the demo's series in a real catalog (SQLite and PostgreSQL) equal values computed
here with pandas from the raw demo events: per month and per fiscal year, for the city and for every
department; the fiscal year turns between 31 March and 1 April through the data; /api/v1/kpis over real
HTTP answers the domain's values, and a department's figures only to that department."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest
from sqlalchemy import Engine

from cityos.department.demo import demo_events
from cityos.department.demo_kpi import KPI_SOURCE_DATASETS
from cityos.domain.apikeys import OwnerKind
from cityos.domain.kpi.definitions import KpiDefinition, load_kpis, today_in_japan
from cityos.domain.kpi.progress import KpiProgress
from cityos.domain.kpi.reading import kpi_departments, kpi_progress
from cityos.kernel.db.engine import session_factory
from cityos.kernel.events import TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT, Settings
from services.publish.kpi_api import kpi_body
from tests.support.credentials import issue_credential
from tests.support.publish import T0, load, serve

SETTINGS = Settings()
SCHEMAS = load_schema_dir(SETTINGS.schemas_dir)
KPIS = load_kpis(SETTINGS.kpi_dir)
SEED = 11
TODAY = today_in_japan()


def _raw_demo_events() -> list[dict[str, Any]]:
    return [
        orjson.loads(value)
        for _, _, value in demo_events(SCHEMAS, SETTINGS, per_dataset=2, seed=SEED, today=TODAY)
    ]


def _validated(raw: list[dict[str, Any]]) -> list[ValidatedEvent]:
    batch = []
    for offset, event in enumerate(raw):
        dataset_id = event["dataschema"].split("/")[-2]
        key = str(event["data"][SCHEMAS.datasets[dataset_id].record_key])
        batch.append(
            ValidatedEvent(
                dataset_id=dataset_id, record_key=key, schema_version=1, source=event["source"],
                id=event["id"], type=TYPE_UPSERTED, time=T0 + timedelta(milliseconds=offset),
                data=event["data"], partition=0, offset=offset,
            )
        )  # fmt: skip
    return batch


@pytest.fixture(scope="module")
def raw() -> list[dict[str, Any]]:
    return _raw_demo_events()


@pytest.fixture
def engine(database_url: str, raw: list[dict[str, Any]]) -> Iterator[Engine]:
    engine = load(database_url, SETTINGS.schemas_dir, _validated(raw))
    try:
        yield engine
    finally:
        engine.dispose()


# --- the same figures, computed independently with pandas ------------------------------------------


def _frame(raw: list[dict[str, Any]], dataset_id: str) -> pd.DataFrame:
    frame = pd.DataFrame([e["data"] for e in raw if e["dataschema"].split("/")[-2] == dataset_id])
    # pandas' fiscal quarters ending in March: qyear names the year a fiscal year ends in.
    frame["fy"] = [pd.Period(m, freq="M").asfreq("Q-MAR").qyear - 1 for m in frame["年月"]]
    return frame


def _values(kpi: KpiDefinition, frame: pd.DataFrame, by: str) -> dict[Any, float | None]:
    agg = kpi.aggregation
    numerator = frame[list(agg.fields)].sum(axis=1).groupby(frame[by]).sum()
    if agg.kind == "sum":
        return {k: float(v) for k, v in numerator.items()}
    denominator = frame[list(agg.denominator)].sum(axis=1).groupby(frame[by]).sum()
    return {
        k: float(numerator[k] / denominator[k] * agg.scale) if denominator[k] else None
        for k in numerator.index
    }


def _expected(kpi: KpiDefinition, frame: pd.DataFrame, department: str | None, today: date) -> dict[str, Any]:
    if department is not None:
        frame = frame[frame["部局コード"] == department]
    current_fy = today.year - (today.month < 4)
    frame = frame[frame["年月"] <= f"{today.year}-{today.month:02d}"]
    months = _values(kpi, frame, "年月")
    years = _values(kpi, frame, "fy")
    baseline = years[kpi.baseline_fiscal_year]
    assert baseline is not None  # the demo has every department every month
    target: float | None
    if kpi.target_change is not None:
        target = baseline * (1 + kpi.target_change)
    else:
        target = None if (department is not None and kpi.aggregation.kind == "sum") else kpi.target_value
    complete = [fy for fy in sorted(years) if fy < current_fy]
    latest = complete[-1] if complete else current_fy
    latest_value = years[latest]
    assert latest_value is not None
    if latest == current_fy and kpi.aggregation.kind == "sum":
        latest_value *= (
            12 / frame[frame["fy"] == current_fy]["年月"].nunique()
        )  # the year to date, annualised
    progress = None if target is None else max(0.0, (latest_value - baseline) / (target - baseline))
    return {
        "months": months,
        "years": {f"FY{fy}": v for fy, v in years.items()},
        "baseline": baseline,
        "target": target,
        "latest": f"FY{latest}",
        "progress": progress,
    }


def _assert_equal(progress: KpiProgress, expected: dict[str, Any]) -> None:
    got_months = {v.period: v.value for v in progress.monthly if v.value is not None}
    assert got_months.keys() == expected["months"].keys()
    for period, value in expected["months"].items():
        assert got_months[period] == pytest.approx(value), period
    got_years = {v.period: v.value for v in progress.fiscal_years}
    assert got_years.keys() == expected["years"].keys()
    for period, value in expected["years"].items():
        assert got_years[period] == pytest.approx(value), period
    assert progress.baseline_value == pytest.approx(expected["baseline"])
    assert progress.target_value == pytest.approx(expected["target"])
    assert progress.latest is not None and progress.latest.period == expected["latest"]
    assert progress.progress == pytest.approx(expected["progress"])


@pytest.mark.timeout(300)
def test_kpi_values_equal_pandas_over_the_raw_events(engine: Engine, raw: list[dict[str, Any]]) -> None:
    frames = {dataset_id: _frame(raw, dataset_id) for dataset_id in KPI_SOURCE_DATASETS}
    with session_factory(engine)() as session:
        for kpi in KPIS:
            frame = frames[kpi.source_dataset]
            (city,) = kpi_progress(session, [kpi], today=TODAY)
            _assert_equal(city, _expected(kpi, frame, None, TODAY))
            departments = kpi_departments(session, kpi)
            assert departments == sorted(set(frame["部局コード"])) == sorted(SCHEMAS.departments)
            for department in departments:
                (own,) = kpi_progress(session, [kpi], today=TODAY, department=department)
                _assert_equal(own, _expected(kpi, frame, department, TODAY))


@pytest.mark.timeout(300)
def test_the_fiscal_year_turns_on_1_april_through_the_data(engine: Engine, raw: list[dict[str, Any]]) -> None:
    with session_factory(engine)() as session:
        for kpi in KPIS:
            frame = _frame(raw, kpi.source_dataset)
            march, april = date(2025, 3, 31), date(2025, 4, 1)
            (before,) = kpi_progress(session, [kpi], today=march)
            (after,) = kpi_progress(session, [kpi], today=april)
            _assert_equal(before, _expected(kpi, frame, None, march))
            _assert_equal(after, _expected(kpi, frame, None, april))
            assert before.latest is not None and before.latest.period == "FY2023"
            assert after.latest is not None and after.latest.period == "FY2024"
            assert before.fiscal_years[-1].period == "FY2024" and after.fiscal_years[-1].period == "FY2025"
            assert after.monthly[-1].period == "2025-04"


# --- the JSON API over real HTTP ---------------------------------------------------------------------


PUBLIC = {d for d, meta in SCHEMAS.datasets.items() if meta.classification == "public"}


def _readable(department: str) -> set[str]:
    """What a department reads without grants: the public datasets and its own."""
    return PUBLIC | {d for d, meta in SCHEMAS.datasets.items() if meta.department == department}


def _domain_bodies(engine: Engine, department: str | None, readable: set[str]) -> list[dict[str, Any]]:
    with session_factory(engine)() as session:
        progress = kpi_progress(session, KPIS, today=today_in_japan(), department=department)
    bodies: list[dict[str, Any]] = orjson.loads(orjson.dumps([kpi_body(p, readable) for p in progress]))
    return bodies


@pytest.mark.timeout(300)
def test_the_api_answers_the_domain_values_and_guards_departments(engine: Engine, database_url: str) -> None:
    fire_key = issue_credential(
        database_url, owner_kind=OwnerKind.department, owner_id="fire", purpose="KPI", actor="test"
    )
    digital_key = issue_credential(
        database_url, owner_kind=OwnerKind.department, owner_id="digital", purpose="KPI", actor="test"
    )
    developer_key = issue_credential(
        database_url, owner_kind=OwnerKind.developer, owner_id="dev@example.com", purpose="KPI", actor="test"
    )
    with serve(engine, database_url) as server:
        url = f"{server.url}/api/v1/kpis"
        city = httpx.get(url, timeout=30)
        assert city.status_code == 200 and city.headers["content-type"].startswith("application/json")
        body = city.json()
        assert body["as_of"] == today_in_japan().isoformat() and body["department"] is None
        assert body["kpis"] == _domain_bodies(engine, None, PUBLIC)
        # The KPIs' sources are internal: their names are not open data.
        assert {k["source_dataset"] for k in body["kpis"]} == {None}
        assert [k["id"] for k in body["kpis"]] == sorted(k.id for k in KPIS)

        own = httpx.get(url, params={"department": "fire"}, headers={"Authorization": f"Bearer {fire_key}"})
        assert own.status_code == 200
        assert own.json()["department"] == "fire"
        assert own.json()["kpis"] == _domain_bodies(engine, "fire", _readable("fire"))
        assert own.json()["kpis"] != body["kpis"]
        # The digital office owns the copier and AI/RPA datasets: their names are shown to it.
        digital = httpx.get(url, headers={"Authorization": f"Bearer {digital_key}"}).json()["kpis"]
        assert digital == _domain_bodies(engine, None, _readable("digital"))
        assert {k["id"]: k["source_dataset"] for k in digital}["copy-paper"] == "copier-usage"

        # Anyone else gets one and the same 404, whether the department exists or not.
        refused = [
            httpx.get(url, params={"department": "digital"}, headers={"Authorization": f"Bearer {fire_key}"}),
            httpx.get(url, params={"department": "fire"}),
            httpx.get(
                url, params={"department": "fire"}, headers={"Authorization": f"Bearer {developer_key}"}
            ),
            httpx.get(url, params={"department": "no-such-department"}),
            httpx.get(url, params={"department": "FIRE"}, headers={"Authorization": f"Bearer {fire_key}"}),
        ]
        assert {r.status_code for r in refused} == {404}
        assert {r.content for r in refused} == {refused[0].content}
        assert refused[0].json()["error"] == "not_found"
        for response in refused:
            assert "fire" not in response.text and "kpis" not in response.text

        spec = httpx.get(f"{server.url}/openapi.json").json()
        assert "department" in {p["name"] for p in spec["paths"]["/api/v1/kpis"]["get"]["parameters"]}


@pytest.mark.timeout(300)
def test_kpi_list_prints_the_domain_progress(engine: Engine, database_url: str) -> None:
    env = {**os.environ, "CITYOS_DATABASE_URL": database_url, "COLUMNS": "200"}
    for department in (None, "fire"):
        args = ["--department", department] if department else []
        shown = subprocess.run(
            [sys.executable, "-m", "cityos", "kpi", "list", *args],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        with session_factory(engine)() as session:
            progress = kpi_progress(session, KPIS, today=today_in_japan(), department=department)
        rows = {line.split("│")[1].strip(): line for line in shown.splitlines() if line.count("│") > 2}
        assert set(rows) == {p.kpi.id for p in progress}
        for p in progress:
            assert (f"{p.progress:.0%}" if p.progress is not None else " - ") in rows[p.kpi.id], p.kpi.id
            assert p.latest is not None and p.latest.period in rows[p.kpi.id]
