"""``cityos workspace build``: a department's analysis workspace, as a DuckDB file.

The file holds what the department may read -- public datasets, its own, the fields other
departments granted it -- and nothing else, decided as every read path decides
(``cityos.domain.analysis.workspace``). The command works on the database of
``CITYOS_DATABASE_URL`` directly, like the other administration commands, and the build is audited
in the department's name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TaskID
from rich.table import Table

from cityos.cli.progress import progress_bar
from cityos.kernel.errors import CityOSError
from cityos.kernel.settings import get_settings

console = Console(stderr=True)
workspace_app = typer.Typer(help="Analysis workspaces: what a department may read, as one DuckDB file.",
                            no_args_is_help=True)  # fmt: skip


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


@workspace_app.command("build")
def build(
    department: Annotated[str, typer.Option(help="the department whose workspace it is, e.g. digital")],
    out: Annotated[
        Path,
        typer.Option(dir_okay=False, help="the DuckDB file to write (replaced whole, never half-written)"),
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="records read and appended at a time")] = 5000,
) -> None:
    """Write DEPARTMENT's workspace: one table per readable dataset, plus _datasets and _wards."""
    from cityos.domain.access import Caller, CallerKind
    from cityos.domain.analysis.workspace import build_workspace, plan_workspace
    from cityos.kernel.db.engine import make_engine, migrate, session_factory
    from cityos.kernel.db.models import Department

    settings = get_settings()
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    caller = Caller(CallerKind.department, principal=department, key_id="cli")
    started = time.monotonic()
    try:
        # A read session: the build's one audit entry is written on a session of its own, and an
        # SQLite writer's lock here would keep it waiting.
        with session_factory(engine)() as session:
            if session.get(Department, department) is None:
                console.print(f"[red]unknown department {department!r}[/] (see `cityos departments list`)")
                raise typer.Exit(2)
            totals = {item.dataset.id: item.dataset.record_count for item in plan_workspace(session, caller)}
            with progress_bar(console) as progress:
                tasks: dict[str, TaskID] = {}

                def advance(dataset_id: str, rows: int) -> None:
                    if dataset_id not in tasks:
                        tasks[dataset_id] = progress.add_task(
                            dataset_id, total=totals.get(dataset_id) or None
                        )
                    progress.update(tasks[dataset_id], completed=rows)

                manifest = build_workspace(session, caller, out, batch_size=batch_size, progress=advance)
    except CityOSError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    elapsed = time.monotonic() - started

    table = Table(title=f"workspace of {department} / {department} のワークスペース")
    for column, justify in (("dataset", "left"), ("classification", "left"), ("columns", "right"),
                            ("rows", "right")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for dataset in manifest.datasets:
        columns = f"{len(dataset.columns)} (granted)" if dataset.granted else str(len(dataset.columns))
        table.add_row(dataset.id, dataset.classification, columns, f"{dataset.rows:,}")
    console.print(table)
    console.print(
        f"[green]wrote {out}[/]: {len(manifest.datasets)} datasets, {manifest.rows:,} rows, "
        f"{_megabytes(manifest.size_bytes)} in {elapsed:.1f} s (audited as workspace.built)"
    )
    console.print(f"open it with: duckdb -readonly {out}")
