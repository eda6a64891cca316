"""``cityos geo load-wards``: the wards' boundaries into the catalog, for per-ward counts and maps."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cityos.kernel.errors import CityOSError
from cityos.kernel.settings import get_settings

console = Console(stderr=True)
geo_app = typer.Typer(help="The city's geography: ward boundaries.", no_args_is_help=True)


@geo_app.command("load-wards")
def load_wards(
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="folder of N03 boundary files, one <N03 code>.json per ward "
            "(default: the ward_boundaries_dir setting, CITYOS_WARD_BOUNDARIES_DIR)",
        ),
    ] = None,
) -> None:
    """Check every ward's boundary file, then store each ward (codes, names, outlines) once."""
    from cityos.cli.db import cli_session
    from cityos.domain.geo.store import save_ward
    from cityos.domain.geo.wards import CREDIT_JA, read_ward_folder

    folder = source if source is not None else get_settings().ward_boundaries_dir
    console.print(f"reading ward boundaries from {folder}")
    try:
        wards = read_ward_folder(folder)
    except CityOSError as exc:
        console.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    outcomes: Counter[str] = Counter()
    now = datetime.now(UTC)
    with cli_session() as session, session.begin():
        for ward in wards:
            outcome = save_ward(session, ward, now=now)
            outcomes[outcome] += 1
            console.print(
                f"  {ward.code} {ward.ward.n03_code} {ward.ward.name_ja} ({ward.ward.name_en}): "
                f"{ward.parts} polygon(s), {outcome}",
                markup=False,
                highlight=False,
            )
    summary = ", ".join(f"{outcomes[k]} {k}" for k in ("added", "updated", "unchanged"))
    console.print(f"[green]{len(wards)} wards loaded[/] ({summary}); credit: {CREDIT_JA}")
