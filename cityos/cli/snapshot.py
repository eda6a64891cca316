"""``cityos snapshot write``: analysis-ready Parquet snapshots of the catalog's datasets.

Writes ``<out>/dataset=<id>/date=<YYYY-MM-DD>/part-0.parquet`` for each dataset (every dataset
when none is named, whatever its classification: the folder is the city's own analysis store, not
open data), with a progress line per dataset and a summary of rows, bytes and MB/s.
"""

from __future__ import annotations

from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cityos.cli.progress import progress_bar
from cityos.kernel.settings import get_settings

if TYPE_CHECKING:  # the CLI imports its commands' modules lazily, to start fast
    from cityos.domain.analysis.snapshots import SnapshotResult

console = Console(stderr=True)
snapshot_app = typer.Typer(
    help="Analysis-ready snapshots (Parquet, Hive layout) of the catalog's datasets.", no_args_is_help=True
)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"expected a date YYYY-MM-DD, not {text!r}", param_hint="--as-of") from exc


@snapshot_app.command("write")
def write(
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="A dataset id; repeat for several. Default: every one."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="YYYY-MM-DD: the records as they stood at the end of that day (JST)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Root folder of the snapshots (default: CITYOS_SNAPSHOT_DIR)."),
    ] = None,
) -> None:
    """Write each dataset's snapshot: the current records under today's date (Japan), or with
    --as-of the records at the end of that day."""
    from sqlalchemy.orm import Session

    from cityos.domain.analysis.snapshots import (
        SnapshotError,
        dataset_ids,
        file_property_order,
        write_snapshot,
    )
    from cityos.kernel.db.engine import make_engine
    from cityos.kernel.db.models import Dataset

    settings = get_settings()
    day = _day(as_of)
    root = out if out is not None else settings.snapshot_dir
    order = file_property_order(settings.schemas_dir)
    engine = make_engine(settings.database_url)
    results: list[SnapshotResult] = []
    failed: list[tuple[str, str]] = []
    try:
        with Session(engine) as session:
            wanted = list(dataset) if dataset else dataset_ids(session)
            progress = progress_bar(console)
            with progress:
                for dataset_id in wanted:
                    known = session.get(Dataset, dataset_id)
                    total = known.record_count if known is not None and day is None else None
                    task = progress.add_task(dataset_id, total=total)
                    try:
                        result = write_snapshot(
                            session,
                            dataset_id=dataset_id,
                            root=root,
                            as_of=day,
                            on_rows=partial(progress.advance, task),
                            property_order=order,
                        )
                    except SnapshotError as exc:
                        failed.append((dataset_id, str(exc)))
                        progress.update(task, description=f"{dataset_id} [red]failed[/]")
                    else:
                        results.append(result)
                        progress.update(task, total=result.rows, completed=result.rows)
                    # Each dataset's read is a transaction of its own: a long run holds no old snapshot.
                    session.rollback()
    finally:
        engine.dispose()
    _print_summary(results, root)
    for result in results:
        if result.outside_schema:
            console.print(
                f"[yellow]{result.dataset_id}:[/] {result.outside_schema} stored values did not fit their "
                "columns (records that escaped the schema) and were written as null; the file's "
                "cityos.outside_schema metadata names the columns"
            )
    for dataset_id, reason in failed:
        console.print(f"[red]{dataset_id}:[/] {reason}")
    if failed:
        raise typer.Exit(1)


def _print_summary(results: list[SnapshotResult], root: Path) -> None:
    table = Table(title=f"snapshots in {root}")
    for column in ("dataset", "date", "rows", "bytes", "seconds", "MB/s"):
        table.add_column(column, justify="left" if column in ("dataset", "date") else "right")
    rows = size = 0
    seconds = 0.0
    for result in results:
        rows, size, seconds = rows + result.rows, size + result.bytes, seconds + result.seconds
        table.add_row(
            result.dataset_id,
            result.day.isoformat(),
            f"{result.rows:,}",
            f"{result.bytes:,}",
            f"{result.seconds:.2f}",
            f"{result.mb_per_s:.1f}",
        )
    if len(results) > 1:
        table.add_row(
            "total",
            "",
            f"{rows:,}",
            f"{size:,}",
            f"{seconds:.2f}",
            f"{size / 1e6 / seconds if seconds else 0:.1f}",
        )
    Console().print(table)
