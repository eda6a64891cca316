"""``cityos kpi list|publish``: the DX plan's KPIs from the catalog, printed or published as open data.

``publish`` computes every KPI's city-wide series (months and fiscal years) from the catalog's records
and sends what differs from the published ``dx-kpi`` records as that dataset's events, as its department
would, through the same outbox and checks as every department's data. Publishing again with nothing
changed sends nothing; event ids come from the content (``publication_plan``), so a repeat before the
catalog caught up is ignored. A record of a KPI that no longer exists is deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cityos.kernel.errors import CityOSError
from cityos.kernel.settings import get_settings

if TYPE_CHECKING:
    from cityos.cli.records import Event
    from cityos.domain.kpi.progress import KpiProgress
    from cityos.domain.kpi.publication import PublicationPlan
    from cityos.kernel.schemas import SchemaSet
    from cityos.kernel.settings import Settings

console = Console(stderr=True)
kpi_app = typer.Typer(
    help="The DX plan's KPIs: progress, and their publication as open data.", no_args_is_help=True
)


def _progress(today: date, department: str | None) -> list[KpiProgress]:
    from cityos.cli.db import cli_session
    from cityos.domain.kpi.definitions import load_kpis
    from cityos.domain.kpi.reading import kpi_progress

    kpis = load_kpis(get_settings().kpi_dir)
    with cli_session() as session:
        return kpi_progress(session, kpis, today=today, department=department)


def _share(progress: float | None) -> str:
    return "-" if progress is None else f"{progress:.0%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


@kpi_app.command("list")
def list_kpis(
    department: Annotated[
        str | None, typer.Option(help="one department's figures instead of the city's")
    ] = None,
) -> None:
    """Each KPI's latest value, baseline, target, progress and whether it is on track."""
    from cityos.domain.kpi.definitions import today_in_japan

    today = today_in_japan()
    try:
        rows = _progress(today, department)
    except CityOSError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    table = Table(title=f"KPI {department or 'city / 市全体'} ({today.isoformat()})")
    for column in ("KPI", "指標", "latest", "value", "baseline", "target", "progress", "on track"):
        table.add_column(column)
    for row in rows:
        latest = row.latest
        table.add_row(
            row.kpi.id,
            row.kpi.name_ja,
            latest.period if latest else "-",
            f"{_number(latest.value if latest else None)} {row.kpi.unit_en}",
            _number(row.baseline_value),
            f"{_number(row.target_value)} (FY{row.kpi.target_fiscal_year})",
            _share(row.progress),
            {True: "yes / 順調", False: "no / 遅れ", None: "-"}[row.on_track],
        )
    Console().print(table)


def publication_events(schema_set: SchemaSet, settings: Settings, plan: PublicationPlan) -> Iterator[Event]:
    """The plan's upserts and deletions as the digital office's events on its topic."""
    from cityos.department.outbox import deletion_events, upsert_events
    from cityos.domain.kpi.publication import DATASET_ID

    for id_prefix, record in plan.upserts:
        yield from upsert_events(
            schema_set, settings, DATASET_ID, [record], origin="kpi", id_prefix=id_prefix
        )
    for id_prefix, key in plan.deletions:
        yield from deletion_events(schema_set, settings, DATASET_ID, [key], origin="kpi", id_prefix=id_prefix)


def _plan(today: date) -> PublicationPlan:
    from cityos.cli.db import cli_session
    from cityos.domain.kpi.definitions import load_kpis
    from cityos.domain.kpi.publication import DATASET_ID, kpi_records, publication_plan
    from cityos.domain.kpi.reading import kpi_progress, published_records

    kpis = load_kpis(get_settings().kpi_dir)
    with cli_session() as session:
        wanted = [record for row in kpi_progress(session, kpis, today=today) for record in kpi_records(row)]
        return publication_plan(wanted, published_records(session, DATASET_ID))


SETTLED_S = 3.0  # the sources unchanged this long: the catalog has applied what was sent


def wait_until_settled(timeout_s: float) -> bool:
    """Wait until the KPI source datasets have records and stopped changing for ``SETTLED_S``
    (right after `cityos demo`, the catalog is still applying it); False at the timeout."""
    from cityos.cli.db import cli_session
    from cityos.domain.kpi.definitions import load_kpis
    from cityos.domain.kpi.reading import sources_state

    kpis = load_kpis(get_settings().kpi_dir)
    deadline = time.monotonic() + timeout_s
    last: dict[str, tuple[int, str]] | None = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        with cli_session() as session:
            state = sources_state(session, kpis)
        if state != last:
            last, stable_since = state, time.monotonic()
        elif all(count > 0 for count, _ in state.values()) and time.monotonic() - stable_since >= SETTLED_S:
            return True
        time.sleep(0.5)
    return False


@kpi_app.command("publish")
def publish(
    wait: Annotated[float, typer.Option(help="seconds to wait for ingest's verdict (0: don't)")] = 60,
    settle: Annotated[
        float,
        typer.Option(
            help="seconds to wait first for the catalog to finish applying the source datasets (0: don't)"
        ),
    ] = 0,
) -> None:
    """Publish every KPI's city-wide series into the public dataset dx-kpi (idempotent)."""
    if settle > 0 and not wait_until_settled(settle):
        console.print("[yellow]the source datasets were still changing / 元データの反映が続いています[/]")
    from cityos.cli.records import print_report, report_failed, send_events
    from cityos.domain.kpi.definitions import today_in_japan
    from cityos.kernel.schemas import load_schema_dir

    settings = get_settings()
    try:
        schema_set = load_schema_dir(settings.schemas_dir)
        plan = _plan(today_in_japan())
        console.print(
            f"{len(plan.upserts)} KPI records new or changed, {len(plan.deletions)} to delete / "
            f"新規・変更 {len(plan.upserts)}件、削除 {len(plan.deletions)}件"
        )
        report = send_events(publication_events(schema_set, settings, plan), settings, wait_s=wait)
    except CityOSError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    print_report(report, what=("KPI events", "KPIイベント"), waited=wait > 0, list_each=False)
    if report_failed(report, waited=wait > 0):
        raise typer.Exit(1)
