"""The ``cityos`` command: run services, import CSVs, produce demo events, migrate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cityos.cli import access as access_commands
from cityos.cli import dlq as dlq_commands
from cityos.cli import geo as geo_commands
from cityos.cli import kafka as kafka_commands
from cityos.cli import keys as keys_commands
from cityos.cli import kpi as kpi_commands
from cityos.cli import records as records_commands
from cityos.cli import release as release_commands
from cityos.cli import schemas as schemas_commands
from cityos.cli import snapshot as snapshot_commands
from cityos.cli import workspace as workspace_commands
from cityos.cli.progress import progress_bar
from cityos.kernel.errors import CityOSError
from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.settings import get_settings

if TYPE_CHECKING:  # the CLI imports its subcommands' modules lazily, to start fast
    from cityos.department.importer import ImportSummary

app = typer.Typer(help="CityOS Connector: department events to open data.", no_args_is_help=True)
console = Console(stderr=True)


class ServiceName(StrEnum):
    ingest = "ingest"
    catalog = "catalog"
    publish = "publish"
    feeds = "feeds"
    ingest_http = "ingest-http"  # CloudEvents over HTTP
    analysis = "analysis"  # Parquet snapshots of every dataset, on a schedule


@app.command()
def serve(service: ServiceName) -> None:
    """Run one service in the foreground until SIGTERM/SIGINT."""
    settings = get_settings()
    if service is ServiceName.ingest:
        from services.ingest.main import serve as run
    elif service is ServiceName.catalog:
        from services.catalog.main import serve as run
    elif service is ServiceName.feeds:
        from services.feeds.main import serve as run
    elif service is ServiceName.ingest_http:
        from services.ingest.http_main import serve as run
    elif service is ServiceName.analysis:
        from services.analysis.main import serve as run
    else:
        from services.publish.main import serve as run
    run(settings)


@app.command()
def migrate() -> None:
    """Apply database migrations to CITYOS_DATABASE_URL."""
    from cityos.kernel.db.engine import migrate as run_migrations

    run_migrations(get_settings().database_url)
    console.print("[green]database is at the latest revision[/]")


@app.command("import-csv")
def import_csv(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV file")],
    dataset: Annotated[str, typer.Option(help="dataset id, e.g. aed")],
    wait: Annotated[
        float, typer.Option(help="seconds to wait for ingest's verdict on every row (0: don't)")
    ] = 60,
    show_rejected: Annotated[int, typer.Option(help="how many rejected rows to list")] = 20,
    json_summary: Annotated[
        Path | None, typer.Option(help="also write the summary as JSON to this file")
    ] = None,
    lg_codes: Annotated[
        Path | None,
        typer.Option(
            help="national list of 全国地方公共団体コード (CSV with an lgcode column): every code must be on it"
        ),
    ] = None,
) -> None:
    """Send every row of a standard CSV (CP932 or UTF-8, BOM or not) as events, then report."""
    from cityos.department.importer import ImportSummary, csv_events
    from cityos.department.lgcode import read_code_list
    from cityos.department.outbox import STRUCTURED_HEADERS, EventSender
    from cityos.department.outcomes import OutcomeWatcher, SentRows
    from cityos.kernel.schemas import load_schema_dir

    settings = get_settings()
    try:
        schema_set = load_schema_dir(settings.schemas_dir)
        meta = schema_set.datasets.get(dataset)
        if meta is None:
            raise typer.BadParameter(
                f"unknown dataset {dataset!r}; known: {', '.join(sorted(schema_set.datasets))}"
            )
        version = schema_set.latest(dataset)
        known_codes = read_code_list(lg_codes) if lg_codes is not None else None
        kafka = kafka_access(settings, Principal.cli)  # one credential read for both clients
        watcher = (
            OutcomeWatcher(kafka, [settings.validated_topic, settings.deadletter_topic]) if wait > 0 else None
        )
        sender = EventSender(kafka)
        topic = settings.department_topic(meta.department)
        summary = ImportSummary()
        with progress_bar(console) as progress:
            sending = progress.add_task(f"sending {file.name} → {topic}", total=None)
            events = csv_events(file, meta=meta, version=version, summary=summary, known_codes=known_codes)
            for event in events:
                sender.send(
                    topic, key=event.key, value=event.value, headers=STRUCTURED_HEADERS, track=event.event_id
                )
                summary.rows_sent += 1
                progress.update(sending, completed=summary.rows_sent)
            sender.flush()
            progress.update(sending, total=summary.rows_sent)
            if watcher is not None and summary.rows_sent:
                checking = progress.add_task("waiting for ingest's verdict", total=summary.rows_sent)
                summary.outcomes = watcher.wait(
                    set(summary.lines_by_event),
                    timeout_s=wait,
                    on_progress=lambda n: progress.update(checking, completed=n),
                    sent=SentRows(
                        positions=sender.positions,
                        ingest_group=settings.ingest_group,
                        deadletter_topic=settings.deadletter_topic,
                        event_time=summary.event_time or datetime.now(UTC),
                    ),
                )
    except CityOSError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    _print_summary(summary, waited=wait > 0, show_rejected=show_rejected)
    if json_summary is not None:
        json_summary.write_text(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    if summary.local_errors or summary.rows_deadlettered or (wait > 0 and summary.rows_undecided):
        raise typer.Exit(1)


def _print_summary(summary: ImportSummary, *, waited: bool, show_rejected: int) -> None:
    table = Table(title="import summary", show_header=False)
    table.add_row("rows read", str(summary.rows_read))
    table.add_row("rows sent", str(summary.rows_sent))
    table.add_row("rows refused before sending", str(len(summary.local_errors)))
    if waited:
        table.add_row("rows accepted (validated)", str(summary.rows_valid))
        table.add_row("rows dead-lettered", str(summary.rows_deadlettered))
        table.add_row("rows without a verdict yet", str(summary.rows_undecided))
        for reason, count in summary.reasons().most_common():
            table.add_row(f"  reason {reason}", str(count))
    console.print(table)
    print_plain(console, summary.rejected_lines(limit=show_rejected))


def print_plain(out: Console, lines: list[str]) -> None:
    """Print lines as they are: no markup (a cell may hold ``[``), and never wrapped, so that a piped
    summary keeps one message per line for grep and spreadsheets."""
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def demo(
    per_dataset: Annotated[int, typer.Option(help="records per dataset")] = 25,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same events)")] = 2026,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset", help="delete what the demo with this seed and size wrote (start clean) instead"
        ),
    ] = False,
    fresh_ids: Annotated[
        bool,
        typer.Option(
            "--fresh-ids",
            help="new event ids, to load the demo again after --reset (the catalog ignores events it has seen)",
        ),
    ] = False,
    wait: Annotated[float, typer.Option(help="seconds to wait for ingest's verdict (0: don't)")] = 0,
) -> None:
    """Produce synthetic demo events for every dataset (never real people), or remove them (--reset)."""
    from cityos.cli.records import print_report, report_failed, run_id, send_events
    from cityos.department.demo import demo_events, demo_reset_events
    from cityos.kernel.schemas import load_schema_dir

    settings = get_settings()
    schema_set = load_schema_dir(settings.schemas_dir)
    if reset:
        events = demo_reset_events(schema_set, settings, per_dataset=per_dataset, seed=seed, run=run_id())
        what = ("demo deletion events", "デモ削除イベント")
    else:
        run = run_id() if fresh_ids else ""
        events = demo_events(schema_set, settings, per_dataset=per_dataset, seed=seed, run=run)
        what = ("demo events", "デモイベント")
    try:
        report = send_events(events, settings, wait_s=wait)
    except CityOSError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    print_report(report, what=what, waited=wait > 0, list_each=False)
    if report_failed(report, waited=wait > 0):
        raise typer.Exit(1)


app.add_typer(access_commands.grants_app, name="grants")
app.add_typer(access_commands.subscriptions_app, name="subscriptions")
app.add_typer(access_commands.audit_app, name="audit")
app.add_typer(access_commands.departments_app, name="departments")
app.add_typer(access_commands.feeds_app, name="feeds")
app.add_typer(kafka_commands.kafka_app, name="kafka")

app.add_typer(schemas_commands.schemas_app, name="schemas")
app.add_typer(dlq_commands.dlq_app, name="dlq")

app.add_typer(release_commands.app, name="release")

app.add_typer(keys_commands.keys_app, name="keys")
app.add_typer(keys_commands.admins_app, name="admins")

app.add_typer(records_commands.records_app, name="records")
app.add_typer(geo_commands.geo_app, name="geo")
app.add_typer(kpi_commands.kpi_app, name="kpi")
app.add_typer(workspace_commands.workspace_app, name="workspace")
app.add_typer(snapshot_commands.snapshot_app, name="snapshot")


def main() -> None:
    app()
