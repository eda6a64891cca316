"""Monitoring configuration: alert rules, Grafana provisioning and the dashboard agree with the code.

No Prometheus or Grafana runs here. promtool checks the rules, their unit tests and the scrape
config; every metric and label that a PromQL expression of ``alerts.yml`` or of the dashboard names
is looked up in what the services really expose (their metric classes and the catalog app's routers
on a fresh registry), so a renamed metric or label fails here instead of leaving an alert that can
never fire or an empty panel.
"""

from __future__ import annotations

import ast
import posixpath
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import prometheus_client
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.kpi.definitions import load_kpis
from cityos.domain.kpi.progress import KpiProgress, KpiValue
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.settings import REPO_ROOT, Settings
from services.analysis.metrics import AnalysisMetrics
from services.catalog.api import create_catalog_app
from services.catalog.metrics import CatalogMetrics
from services.feeds.metrics import FeedsMetrics
from services.ingest.metrics import IngestMetrics
from services.publish.kpi_metrics import KpiCollector
from services.publish.metrics import PublishMetrics
from tests.support import needs
from tests.support.deploy_files import PROMETHEUS_CONFIG, dashboard_panels, load_dashboard, load_yaml

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "cityos-overview.json"
# Every provisioned dashboard's queries are checked below; the KPI dashboard's layout has its own test
# (tests/unit/deploy/test_kpi_dashboard.py).
DASHBOARDS = (DASHBOARD, GRAFANA_DIR / "dashboards" / "cityos-kpi.json")
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "cityos.yml"
# Entrypoints that declare a metric inline (outside a metric class); read from their source.
INLINE_METRIC_MODULES = (REPO_ROOT / "services" / "ingest" / "main.py",)

DATASOURCE_UID = "prometheus"
# What operators rely on; removing one of these should be a decision, not an accident.
EXPECTED_ALERTS = {
    "CityOSServiceDown",
    "CityOSDeadLetterRateHigh",
    "CityOSIngestLagHigh",
    "CityOSCatalogLagHigh",
    "CityOSCatalogDatabaseRetries",
    "CityOSCatalogEventsRejected",
    "CityOSPublish5xxRatioHigh",
    "CityOSPublishLatencyHigh",
    "CityOSFeedLagHigh",
    "CityOSFeedTransactionsAborting",
    "CityOSDeadLetterReplaysFailed",
    "CityOSKpiBehindTrajectory",
    "CityOSSnapshotsStale",
}
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = ("summary", "summary_ja", "description", "description_ja")
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
# Prometheus adds these to every scraped series; static_configs labels come on top (see below).
TARGET_LABELS = frozenset({"job", "instance"})

# --- PromQL scanning -----------------------------------------------------------------------------
# Not a PromQL parser: enough of the grammar to find selectors, matchers and grouping clauses in the
# expressions this repository writes. Constructs it does not understand fail the test loudly rather
# than pass unchecked.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_CITYOS_NAME = re.compile(r"(?<![\w:])(cityos_[a-zA-Z0-9_:]*)")
_MATCHER = re.compile(r"^\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*([\"'`])\s*\3\s*$")
_AGGREGATION = re.compile(
    r"\b(sum|min|max|avg|group|stddev|stdvar|count|count_values|bottomk|topk|quantile|limitk|limit_ratio)"
    r"\s*(?:(by|without)\s*\(([^()]*)\)\s*)?\("
)
_POSTFIX_GROUPING = re.compile(r"\s*(?:by|without)\s*\(([^()]*)\)")
_VECTOR_MATCHING = re.compile(r"\b(on|ignoring|group_left|group_right)\s*\(")
_HISTOGRAM_QUANTILE = re.compile(r"\bhistogram_quantile\s*\(")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:([a-zA-Z_:][\w:]*)\s*,\s*)?([a-zA-Z_]\w*)\s*\)\s*$")
_GRAFANA_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


@dataclass(frozen=True)
class Expression:
    where: str
    promql: str


@dataclass(frozen=True)
class Selector:
    name: str
    matcher_labels: tuple[str, ...]
    start: int
    end: int


def _blank_strings(promql: str) -> str:
    """Empty every string literal (same length kept), so its content is never read as syntax."""
    return _STRING.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1], promql)


def _closing_paren(text: str, open_index: int) -> int:
    depth = 0
    for index in range(open_index, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    raise AssertionError(f"unbalanced parentheses in {text!r}")


def _selectors(blanked: str) -> list[Selector]:
    found: list[Selector] = []
    for match in _CITYOS_NAME.finditer(blanked):
        end = match.end()
        labels: tuple[str, ...] = ()
        rest = blanked[end:]
        stripped = rest.lstrip()
        if stripped.startswith("{"):
            brace = end + (len(rest) - len(stripped))
            close = blanked.index("}", brace)
            parts = [p for p in blanked[brace + 1 : close].split(",") if p.strip()]
            parsed = [_MATCHER.match(part) for part in parts]
            assert all(parsed), f"matcher not understood in {blanked[brace : close + 1]!r}"
            labels = tuple(m.group(1) for m in parsed if m)
            end = close + 1
        found.append(Selector(match.group(1), labels, match.start(), end))
    return found


def _groupings(blanked: str) -> Iterator[tuple[tuple[str, ...], int, int]]:
    """(grouping labels, start, end) of each aggregation's argument, for both clause positions."""
    for match in _AGGREGATION.finditer(blanked):
        open_index = match.end() - 1
        close = _closing_paren(blanked, open_index)
        clause = match.group(3)
        if match.group(2) is None:
            postfix = _POSTFIX_GROUPING.match(blanked, close + 1)
            clause = postfix.group(1) if postfix else None
        if clause is not None:
            labels = tuple(label.strip() for label in clause.split(",") if label.strip())
            yield labels, open_index, close


# --- what the services expose --------------------------------------------------------------------


_METRIC_TYPES = ("Counter", "Gauge", "Histogram", "Summary")


def _inline_metrics(module: Path, registry: CollectorRegistry) -> list[str]:
    """Declare on ``registry`` the ``cityos_`` metrics that ``module`` creates inline, as it does.

    An entrypoint such as ingest's ``serve`` cannot run here (it needs Kafka), so its constructor
    calls are read from the source: same type, name, documentation and label names.
    """
    declared: list[str] = []
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        kind = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if kind not in _METRIC_TYPES or not node.args:
            continue
        name = node.args[0]
        if not (isinstance(name, ast.Constant) and str(name.value).startswith("cityos_")):
            continue
        labels = node.args[2] if len(node.args) > 2 else None
        labels = next((k.value for k in node.keywords if k.arg == "labelnames"), labels)
        label_names = ast.literal_eval(labels) if labels is not None else ()
        documentation = ast.literal_eval(node.args[1]) if len(node.args) > 1 else ""
        getattr(prometheus_client, kind)(name.value, documentation, label_names, registry=registry)
        declared.append(str(name.value))
    return declared


def _exposed_series(sessions: sessionmaker[Session]) -> dict[str, frozenset[str]]:
    """Series name → label names, read from the real metric classes' exposition.

    The catalog's series come from the catalog app itself (its routers declare the access,
    registry, dead-letter and release metrics) on a migrated, empty SQLite database: the dead-letter
    replay counter is read from the database at scrape time. Feeds and publish come from their
    metric classes, ingest's schema-version gauge from the entrypoint's source.

    A labelled metric exposes nothing until a child exists, so one child per labelled metric is
    created first; the registry then shows the exact sample names (``_total``, ``_bucket`` with
    ``le``, ``_created`` …) that Prometheus will store.
    """
    registry = CollectorRegistry()
    IngestMetrics(registry)
    CatalogMetrics(registry)
    PublishMetrics(registry)
    # Publish's KPI gauges are computed when scraped: one figure per KPI file stands in for the catalog.
    registry.register(KpiCollector(_one_figure_per_kpi))
    FeedsMetrics(registry)
    AnalysisMetrics(registry)
    create_catalog_app(sessions, registry)
    for module in INLINE_METRIC_MODULES:
        assert _inline_metrics(module, registry), f"{module.name} declares no metric any more"
    for collector in list(registry._collector_to_names):
        if isinstance(collector, MetricWrapperBase) and collector._labelnames:
            collector.labels(*["x"] * len(collector._labelnames))
    series: dict[str, frozenset[str]] = {}
    for family in registry.collect():
        assert family.samples, f"{family.name} exposes no sample: declared outside the metric classes?"
        for sample in family.samples:
            series[sample.name] = series.get(sample.name, frozenset()) | frozenset(sample.labels)
    return series


def _one_figure_per_kpi() -> list[KpiProgress]:
    point = KpiValue("FY2025", 2.0, 1.0)
    return [
        KpiProgress(kpi, None, 3.0, 1.0, [point], [point], point, 0.5, False)
        for kpi in load_kpis(Settings().kpi_dir)
    ]


def _scrape_labels(config: dict[str, Any]) -> frozenset[str]:
    labels = set(TARGET_LABELS)
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            labels.update(static.get("labels", {}))
    return frozenset(labels)


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "") if isinstance(query, dict) else query)


def _expressions() -> list[Expression]:
    found = [Expression(f"alerts.yml {rule['alert']}", str(rule["expr"])) for rule in _alert_rules()]
    for path in DASHBOARDS:
        for panel in dashboard_panels(load_dashboard(path)["panels"]):
            for target in panel.get("targets", []):
                where = f"dashboard {path.stem} panel {panel['id']} ({panel['title']}) {target['refId']}"
                found.append(Expression(where, str(target["expr"])))
    return found


EXPRESSIONS = _expressions()


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, frozenset[str]]]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}"
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        yield _exposed_series(session_factory(engine))
    finally:
        engine.dispose()


def _promtool() -> str:
    return needs.promtool()


def _run_promtool(*args: str, cwd: Path = REPO_ROOT) -> None:
    result = subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


# --- (a) promtool ---------------------------------------------------------------------------------


def test_promtool_accepts_the_alert_rules() -> None:
    _run_promtool("check", "rules", str(ALERTS))


def test_promtool_accepts_the_prometheus_config() -> None:
    # Also loads every rule file the config names, relative to the config's directory.
    _run_promtool("check", "config", str(PROMETHEUS_CONFIG))


def test_alert_unit_tests_pass() -> None:
    """Each alert fires on a synthetic failure, with its rendered annotations, and not on a near miss."""
    _run_promtool("test", "rules", str(ALERT_TESTS))


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Dashboard PromQL, with Grafana's variables filled in, checked as recording rules."""
    rules = []
    for index, expression in enumerate(e for e in EXPRESSIONS if e.where.startswith("dashboard")):
        promql = re.sub(r"\$__\w+", "5m", expression.promql)
        promql = _GRAFANA_VARIABLE.sub(".*", promql)
        rules.append({"record": f"cityos_dashboard:query_{index}:check", "expr": promql})
    assert rules
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    _run_promtool("check", "rules", str(path))


# --- alert rules ------------------------------------------------------------------------------------


def test_alert_rules_are_complete_and_bilingual() -> None:
    rules = _alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) == EXPECTED_ALERTS
    for rule in rules:
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations", {})
        for key in ANNOTATIONS:
            assert str(annotations.get(key, "")).strip(), f"{rule['alert']} lacks {key}"
        for key in ("summary_ja", "description_ja"):
            assert JAPANESE.search(annotations[key]), f"{rule['alert']}: {key} is not Japanese"
        for key in ("summary", "description"):
            assert not JAPANESE.search(annotations[key]), f"{rule['alert']}: {key} should be English"


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tested: set[str] = set()
    suite = load_yaml(ALERT_TESTS)
    for case in suite["tests"]:
        for check in case.get("alert_rule_test", []):
            if check.get("exp_alerts"):
                tested.add(check["alertname"])
    assert tested >= EXPECTED_ALERTS, f"no firing test for {sorted(EXPECTED_ALERTS - tested)}"
    assert [Path(p).name for p in suite["rule_files"]] == [ALERTS.name]


# --- (b) metrics and labels in PromQL exist ------------------------------------------------------


def test_the_services_expose_the_metrics_the_readme_lists(exposed: dict[str, frozenset[str]]) -> None:
    # Guards the collection itself: an empty or partial registry would make the checks below vacuous.
    assert {
        "cityos_ingest_events_consumed_total",
        "cityos_ingest_validation_duration_seconds_bucket",
        "cityos_catalog_db_retries_total",
        "cityos_publish_http_request_duration_seconds_bucket",
        "cityos_publish_records_served_total",
        "cityos_publish_dataset_requests_total",
        "cityos_feeds_events_total",
        "cityos_feeds_consumer_lag_messages",
        "cityos_feeds_transaction_duration_seconds_bucket",
        "cityos_dlq_replays_total",
        "cityos_registry_registrations_total",
        "cityos_release_gate_runs_total",
        "cityos_access_refusals_total",
        "cityos_ingest_schema_versions",
    } <= set(exposed)
    assert "le" in exposed["cityos_publish_http_request_duration_seconds_bucket"]
    assert {"route", "method", "status", "format"} <= exposed["cityos_publish_http_requests_total"]
    assert {"subscription", "outcome"} <= exposed["cityos_feeds_events_total"]
    assert "outcome" in exposed["cityos_dlq_replays_total"]


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=lambda e: e.where)
def test_expression_uses_real_metrics_and_labels(
    expression: Expression, exposed: dict[str, frozenset[str]], prometheus_config: dict[str, Any]
) -> None:
    blanked = _blank_strings(expression.promql)
    assert "__name__" not in blanked, "selectors by __name__ are not checked: name the metric"
    unsupported = _VECTOR_MATCHING.search(blanked)
    assert unsupported is None, f"{unsupported.group(1)}(...) is not checked yet: extend this test"
    target_labels = _scrape_labels(prometheus_config)

    selectors = _selectors(blanked)
    unknown = sorted({s.name for s in selectors} - set(exposed))
    assert not unknown, f"{expression.where}: no service exposes {unknown}"
    for selector in selectors:
        labels = exposed[selector.name] | target_labels
        missing = sorted(set(selector.matcher_labels) - labels)
        assert not missing, f"{expression.where}: {selector.name} has no label {missing}"

    for grouping, start, end in _groupings(blanked):
        inside = [s for s in selectors if start < s.start and s.end <= end]
        for selector in inside:
            missing = sorted(set(grouping) - exposed[selector.name] - target_labels)
            assert not missing, f"{expression.where}: grouping by {missing}, absent on {selector.name}"

    # A quantile needs the buckets, still split by ``le``, of a classic histogram.
    groupings = list(_groupings(blanked))
    for match in _HISTOGRAM_QUANTILE.finditer(blanked):
        close = _closing_paren(blanked, match.end() - 1)
        inside = [s for s in selectors if match.end() <= s.start and s.end <= close]
        assert inside and all(s.name.endswith("_bucket") for s in inside), expression.where
        assert all(
            "le" in grouping for grouping, start, end in groupings if match.end() <= start and end <= close
        ), f"{expression.where}: histogram_quantile over an aggregation that drops le"


def test_scanner_catches_unknown_names_and_labels(exposed: dict[str, frozenset[str]]) -> None:
    """The scanner itself: the mistakes it exists for are seen."""
    blanked = _blank_strings('sum by (reason) (rate(cityos_catalog_events_total{outcome="a,b}"}[5m]))')
    [selector] = _selectors(blanked)
    assert selector.name == "cityos_catalog_events_total"
    assert selector.matcher_labels == ("outcome",)
    [(grouping, start, end)] = _groupings(blanked)
    assert grouping == ("reason",)
    assert start < selector.start and selector.end <= end
    assert "reason" not in exposed[selector.name]
    assert "cityos_catalog_events" not in exposed  # a counter is stored as ..._total
    postfix = list(_groupings(_blank_strings("sum(rate(cityos_x_total[5m])) by (le, route)")))
    assert [g for g, _, _ in postfix] == [("le", "route")]


# --- (c) dashboard ---------------------------------------------------------------------------------


def test_dashboard_identity() -> None:
    dashboard = load_dashboard(DASHBOARD)
    assert dashboard["uid"] == "cityos-overview"
    assert dashboard["title"] == "CityOS Connector — overview / 概要"
    assert 36 <= dashboard["schemaVersion"] <= 41


def test_dashboard_panels_have_unique_ids_a_datasource_and_queries() -> None:
    panels = list(dashboard_panels(load_dashboard(DASHBOARD)["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    for panel in panels:
        if panel["type"] == "row":  # a row only groups panels: no datasource, no query
            continue
        title = panel.get("title", panel["id"])
        assert panel.get("datasource", {}).get("uid") == DATASOURCE_UID, title
        assert panel.get("targets"), f"{title} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", {}).get("uid", DATASOURCE_UID) == DATASOURCE_UID, title
            assert str(target.get("expr", "")).strip(), f"{title} {target.get('refId')} has no expr"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title


def test_dashboard_panels_do_not_overlap() -> None:
    occupied: dict[tuple[int, int], str] = {}
    for panel in load_dashboard(DASHBOARD)["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = panel["title"]


def test_dashboard_has_the_rows_operators_expect() -> None:
    rows = [p["title"] for p in load_dashboard(DASHBOARD)["panels"] if p["type"] == "row"]
    for prefix in ("Ingest", "Catalog", "Publish", "Feeds", "Registry"):
        assert any(title.startswith(prefix) for title in rows), f"no {prefix} row in {rows}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_variables_are_defined_and_real(
    path: Path, exposed: dict[str, frozenset[str]], prometheus_config: dict[str, Any]
) -> None:
    variables = {v["name"]: v for v in load_dashboard(path)["templating"]["list"]}
    if path == DASHBOARD:
        assert {"department", "dataset"} <= set(variables)
    for name, variable in variables.items():
        assert variable.get("datasource", {}).get("uid") == DATASOURCE_UID, name
        match = _LABEL_VALUES.match(_variable_query(variable))
        assert match, f"variable {name}: expected label_values(metric, label)"
        metric, label = match.groups()
        assert metric is not None and metric in exposed, f"variable {name}: unknown metric {metric}"
        assert label in exposed[metric] | _scrape_labels(prometheus_config), f"variable {name}: {label}"
    own = [e for e in EXPRESSIONS if e.where.startswith(f"dashboard {path.stem} ")]
    assert own, f"no query found in {path.name}"
    for expression in own:
        for match in _GRAFANA_VARIABLE.finditer(expression.promql):
            used = match.group(1) or match.group(2)
            assert used.startswith("__") or used in variables, f"{expression.where}: ${used} undefined"


# --- (d) provisioning matches the compose mounts ---------------------------------------------------


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path → (host source, read-only) for the bind mounts of a compose service."""
    mounts: dict[str, tuple[str, bool]] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = (str(volume.get("source", "")), bool(volume.get("read_only")))
            continue
        source, target, *mode = str(volume).split(":")
        mounts[target] = (source, "ro" in (mode[0].split(",") if mode else []))
    return mounts


def _host_path(source: str) -> Path:
    assert source.startswith("./"), f"{source} is not a bind mount of the repository"
    return (REPO_ROOT / source).resolve()


def _container_path_of(mounts: dict[str, tuple[str, bool]], host: Path) -> str:
    """Where a repository file appears in the container, through a file or directory bind mount."""
    for target, (source, _) in mounts.items():
        if not source.startswith("./"):
            continue
        mounted = _host_path(source)
        if host == mounted:
            return target
        if mounted in host.parents:
            return posixpath.join(target, host.relative_to(mounted).as_posix())
    raise AssertionError(f"{host.relative_to(REPO_ROOT)} is not mounted")


def test_prometheus_loads_the_mounted_alert_rules(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    service = compose["services"]["prometheus"]
    mounts = _mounts(service)
    config_flags = [c for c in service["command"] if str(c).startswith("--config.file=")]
    assert len(config_flags) == 1
    config_path = config_flags[0].split("=", 1)[1]
    assert _container_path_of(mounts, PROMETHEUS_CONFIG) == config_path
    rule_files = prometheus_config.get("rule_files", [])
    assert rule_files, "prometheus.yml loads no rule file"
    loaded = {posixpath.normpath(posixpath.join(posixpath.dirname(config_path), f)) for f in rule_files}
    assert _container_path_of(mounts, ALERTS) in loaded
    assert all(read_only for source, read_only in mounts.values() if source.startswith("./"))


def test_grafana_provisioning_files_load_and_are_mounted(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = _mounts(grafana)
    assert _container_path_of(mounts, DATASOURCES).startswith("/etc/grafana/provisioning/datasources/")
    assert _container_path_of(mounts, DASHBOARD_PROVIDERS).startswith("/etc/grafana/provisioning/dashboards/")
    assert all(read_only for source, read_only in mounts.values() if source.startswith("./"))

    providers = load_yaml(DASHBOARD_PROVIDERS)
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    dashboard_dir = provider["options"]["path"]
    assert dashboard_dir == "/var/lib/grafana/dashboards"
    assert _container_path_of(mounts, DASHBOARD) == posixpath.join(dashboard_dir, DASHBOARD.name)

    env = grafana.get("environment", {})
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home is not None:
        assert home == _container_path_of(mounts, DASHBOARD)


def test_grafana_datasource_reaches_the_compose_prometheus(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    datasources = load_yaml(DATASOURCES)
    assert datasources["apiVersion"] == 1
    [datasource] = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == DATASOURCE_UID
    url = urlsplit(datasource["url"])
    assert url.hostname in compose["services"], f"{url.hostname} is not a compose service"
    prometheus_ports = {str(p).rsplit(":", 1)[-1] for p in compose["services"][url.hostname]["ports"]}
    assert str(url.port) in prometheus_ports
    # $__rate_interval is derived from it: it must be the real scrape interval.
    assert datasource["jsonData"]["timeInterval"] == prometheus_config["global"]["scrape_interval"]


def test_grafana_service_is_local_and_read_only_for_anonymous_users(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert str(grafana["image"]).startswith("grafana/grafana-oss:")
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
