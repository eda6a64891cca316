"""The KPI dashboard (deploy/grafana/dashboards/cityos-kpi.json): its layout, and every metric its panels
query is one that a real publish app serves on ``/metrics``, scraped over a catalog holding KPI data,
with every label the queries select or group by.

The PromQL itself (parsed by promtool, metrics and labels against the services' declarations) is
checked with the other dashboards in test_monitoring_config.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from cityos.department.demo import demo_records
from cityos.department.demo_kpi import KPI_SOURCE_DATASETS
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.events import TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT, Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.app import create_app
from tests.support.deploy_files import dashboard_panels, load_dashboard

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "cityos-kpi.json"
DATASOURCE_UID = "prometheus"
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
# Two years of every department's months: enough for a baseline, a trajectory and a latest value.
RECORDS_PER_DATASET = 9 * 24
SELECTOR = re.compile(r"\b(cityos_[a-z0-9_]+)\s*(\{[^}]*\})?")
MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
LABEL_VALUES = re.compile(r"^label_values\(\s*([a-z_:][\w:]*)\s*,\s*(\w+)\s*\)$")


def _queries() -> list[tuple[str, str]]:
    return [
        (f"panel {panel['id']} ({panel['title']}) {target['refId']}", str(target["expr"]))
        for panel in dashboard_panels(load_dashboard(DASHBOARD)["panels"])
        for target in panel.get("targets", [])
    ]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, frozenset[str]]:
    """Metric family → label names, from a real publish app's /metrics (department series on) over a
    catalog holding the demo's KPI source series."""
    url = f"sqlite:///{tmp_path_factory.mktemp('kpi-dashboard') / 'catalog.db'}"
    migrate(url)
    schema_set = load_schema_dir(Settings().schemas_dir)
    events: list[ValidatedEvent] = []
    for dataset_id in sorted(KPI_SOURCE_DATASETS):
        latest = schema_set.latest(dataset_id)
        key = schema_set.datasets[dataset_id].record_key
        for i, record in enumerate(
            demo_records(dataset_id, latest.document, count=RECORDS_PER_DATASET, seed=3)
        ):
            events.append(
                ValidatedEvent(
                    dataset_id=dataset_id, record_key=str(record[key]), schema_version=latest.version,
                    source="/departments/demo", id=f"{dataset_id}-{i}", type=TYPE_UPSERTED,
                    time=T0 + timedelta(seconds=i), data=record, partition=0, offset=len(events),
                )
            )  # fmt: skip
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session, session.begin():
            sync_schema_set(session, schema_set=schema_set, now=T0)
            apply_batch(session, events=events, now=T0)
    finally:
        engine.dispose()
    settings = Settings(database_url=url, publish_kpi_department_metrics=True)
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        text = client.get("/metrics").text
    found: dict[str, frozenset[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, frozenset()) | frozenset(sample.labels)
    return found


def test_dashboard_identity_anddashboard_panels() -> None:
    dashboard = load_dashboard(DASHBOARD)
    assert dashboard["uid"] == "cityos-kpi"
    assert "KPI" in dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = list(dashboard_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        # Both languages in every title, as on the overview dashboard.
        assert " / " in panel["title"] and re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", panel["title"])


def test_dashboard_panels_fit_and_do_not_overlap() -> None:
    occupied: dict[tuple[int, int], str] = {}
    for panel in load_dashboard(DASHBOARD)["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = panel["title"]


def test_every_query_names_metrics_and_labels_publish_serves(scraped: dict[str, frozenset[str]]) -> None:
    kpi_series = {name for name in scraped if name.startswith("cityos_kpi_")}
    assert {"cityos_kpi_value", "cityos_kpi_on_track", "cityos_kpi_progress_ratio"} <= kpi_series
    queries = _queries()
    assert queries
    named: set[str] = set()
    for where, promql in queries:
        selectors = SELECTOR.findall(promql)
        assert selectors, f"{where}: names no cityos metric"
        labels: set[str] = set()
        for name, matchers in selectors:
            assert name in scraped, f"{where}: publish serves no {name}"
            named.add(name)
            labels |= set(MATCHER_LABEL.findall(matchers))
            grouped = {
                g.strip() for clause in GROUPING.findall(promql) for g in clause.split(",") if g.strip()
            }
            missing = (labels | grouped) - scraped[name]
            assert not missing, f"{where}: {name} has no label {sorted(missing)}"
    # The dashboard shows the city's gauges and each department's, value against trajectory.
    assert {"cityos_kpi_value", "cityos_kpi_trajectory_value", "cityos_kpi_on_track"} <= named


def test_variables_come_from_served_labels_and_every_used_one_is_defined(
    scraped: dict[str, frozenset[str]],
) -> None:
    variables = {v["name"]: v for v in load_dashboard(DASHBOARD)["templating"]["list"]}
    assert {"kpi", "department"} <= set(variables)
    for name, variable in variables.items():
        match = LABEL_VALUES.match(str(variable["query"]))
        assert match, name
        metric, label = match.groups()
        assert label in scraped.get(metric, frozenset()), f"variable {name}: {metric} has no {label}"
    repeated = {
        panel["repeat"]
        for panel in dashboard_panels(load_dashboard(DASHBOARD)["panels"])
        if "repeat" in panel
    }
    assert repeated <= set(variables)
    for where, promql in _queries():
        for match in VARIABLE.finditer(promql):
            used = match.group(1) or match.group(2)
            assert used.startswith("__") or used in variables, f"{where}: ${used} undefined"
