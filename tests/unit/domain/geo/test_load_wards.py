"""``cityos geo load-wards``: every ward stored once with codes, names and both outlines; a second
run changes nothing; a missing folder is a clear error (exit 2) that stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cityos.cli.main import app
from cityos.domain.geo.store import WardIndexCache
from cityos.kernel.db.engine import make_engine
from cityos.kernel.db.geo_models import WardBoundaryRow
from cityos.kernel.settings import get_settings
from tests.support.wards import WARD_DIR, reference_outlines


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("CITYOS_DATABASE_URL", url)
    monkeypatch.setenv("CITYOS_WARD_BOUNDARIES_DIR", str(WARD_DIR))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _rows(url: str) -> list[WardBoundaryRow]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            rows = list(session.scalars(select(WardBoundaryRow).order_by(WardBoundaryRow.code)))
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def test_load_store_and_load_again(database: str) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["geo", "load-wards"])
    assert first.exit_code == 0, first.output
    assert "7 wards loaded (7 added, 0 updated, 0 unchanged)" in " ".join(first.output.split())
    rows = _rows(database)
    assert [(r.code, r.n03_code, r.name_ja) for r in rows][:2] == [
        ("401013", "40101", "門司区"),
        ("401030", "40103", "若松区"),
    ]
    outlines = reference_outlines()
    for row in rows:
        assert shape(row.geometry).equals(outlines[row.n03_code])
        assert shape(row.display_geometry).area == pytest.approx(outlines[row.n03_code].area, rel=0.01)
    stamps = [r.loaded_at for r in rows]

    again = runner.invoke(app, ["geo", "load-wards", "--from", str(WARD_DIR)])
    assert again.exit_code == 0, again.output
    assert "0 added, 0 updated, 7 unchanged" in " ".join(again.output.split())
    assert [r.loaded_at for r in _rows(database)] == stamps


def test_a_missing_folder_is_an_error_and_stores_nothing(database: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["geo", "load-wards", "--from", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "ward boundary folder not found" in " ".join(result.output.split())
    # Nothing was migrated or stored: the check runs before the database is opened.
    assert not (tmp_path / "catalog.db").exists()


def test_the_index_is_rebuilt_only_when_the_table_changes(database: str) -> None:
    assert CliRunner().invoke(app, ["geo", "load-wards"]).exit_code == 0
    cache = WardIndexCache()
    engine = make_engine(database)
    try:
        with Session(engine) as session:
            built = cache.index(session, database)
            assert len(built.wards) == 7
            assert cache.index(session, database) is built
        with Session(engine) as session, session.begin():
            row = session.get_one(WardBoundaryRow, "401056")
            row.loaded_at = row.loaded_at.replace(year=row.loaded_at.year + 1)
        with Session(engine) as session:
            assert cache.index(session, database) is not built
    finally:
        engine.dispose()
