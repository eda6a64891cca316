"""The DX plan's KPIs: definitions from kpis/*.json, pure progress computation, reading the catalog."""

from cityos.domain.kpi.definitions import Aggregation, KpiDefinition, KpiError, fiscal_year, load_kpis
from cityos.domain.kpi.progress import KpiProgress, KpiValue, compute_progress
from cityos.domain.kpi.reading import kpi_departments, kpi_progress

__all__ = [
    "Aggregation",
    "KpiDefinition",
    "KpiError",
    "KpiProgress",
    "KpiValue",
    "compute_progress",
    "fiscal_year",
    "kpi_departments",
    "kpi_progress",
    "load_kpis",
]
