"""``cityos kpi list|publish``: the DX plan's KPIs from the catalog, printed or published as open data.

``publish`` computes every KPI's city-wide series (months and fiscal years) from the catalog's records
and sends them as events of the public dataset ``dx-kpi``, as its department would, through the same
outbox and checks as every department's data. An event's id is made of the record's content, so
publishing again with nothing changed is ignored by the catalog; a changed figure is a new event that
updates its record. A record of a KPI that no longer exists is deleted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from cityos.kernel.errors import CityOSError
from cityos.kernel.settings import get_settings

if TYPE_CHECKING:
    from cityos.cli.records import Event
    from cityos.domain.kpi.progress import KpiProgress
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


def content_id(record: dict[str, Any]) -> str:
    """A digest of the record: the same figures, the same event id."""
    return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def publication_events(
    schema_set: SchemaSet, settings: Settings, progress: list[KpiProgress], *, stale_keys: list[str], run: str
) -> Iterator[Event]:
    """Upserts of every KPI record (ids from their content), deletions of records no KPI makes any more."""
    from cityos.department.outbox import deletion_events, upsert_events
    from cityos.domain.kpi.publication import DATASET_ID, kpi_records

    for row in progress:
        for record in kpi_records(row):
            yield from upsert_events(
                schema_set,
                settings,
                DATASET_ID,
                [record],
                origin="kpi",
                id_prefix=f"kpi-{content_id(record)}",
            )
    if stale_keys:
        yield from deletion_events(
            schema_set, settings, DATASET_ID, stale_keys, origin="kpi", id_prefix=f"kpi-delete-{run}"
        )


def _published_keys() -> set[str]:
    from cityos.cli.db import cli_session
    from cityos.domain.kpi.publication import DATASET_ID
    from cityos.domain.kpi.reading import source_records

    with cli_session() as session:
        return {str(data["ID"]) for data in source_records(session, DATASET_ID) if "ID" in data}


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
    from cityos.cli.records import print_report, report_failed, run_id, send_events
    from cityos.domain.kpi.definitions import today_in_japan
    from cityos.domain.kpi.publication import kpi_records
    from cityos.kernel.schemas import load_schema_dir

    settings = get_settings()
    try:
        schema_set = load_schema_dir(settings.schemas_dir)
        progress = _progress(today_in_japan(), None)
        wanted = {str(record["ID"]) for row in progress for record in kpi_records(row)}
        stale = sorted(_published_keys() - wanted)
        events = publication_events(schema_set, settings, progress, stale_keys=stale, run=run_id())
        report = send_events(events, settings, wait_s=wait)
    except CityOSError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    print_report(report, what=("KPI events", "KPIイベント"), waited=wait > 0, list_each=False)
    if report_failed(report, waited=wait > 0):
        raise typer.Exit(1)
