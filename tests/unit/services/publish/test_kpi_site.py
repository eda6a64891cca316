"""The DX plan's KPIs made visible: the gauges on publish's ``/metrics`` and the site's KPI pages carry
the same figures as ``GET /api/v1/kpis``, over the real app and a SQLite catalog holding the demo's
monthly series for every department; a department's own page opens for that department only.

Expected values are read from the API's JSON (itself tested against hand-computed series elsewhere);
what is checked here is that every other view says the same, and who may see what.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from cityos.department.demo_kpi import KPI_SOURCE_DATASETS, series_length
from cityos.domain.apikeys import SCOPE_READ, OwnerKind
from cityos.domain.kpi.definitions import load_kpis, today_in_japan
from cityos.domain.kpi.progress import KpiProgress, KpiValue
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.events import ValidatedEvent
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.app import create_app
from services.publish.kpi_metrics import CITY, GAUGE_NAMES, KpiCollector
from tests.support.browser import demo_validated_events
from tests.support.credentials import issue_credential

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
SEED = 5
OWN = "digital"
OTHER = "planning"
MISSING = "no-such-department"
PUBLIC_KPI_DATASET = "dx-kpi"


@dataclass(frozen=True)
class Catalog:
    url: str
    keys: dict[str, str]  # department → a department credential that reads records


def _events(schemas_dir: Path) -> list[ValidatedEvent]:
    return demo_validated_events(
        load_schema_dir(schemas_dir),
        per_dataset=series_length(today_in_japan()),
        seed=SEED,
        datasets=sorted(KPI_SOURCE_DATASETS | {PUBLIC_KPI_DATASET}),
        id_prefix="kpi-test",
    )


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    url = f"sqlite:///{tmp_path_factory.mktemp('kpi') / 'catalog.db'}"
    migrate(url)
    engine = make_engine(url)
    schemas_dir = Settings().schemas_dir
    try:
        with session_factory(engine)() as session, session.begin():
            sync_schema_set(session, schema_set=load_schema_dir(schemas_dir), now=T0)
            apply_batch(session, events=_events(schemas_dir), now=T0 + timedelta(hours=1))
    finally:
        engine.dispose()
    keys = {
        department: issue_credential(
            url,
            owner_kind=OwnerKind.department,
            owner_id=department,
            purpose="kpi tests",
            actor="admin:cli",
            scopes=[SCOPE_READ],
        )
        for department in (OWN, OTHER)
    }
    return Catalog(url, keys)


def _client(catalog: Catalog, **settings: Any) -> TestClient:
    app = create_app(Settings(database_url=catalog.url, **settings), registry=CollectorRegistry())
    return TestClient(app)


@pytest.fixture(scope="module")
def client(catalog: Catalog) -> Iterator[TestClient]:
    with _client(catalog) as running:
        yield running


def _bearer(catalog: Catalog, department: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {catalog.keys[department]}"}


def _gauges(text: str) -> dict[tuple[str, str, str], float]:
    """(metric, kpi, department) → value of every KPI gauge sample."""
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in GAUGE_NAMES:
            for sample in family.samples:
                found[(sample.name, sample.labels["kpi"], sample.labels["department"])] = sample.value
    return found


def _expected(kpi: dict[str, Any]) -> dict[str, float | None]:
    """What each gauge must say for one KPI of the API's answer (None: no sample at all)."""
    latest = kpi["latest"] or {"value": None, "trajectory": None}
    current = kpi["fiscal_years"][-1] if kpi["fiscal_years"] else {"value": None, "trajectory": None}
    baseline, target = kpi["baseline"]["value"], kpi["target"]["value"]
    expected_share = None
    if (
        latest["trajectory"] is not None
        and baseline is not None
        and target is not None
        and target != baseline
    ):
        expected_share = (latest["trajectory"] - baseline) / (target - baseline)
    on_track = kpi["on_track"]
    return {
        "cityos_kpi_value": latest["value"],
        "cityos_kpi_trajectory_value": latest["trajectory"],
        "cityos_kpi_year_to_date_value": current["value"],
        "cityos_kpi_year_to_date_trajectory_value": current["trajectory"],
        "cityos_kpi_baseline_value": baseline,
        "cityos_kpi_target_value": target,
        "cityos_kpi_progress_ratio": kpi["progress"],
        "cityos_kpi_trajectory_progress_ratio": expected_share,
        "cityos_kpi_on_track": None if on_track is None else float(on_track),
    }


def _assert_gauges_match(
    gauges: dict[tuple[str, str, str], float], report: dict[str, Any], department: str
) -> int:
    compared = 0
    for kpi in report["kpis"]:
        for name, value in _expected(kpi).items():
            key = (name, kpi["id"], department)
            if value is None:
                assert key not in gauges, key
            else:
                assert key in gauges, key
                assert math.isclose(gauges[key], value, rel_tol=1e-12, abs_tol=1e-12), (
                    key,
                    gauges[key],
                    value,
                )
                compared += 1
    return compared


# --- gauges ----------------------------------------------------------------------------------------


def test_city_gauges_equal_the_api(client: TestClient) -> None:
    report = client.get("/api/v1/kpis").json()
    gauges = _gauges(client.get("/metrics").text)
    assert report["kpis"], "no KPI files?"
    # The demo has years of data for every KPI: every gauge is there for each.
    assert _assert_gauges_match(gauges, report, CITY) == len(GAUGE_NAMES) * len(report["kpis"])
    # Department figures are that department's to read: none on an open /metrics by default.
    assert {department for _, _, department in gauges} == {CITY}


def test_department_gauges_when_turned_on_equal_each_departments_own_figures(catalog: Catalog) -> None:
    with _client(catalog, publish_kpi_department_metrics=True) as client:
        gauges = _gauges(client.get("/metrics").text)
        departments = {department for _, _, department in gauges}
        listed = json.loads((Settings().schemas_dir / "departments.json").read_text(encoding="utf-8"))
        known = {department["id"] for department in listed}
        # Bounded: the city plus the catalog's departments, every one of which has demo data.
        assert departments - {CITY} == known
        for department in (OWN, OTHER):
            own = client.get(
                "/api/v1/kpis", params={"department": department}, headers=_bearer(catalog, department)
            )
            assert own.status_code == 200, own.text
            assert _assert_gauges_match(gauges, own.json(), department) > 0
        city = client.get("/api/v1/kpis").json()
        _assert_gauges_match(gauges, city, CITY)
        states = {value for (name, _, _), value in gauges.items() if name == "cityos_kpi_on_track"}
        assert states == {0.0, 1.0}, "the demo has departments both on and behind the plan"


def test_promtool_accepts_the_kpi_gauges(catalog: Catalog) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    with _client(catalog, publish_kpi_department_metrics=True) as client:
        text = client.get("/metrics").text
    assert "cityos_kpi_on_track{" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def _row(kpi_id: str, value: float) -> KpiProgress:
    kpi = next(k for k in load_kpis(Settings().kpi_dir) if k.id == kpi_id)
    point = KpiValue("FY2025", value, value)
    return KpiProgress(kpi, None, value, value, [point], [point], point, 0.0, True)


def test_gauges_are_computed_at_most_once_per_interval_and_survive_a_failed_read() -> None:
    now = [0.0]
    calls: list[int] = []
    answers: list[list[KpiProgress] | Exception] = [
        [_row("copy-paper", 10.0)],
        [_row("copy-paper", 20.0)],
        OSError("KPI folder unreadable"),
    ]

    def compute() -> list[KpiProgress]:
        calls.append(1)
        answer = answers[len(calls) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def value() -> float:
        registry = CollectorRegistry()
        registry.register(collector)
        found = registry.get_sample_value("cityos_kpi_value", {"kpi": "copy-paper", "department": CITY})
        assert found is not None
        return found

    collector = KpiCollector(compute, ttl_s=30.0, clock=lambda: now[0])
    assert len(calls) == 0, "registering reads nothing"
    assert value() == 10.0 and value() == 10.0 and len(calls) == 1
    now[0] = 29.0
    assert value() == 10.0 and len(calls) == 1
    now[0] = 30.0
    assert value() == 20.0 and len(calls) == 2
    now[0] = 60.0
    assert value() == 20.0 and len(calls) == 3  # the failed read keeps the last figures


# --- pages -----------------------------------------------------------------------------------------


class _KpiMarkup(HTMLParser):
    """The figures a KPI page shows, read from its markup's data attributes, plus its links and
    script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict[str, Any]] = {}
        self.links: list[dict[str, str]] = []
        self.scripts = 0
        self._kpi: dict[str, Any] | None = None
        self._series: list[tuple[Any, ...]] | None = None
        self._row: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if tag == "script":
            self.scripts += 1
        if tag == "a":
            self.links.append(a)
        if tag == "section" and "data-kpi" in a:
            self._kpi = self.figures[a["data-kpi"]] = {"charts": 0, "monthly": [], "fiscal_years": []}
        if self._kpi is None:
            return
        if tag == "dd" and "data-field" in a and "data-value" in a:
            self._kpi[a["data-field"]] = _number(a["data-value"])
            if a["data-field"] == "latest":
                self._kpi["latest_period"] = a["data-period"] or None
        elif "data-status" in a:
            self._kpi["status"] = a["data-status"]
        elif tag == "svg" and a.get("role") == "img":
            self._kpi["charts"] += 1
        elif tag == "table" and "data-series" in a:
            self._series = self._kpi[a["data-series"]]
        elif tag == "tr" and self._series is not None and "data-period" in a:
            self._row = [a["data-period"], None, None]
        elif tag == "td" and self._row is not None:
            if "data-value" in a:
                self._row[1] = _number(a["data-value"])
            if "data-trajectory" in a:
                self._row[2] = _number(a["data-trajectory"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None and self._series is not None:
            self._series.append(tuple(self._row))
            self._row = None
        elif tag == "table":
            self._series = None
        elif tag == "section":
            self._kpi = None


def _number(text: str) -> float | None:
    return float(text) if text else None


def _read_page(body: str) -> _KpiMarkup:
    markup = _KpiMarkup()
    markup.feed(body)
    markup.close()
    return markup


def _page_figures(body: str) -> dict[str, dict[str, Any]]:
    return _read_page(body).figures


def _api_figures(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def points(series: list[dict[str, Any]]) -> list[tuple[str, float | None, float | None]]:
        return [(p["period"], p["value"], p["trajectory"]) for p in series]

    return {
        kpi["id"]: {
            "baseline": kpi["baseline"]["value"],
            "target": kpi["target"]["value"],
            "latest": kpi["latest"]["value"] if kpi["latest"] else None,
            "latest_period": kpi["latest"]["period"] if kpi["latest"] else None,
            "progress": kpi["progress"],
            "status": {True: "on", False: "behind", None: "unknown"}[kpi["on_track"]],
            "monthly": points(kpi["monthly"]),
            "fiscal_years": points(kpi["fiscal_years"]),
            "charts": 2,
        }
        for kpi in report["kpis"]
    }


@pytest.mark.parametrize("path", ["/kpi", "/en/kpi"])
def test_the_kpi_page_shows_the_apis_figures(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert _page_figures(page.text) == _api_figures(client.get("/api/v1/kpis").json())
    markup = _read_page(page.text)
    # The open KPI dataset and its CSV are linked; both answer.
    [csv_link] = [link["href"] for link in markup.links if "data-kpi-csv" in link]
    assert client.get(csv_link).status_code == 200
    dataset_page = ("/en" if path.startswith("/en") else "") + "/datasets/dx-kpi"
    assert dataset_page in {link["href"] for link in markup.links}
    assert client.get(dataset_page).status_code == 200
    # The header's navigation marks this page as the current one.
    assert [link["href"] for link in markup.links if link.get("aria-current") == "page"] == [path]
    # The page reads without JavaScript: it has no script at all.
    assert markup.scripts == 0


def test_the_city_page_names_no_dataset_the_caller_may_not_read(client: TestClient, catalog: Catalog) -> None:
    anonymous = client.get("/kpi").text
    for hidden in ("copier-usage", "e-approval", "rpa-ai-hours", "telework"):
        assert f">{hidden}<" not in anonymous and f"/datasets/{hidden}" not in anonymous
    # The owner of copier-usage (internal) sees its source linked.
    own = client.get("/kpi", headers=_bearer(catalog, OWN)).text
    assert "/datasets/copier-usage" in own
    assert f'href="/kpi/departments/{OWN}"' in own


@pytest.mark.parametrize("lang_prefix", ["", "/en"])
def test_a_department_sees_its_own_figures_and_nobody_else_does(
    client: TestClient, catalog: Catalog, lang_prefix: str
) -> None:
    path = f"{lang_prefix}/kpi/departments/{OWN}"
    own = client.get(path, headers=_bearer(catalog, OWN))
    assert own.status_code == 200
    assert own.headers["cache-control"] == "private, no-store"
    report = client.get("/api/v1/kpis", params={"department": OWN}, headers=_bearer(catalog, OWN)).json()
    shown = _page_figures(own.text)
    assert shown == _api_figures(report)
    # The department's figures are its own, not the city's.
    assert shown != _api_figures(client.get("/api/v1/kpis").json())

    for headers in ({}, _bearer(catalog, OTHER)):
        # Compared with the same caller's page of a missing department (the header shows who is in).
        missing = client.get(f"{lang_prefix}/kpi/departments/{MISSING}", headers=headers)
        assert missing.status_code == 404
        refused = client.get(path, headers=headers)
        assert refused.status_code == 404
        assert refused.headers["content-type"] == missing.headers["content-type"]
        assert refused.text.replace(OWN, "?") == missing.text.replace(MISSING, "?")
    # Even a department's own credential gets the same answer for a department that does not exist.
    assert (
        client.get(f"{lang_prefix}/kpi/departments/{MISSING}", headers=_bearer(catalog, OWN)).status_code
        == 404
    )


def test_the_login_cookie_opens_the_department_page(client: TestClient, catalog: Catalog) -> None:
    login = client.post("/login", data={"key": catalog.keys[OWN]}, follow_redirects=False)
    assert login.status_code == 303
    try:
        assert client.get(f"/kpi/departments/{OWN}").status_code == 200
        assert client.get(f"/kpi/departments/{OTHER}").status_code == 404
    finally:
        client.cookies.clear()
    assert client.get(f"/kpi/departments/{OWN}").status_code == 404
