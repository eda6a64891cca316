"""The DX plan's KPIs on the catalog site: ``/kpi`` (``/en/kpi``) for everyone, and
``/kpi/departments/{id}`` (``/en/...``) for that department's own credential.

The figures are ``cityos.domain.kpi``'s, the same that ``GET /api/v1/kpis`` and publish's ``/metrics``
give. Each KPI shows its baseline, target, latest value, progress and whether it is on track, then its
monthly and fiscal-year series as an inline SVG chart with the trajectory drawn in, and the same
numbers as a table: the page reads without JavaScript and fetches nothing after it loads.

A department's own figures are shown only to a caller signed in as that department (the site's login
cookie, or its key in a header). Anyone else, and any id that names no department, gets the same
"not found" page: the answer never tells whether a department exists.
"""

# No ``from __future__ import annotations`` here: FastAPI reads handler annotations at runtime.

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.kpi.definitions import KpiDefinition, today_in_japan
from cityos.domain.kpi.progress import KpiProgress, KpiValue
from cityos.domain.kpi.reading import kpi_progress
from cityos.kernel.db.models import Department
from services.publish import render as api_render
from services.publish.context import caller_of, context_of, visible_dataset
from services.publish.kpi_api import current_kpis
from services.publish.site.kpi_chart import Chart, chart
from services.publish.site.templating import Lang, department_of, render, site_path

router = APIRouter(include_in_schema=False)

TEMPLATE: Final = "kpi.html"
# The open dataset that carries the KPI series, linked from the page when the caller may read it.
KPI_DATASET: Final = "dx-kpi"

WORDS: Final[dict[str, dict[Lang, str]]] = {
    "title": {"ja": "DX推進計画の KPI", "en": "DX plan KPIs"},
    "title.department": {"ja": "{department}の KPI", "en": "KPIs of the {department}"},
    "lead": {
        "ja": "DX推進計画の指標ごとに、基準値から目標値までの進み具合を示します。"
        "計画線は、基準年度の値から目標年度の値までを直線で結んだ、各時点で達しているべき値です。",
        "en": "How far each indicator of the DX plan has come from its baseline toward its target. "
        "The trajectory is the straight line from the baseline year's value to the target year's: "
        "where the value should be at each point in time.",
    },
    "lead.department": {
        "ja": "この部局のデータから計算した値です。市全体の値は KPI の一覧ページにあります。",
        "en": "Computed from this department's own records. The city's figures are on the KPI page.",
    },
    "as_of": {"ja": "{day} 時点", "en": "As of {day}"},
    "city_page": {"ja": "市全体の KPI", "en": "The city's KPIs"},
    "own_page": {"ja": "自部局の KPI を見る", "en": "Your department's KPIs"},
    "dataset": {"ja": "データセット「{title}」", "en": "Dataset: {title}"},
    "dataset_csv": {"ja": "CSV でダウンロード", "en": "Download as CSV"},
    "summary": {"ja": "一覧", "en": "Summary"},
    "summary.caption": {"ja": "KPI の一覧（{as_of}）", "en": "KPIs at a glance ({as_of})"},
    "col.kpi": {"ja": "KPI", "en": "KPI"},
    "col.unit": {"ja": "単位", "en": "Unit"},
    "col.baseline": {"ja": "基準値", "en": "Baseline"},
    "col.target": {"ja": "目標値（期限）", "en": "Target (due)"},
    "col.latest": {"ja": "最新値", "en": "Latest"},
    "col.progress": {"ja": "進捗", "en": "Progress"},
    "col.status": {"ja": "計画線との比較", "en": "Against the trajectory"},
    "col.period": {"ja": "期間", "en": "Period"},
    "col.value": {"ja": "実績", "en": "Value"},
    "col.trajectory": {"ja": "計画線", "en": "Trajectory"},
    "fy": {"ja": "{year}年度", "en": "FY{year}"},
    "fy_value": {"ja": "{year}年度：{value}", "en": "FY{year}: {value}"},
    "period_value": {"ja": "{period}：{value}", "en": "{period}: {value}"},
    "direction.decrease": {"ja": "減らす指標", "en": "Lower is better"},
    "direction.increase": {"ja": "増やす指標", "en": "Higher is better"},
    "owner": {"ja": "所管", "en": "Owner"},
    "source": {"ja": "元データ", "en": "Source data"},
    "status.on": {"ja": "計画どおり", "en": "On track"},
    "status.behind": {"ja": "計画より遅れ", "en": "Behind"},
    "status.unknown": {"ja": "判定できません", "en": "Not known yet"},
    "progress_of": {"ja": "{name}の進捗", "en": "Progress of {name}"},
    "no_data": {"ja": "データがありません", "en": "No data yet"},
    "none": {"ja": "—", "en": "—"},
    "computed": {"ja": "（実績から計算）", "en": "(computed from the records)"},
    "monthly": {"ja": "月ごとの推移", "en": "By month"},
    "fiscal_years": {"ja": "年度ごとの推移", "en": "By fiscal year"},
    "chart.monthly": {
        "ja": "{name}の月ごとの実績（実線）と計画線（破線）",
        "en": "{name} by month: values (solid) and trajectory (dashed)",
    },
    "chart.fiscal_years": {
        "ja": "{name}の年度ごとの実績（棒）と計画線（破線）",
        "en": "{name} by fiscal year: values (bars) and trajectory (dashed)",
    },
    "chart.desc": {
        "ja": "{first} から {last} まで。最新値 {latest}、計画線 {trajectory}。数値は下の表にあります。",
        "en": "From {first} to {last}. Latest {latest}, trajectory {trajectory}. The numbers are in the table below.",
    },
    "chart.empty": {"ja": "表示できる値がまだありません。", "en": "Nothing to draw yet."},
    "legend.value": {"ja": "実績", "en": "Value"},
    "legend.trajectory": {"ja": "計画線", "en": "Trajectory"},
    "table.monthly": {"ja": "{name}：月ごとの実績と計画線", "en": "{name}: values and trajectory by month"},
    "table.fiscal_years": {
        "ja": "{name}：年度ごとの実績と計画線",
        "en": "{name}: values and trajectory by fiscal year",
    },
    "table.show": {"ja": "月ごとの数値を表で見る", "en": "Show the monthly numbers as a table"},
    "partial": {"ja": "（年度途中）", "en": " (year to date)"},
    "not_found.title": {"ja": "ページが見つかりません", "en": "Page not found"},
    "not_found.body": {
        "ja": "お探しのページは見つかりませんでした。部局別の KPI は、その部局としてログインしたときに表示されます。",
        "en": "The page was not found. A department's KPIs are shown when you are logged in as that department.",
    },
}


def word(key: str, lang: Lang, **values: Any) -> str:
    text = WORDS[key][lang]
    return text.format(**values) if values else text


# --- what the template shows ---------------------------------------------------------------------


def format_number(kpi: KpiDefinition, value: float) -> str:
    """A KPI value as the page prints it: a sum in whole units with separators, a rate to 0.1."""
    if kpi.is_sum:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def with_unit(kpi: KpiDefinition, value: float | None, lang: Lang) -> str:
    if value is None or not math.isfinite(value):
        return word("none", lang)
    unit = kpi.unit_ja if lang == "ja" else kpi.unit_en
    number = format_number(kpi, value)
    return f"{number}{unit}" if unit == "%" or lang == "ja" else f"{number} {unit}"


def period_label(period: str, lang: Lang) -> str:
    """``FY2024`` as 2024年度 / FY2024; a month ``2024-04`` as it is."""
    if period.startswith("FY"):
        return word("fy", lang, year=period[2:])
    return period


@dataclass(frozen=True, slots=True)
class Row:
    """One period of a series as the table prints it; ``value``/``trajectory`` are the raw numbers."""

    period: str
    label: str
    value: float | None
    value_text: str
    trajectory: float | None
    trajectory_text: str
    partial: bool


@dataclass(frozen=True, slots=True)
class KpiView:
    id: str
    anchor: str
    name: str
    unit: str
    description: str
    direction: str
    owner: str
    source_dataset: str
    source_href: str | None  # the source dataset's page, when the caller may read it
    baseline_year: str
    baseline: float | None
    baseline_text: str
    baseline_computed: bool
    target_year: str
    target: float | None
    target_text: str
    latest_period: str | None
    latest_label: str
    latest: float | None
    latest_text: str
    latest_trajectory_text: str
    progress: float | None
    progress_text: str
    status: str  # on | behind | unknown
    status_text: str
    has_data: bool
    monthly: list[Row]
    fiscal_years: list[Row]
    monthly_chart: Chart
    fiscal_chart: Chart
    monthly_title: str
    fiscal_title: str
    monthly_desc: str
    fiscal_desc: str


def _rows(kpi: KpiDefinition, series: Sequence[KpiValue], lang: Lang, *, partial_last: bool) -> list[Row]:
    last = len(series) - 1
    return [
        Row(
            period=v.period,
            label=period_label(v.period, lang),
            value=v.value,
            value_text=with_unit(kpi, v.value, lang),
            trajectory=v.trajectory,
            trajectory_text=with_unit(kpi, v.trajectory, lang),
            partial=partial_last and i == last,
        )
        for i, v in enumerate(series)
    ]


def _desc(kpi: KpiDefinition, series: Sequence[KpiValue], lang: Lang) -> str:
    if not series:
        return word("chart.empty", lang)
    known = [v for v in series if v.value is not None]
    if not known:
        return word("chart.empty", lang)
    latest = known[-1]
    return word(
        "chart.desc",
        lang,
        first=period_label(series[0].period, lang),
        last=period_label(series[-1].period, lang),
        latest=word(
            "period_value",
            lang,
            period=period_label(latest.period, lang),
            value=with_unit(kpi, latest.value, lang),
        ),
        trajectory=with_unit(kpi, latest.trajectory, lang),
    )


def _tick_label(kpi: KpiDefinition) -> Callable[[float], str]:
    def label(value: float) -> str:
        if value >= 1_000_000:
            return f"{value / 1_000_000:g}M"
        return f"{value:,.0f}" if kpi.is_sum or value >= 10 or value == 0 else f"{value:g}"

    return label


def _april(_: int, period: str) -> bool:
    return period.endswith("-04")


def kpi_view(
    progress: KpiProgress,
    lang: Lang,
    *,
    department_names: dict[str, str],
    readable: Callable[[str], bool],
) -> KpiView:
    kpi = progress.kpi
    name = kpi.name_ja if lang == "ja" else kpi.name_en
    latest = progress.latest
    status = "unknown" if progress.on_track is None else "on" if progress.on_track else "behind"
    has_data = any(v.value is not None for v in progress.monthly)
    source_href = (
        site_path(lang, "/datasets/" + quote(kpi.source_dataset, safe=""))
        if readable(kpi.source_dataset)
        else None
    )
    return KpiView(
        id=kpi.id,
        anchor="kpi-" + kpi.id,
        name=name,
        unit=kpi.unit_ja if lang == "ja" else kpi.unit_en,
        description=kpi.description_ja if lang == "ja" else kpi.description_en,
        direction=word("direction." + kpi.direction, lang),
        owner=department_names.get(kpi.owner_department, kpi.owner_department),
        source_dataset=kpi.source_dataset,
        source_href=source_href,
        baseline_year=word("fy", lang, year=kpi.baseline_fiscal_year),
        baseline=progress.baseline_value,
        baseline_text=with_unit(kpi, progress.baseline_value, lang),
        baseline_computed=kpi.baseline_value is None or progress.department is not None,
        target_year=word("fy", lang, year=kpi.target_fiscal_year),
        target=progress.target_value,
        target_text=with_unit(kpi, progress.target_value, lang),
        latest_period=latest.period if latest is not None else None,
        latest_label=period_label(latest.period, lang) if latest is not None else word("none", lang),
        latest=latest.value if latest is not None else None,
        latest_text=with_unit(kpi, latest.value if latest is not None else None, lang),
        latest_trajectory_text=with_unit(kpi, latest.trajectory if latest is not None else None, lang),
        progress=progress.progress,
        progress_text=f"{progress.progress:.0%}" if progress.progress is not None else word("none", lang),
        status=status,
        status_text=word("status." + status, lang),
        has_data=has_data,
        monthly=_rows(kpi, progress.monthly, lang, partial_last=False),
        fiscal_years=_rows(kpi, progress.fiscal_years, lang, partial_last=True),
        monthly_chart=chart(
            progress.monthly,
            "line",
            tick_label=_tick_label(kpi),
            period_label=lambda p: period_label(p, lang),
            label_every=_april,
        ),
        fiscal_chart=chart(
            progress.fiscal_years,
            "bars",
            tick_label=_tick_label(kpi),
            period_label=lambda p: period_label(p, lang),
        ),
        monthly_title=word("chart.monthly", lang, name=name),
        fiscal_title=word("chart.fiscal_years", lang, name=name),
        monthly_desc=_desc(kpi, progress.monthly, lang),
        fiscal_desc=_desc(kpi, progress.fiscal_years, lang),
    )


# --- handlers ------------------------------------------------------------------------------------


def _not_found(request: Request, lang: Lang) -> Response:
    # One page for an unknown department and for a department the caller is not: nothing tells
    # them apart.
    context = {"w": _words(lang), "not_found": True}
    return render(
        request, TEMPLATE, context, lang=lang, status_code=404, headers={"Cache-Control": "no-store"}
    )


def _words(lang: Lang) -> Callable[..., str]:
    def lookup(key: str, **values: Any) -> str:
        return word(key, lang, **values)

    return lookup


def _readable(request: Request, session: Session) -> Callable[[str], bool]:
    caller = caller_of(request)
    seen: dict[str, bool] = {}

    def readable(dataset_id: str) -> bool:
        if dataset_id not in seen:
            try:
                visible_dataset(session, caller, dataset_id)
                seen[dataset_id] = True
            except HTTPException:
                seen[dataset_id] = False
        return seen[dataset_id]

    return readable


def _dataset_links(request: Request, session: Session, lang: Lang) -> dict[str, str] | None:
    """The open KPI dataset's page and CSV, when the caller may read it (it is public unless the
    city decides otherwise)."""
    try:
        dataset, _ = visible_dataset(session, caller_of(request), KPI_DATASET)
    except HTTPException:
        return None
    title = (dataset.title_ja if lang == "ja" else dataset.title_en) or dataset.title_ja or dataset.id
    return {
        "title": title,
        "href": site_path(lang, "/datasets/" + quote(dataset.id, safe="")),
        "csv": f"{api_render.dataset_path(dataset.id)}/export?format=csv",
    }


def kpi_page(request: Request, lang: Lang, department: str | None = None) -> Response:
    ctx = context_of(request)
    own = department_of(caller_of(request))
    if department is not None and department != own:
        return _not_found(request, lang)
    today = today_in_japan()
    with ctx.sessions() as session:
        departments = {d.id: d for d in session.scalars(select(Department))}
        if department is not None and department not in departments:
            return _not_found(request, lang)
        names = {d.id: d.name_ja if lang == "ja" else d.name_en for d in departments.values()}
        readable = _readable(request, session)
        progress = kpi_progress(
            session, current_kpis(ctx.settings.kpi_dir), today=today, department=department
        )
        views = [kpi_view(p, lang, department_names=names, readable=readable) for p in progress]
        dataset = _dataset_links(request, session, lang)
    as_of = today.isoformat()
    context = {
        "w": _words(lang),
        "not_found": False,
        "view_department": department,
        "view_department_name": names.get(department, "") if department else "",
        "own_href": site_path(lang, "/kpi/departments/" + quote(own, safe=""))
        if own is not None and own in departments and department is None
        else None,
        "city_href": site_path(lang, "/kpi"),
        "as_of": as_of,
        "kpis": views,
        "dataset": dataset,
    }
    return render(request, TEMPLATE, context, lang=lang)


@router.get("/kpi")
def kpi_ja(request: Request) -> Response:
    return kpi_page(request, "ja")


@router.get("/en/kpi")
def kpi_en(request: Request) -> Response:
    return kpi_page(request, "en")


@router.get("/kpi/departments/{department_id}")
def kpi_department_ja(request: Request, department_id: str) -> Response:
    return kpi_page(request, "ja", department_id)


@router.get("/en/kpi/departments/{department_id}")
def kpi_department_en(request: Request, department_id: str) -> Response:
    return kpi_page(request, "en", department_id)
