"""The DX plan's KPIs as Prometheus gauges on publish's ``/metrics``, computed when scraped.

One series per KPI and department: ``department="all"`` is the whole city, the same figures as the
catalog site's KPI page and ``GET /api/v1/kpis``. ``cityos_kpi_value`` is the KPI's ``latest`` (the
latest complete fiscal year with data, else the current year to date), the figure that ``progress``
and ``on_track`` judge, so the gauges, the page and the API agree on whether a KPI is on track;
``cityos_kpi_year_to_date_value`` is the current fiscal year so far, which moves every month.

``/metrics`` needs no credential, while a department's own figures are shown only to that department
(the site's department view, ``?department=`` of the API). Per-department series are therefore off
unless the operator turns them on (``publish_kpi_department_metrics``) for a ``/metrics`` that only
monitoring can reach. Label values stay bounded either way: KPI ids come from the reviewed KPI files,
department ids from the catalog's departments (``schemas/departments.json``).

A scrape reads the catalog at most once per ``ttl_s``: Prometheus and a second scraper share one
computation, and a KPI moves only when a month's records arrive.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cityos.domain.kpi.definitions import KpiDefinition, KpiError, today_in_japan
from cityos.domain.kpi.progress import KpiProgress, KpiValue, compute_progress
from cityos.domain.kpi.reading import source_records
from cityos.kernel.db.models import Department
from cityos.kernel.settings import Settings
from services.publish.kpi_api import current_kpis

log = logging.getLogger(__name__)

CITY: Final = "all"
LABELS: Final = ("kpi", "department")
DEFAULT_TTL_S: Final = 30.0


def _latest_value(row: KpiProgress) -> float | None:
    return row.latest.value if row.latest is not None else None


def _latest_trajectory(row: KpiProgress) -> float | None:
    return row.latest.trajectory if row.latest is not None else None


def trajectory_progress(row: KpiProgress) -> float | None:
    """The share of the way from the baseline to the target the trajectory expects by now: what
    ``progress`` is compared with, on the same 0 … 1 scale for every KPI whatever its unit."""
    trajectory = _latest_trajectory(row)
    if trajectory is None or row.baseline_value is None or row.target_value is None:
        return None
    span = row.target_value - row.baseline_value
    # + 0.0: a baseline equal to its trajectory is 0, not -0 (a decreasing KPI's span is negative).
    return (trajectory - row.baseline_value) / span + 0.0 if span else None


def year_to_date(row: KpiProgress) -> KpiValue | None:
    """The current fiscal year so far: the last of ``fiscal_years``."""
    return row.fiscal_years[-1] if row.fiscal_years else None


def _year_to_date_value(row: KpiProgress) -> float | None:
    current = year_to_date(row)
    return current.value if current is not None else None


def _year_to_date_trajectory(row: KpiProgress) -> float | None:
    current = year_to_date(row)
    return current.trajectory if current is not None else None


def _on_track(row: KpiProgress) -> float | None:
    return None if row.on_track is None else float(row.on_track)


@dataclass(frozen=True, slots=True)
class KpiGauge:
    name: str
    documentation: str
    read: Callable[[KpiProgress], float | None]


GAUGES: Final = (
    KpiGauge(
        "cityos_kpi_value",
        "Latest value of a DX plan KPI (latest complete fiscal year, else the year to date), in its own unit.",
        _latest_value,
    ),
    KpiGauge(
        "cityos_kpi_trajectory_value",
        "Where the latest value should be on the straight line from the KPI's baseline to its target.",
        _latest_trajectory,
    ),
    KpiGauge(
        "cityos_kpi_year_to_date_value",
        "Value of a DX plan KPI for the current fiscal year so far (April to the latest month with data).",
        _year_to_date_value,
    ),
    KpiGauge(
        "cityos_kpi_year_to_date_trajectory_value",
        "The trajectory of the current fiscal year to date (a sum's scaled to the months with data).",
        _year_to_date_trajectory,
    ),
    KpiGauge(
        "cityos_kpi_baseline_value",
        "The KPI's value in its baseline fiscal year.",
        lambda r: r.baseline_value,
    ),
    KpiGauge(
        "cityos_kpi_target_value", "The KPI's target for its target fiscal year.", lambda r: r.target_value
    ),
    KpiGauge(
        "cityos_kpi_progress_ratio",
        "Share of the way from the baseline to the target achieved (1 = target reached).",
        lambda r: r.progress,
    ),
    KpiGauge(
        "cityos_kpi_trajectory_progress_ratio",
        "Share of the way from the baseline to the target that the trajectory expects by now.",
        trajectory_progress,
    ),
    KpiGauge(
        "cityos_kpi_on_track",
        "1 when the KPI's latest value is at or better than its trajectory, 0 when it is behind.",
        _on_track,
    ),
)
GAUGE_NAMES: Final = tuple(gauge.name for gauge in GAUGES)


def kpi_families(rows: Iterable[KpiProgress]) -> list[GaugeMetricFamily]:
    """The gauges of ``rows``; a figure that is not known (no data yet) is left out, never 0."""
    families = [GaugeMetricFamily(g.name, g.documentation, labels=LABELS) for g in GAUGES]
    for row in rows:
        labels = [row.kpi.id, row.department or CITY]
        for family, gauge in zip(families, GAUGES, strict=True):
            value = gauge.read(row)
            if value is not None and math.isfinite(value):
                family.add_metric(labels, value)
    return families


def read_progress(
    session: Session, kpis: Sequence[KpiDefinition], *, today: date, by_department: bool
) -> list[KpiProgress]:
    """The city's progress on every KPI; with ``by_department``, also that of each department with
    data for it, among the catalog's departments (a stray code in a record names no series). Each
    source dataset is read once."""
    known = set(session.scalars(select(Department.id))) if by_department else set()
    records: dict[str, list[Mapping[str, Any]]] = {}
    rows = []
    for kpi in kpis:
        if kpi.source_dataset not in records:
            records[kpi.source_dataset] = source_records(session, kpi.source_dataset)
        data = records[kpi.source_dataset]
        rows.append(compute_progress(kpi, data, today=today))
        present = {record.get(kpi.department_field) for record in data}
        for department in sorted(d for d in present if isinstance(d, str) and d in known):
            rows.append(compute_progress(kpi, data, today=today, department=department))
    return rows


class KpiCollector(Collector):
    """The KPI gauges, from ``compute`` at most once per ``ttl_s``.

    When the catalog or the KPI files cannot be read, the last figures stay (none before the first
    read) and the failure is logged: a scrape of the service's other metrics never fails for it."""

    def __init__(
        self,
        compute: Callable[[], Sequence[KpiProgress]],
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: Sequence[KpiProgress] = ()
        self._read_at: float | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        # Names only: registering must not read the database.
        return kpi_families(())

    def collect(self) -> list[GaugeMetricFamily]:
        return kpi_families(self.rows())

    def rows(self) -> Sequence[KpiProgress]:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._ttl_s:
                try:
                    self._rows = self._compute()
                except (SQLAlchemyError, KpiError, OSError):
                    log.exception("KPI gauges: cannot read the KPIs; the last figures stay")
                self._read_at = now
            return self._rows


def catalog_kpis(
    sessions: Callable[[], Session],
    kpi_dir: Path,
    *,
    today: Callable[[], date],
    by_department: bool,
) -> Callable[[], list[KpiProgress]]:
    """What ``KpiCollector`` computes in the publish service: the KPI files as the API reads them (an
    edited file shows at the next computation) and the catalog's records."""

    def compute() -> list[KpiProgress]:
        kpis = current_kpis(kpi_dir)
        with sessions() as session:
            return read_progress(session, kpis, today=today(), by_department=by_department)

    return compute


def register_kpi_gauges(
    registry: CollectorRegistry,
    sessions: Callable[[], Session],
    settings: Settings,
    *,
    today: Callable[[], date] = today_in_japan,
) -> KpiCollector:
    """The KPI gauges of the publish service on ``registry``, as ``settings`` configure them."""
    compute = catalog_kpis(
        sessions, settings.kpi_dir, today=today, by_department=settings.publish_kpi_department_metrics
    )
    collector = KpiCollector(compute, ttl_s=settings.publish_kpi_metrics_ttl_s)
    registry.register(collector)
    return collector
