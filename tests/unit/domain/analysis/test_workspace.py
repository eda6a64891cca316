"""The analysis workspace's builder on a real SQLite catalog: partner releases for their applicant
only, personal data never, the row ceiling, an all-or-nothing file, one audit entry per build, and
the typed empty table of a dataset without records."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cityos.domain.access import Caller, CallerKind
from cityos.domain.analysis.workspace import (
    AUDIT_ACTION,
    WorkspaceTooLarge,
    build_workspace,
    plan_workspace,
    quoted,
)
from cityos.domain.grants import grant
from cityos.kernel.db.engine import session_factory
from cityos.kernel.db.models import AuditEvent, Dataset, Record, SchemaVersionRow
from cityos.kernel.db.release_models import Release
from cityos.kernel.settings import REPO_ROOT
from tests.support.moves import VALID_MOVE
from tests.support.publish import events, load
from tests.support.wards import load_wards

NOW = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
PARTNER = "resident-moves-partner-acme"
APPLICANT = Caller(CallerKind.applicant, principal="acme", key_id="cos_acme")
OTHER_APPLICANT = Caller(CallerKind.applicant, principal="other", key_id="cos_other")
CITIZENS = Caller(CallerKind.department, principal="citizens")  # owner of resident-moves (personal)
PLANNING = Caller(CallerKind.department, principal="planning")


def aed(n: int) -> dict[str, Any]:
    return {"NO": f"A{n:03d}", "名称": f"施設{n}", "名称_カナ": "シセツ", "住所": "福岡県北九州市小倉北区城内1-1",
            "緯度": 33.88, "経度": 130.87}  # fmt: skip


def add_partner_release(engine: Engine) -> list[dict[str, Any]]:
    """An accepted partner release of resident-moves for ``acme``, as the release tooling leaves it."""
    rows = [{"行ID": f"R{n}", "年齢": f"{20 + 10 * n}代", "区": "小倉北区"} for n in range(3)]
    document = {"type": "object", "properties": {"行ID": {"type": "string"}, "年齢": {"type": "string"},
                                                 "区": {"type": "string"}}}  # fmt: skip
    with Session(engine) as session, session.begin():
        session.add(Dataset(id=PARTNER, department_id="citizens", title_ja="住民異動（匿名加工）",
                            title_en="Resident moves (anonymized)", classification="partner",
                            license="CC-BY-4.0", record_key="行ID", meta={}))  # fmt: skip
        session.flush()
        session.add(SchemaVersionRow(dataset_id=PARTNER, version=1, uri=f"urn:release:{PARTNER}:1",
                                     document=document, registered_at=NOW))  # fmt: skip
        session.add(Release(id="rel-1", source_dataset_id="resident-moves", dataset_id=PARTNER,
                            classification="partner", proposal_id=None, applicant_id="acme", seed=7,
                            sha256="0" * 64, content=b"", row_count=len(rows), overview={}, created_by="t",
                            created_at=NOW))  # fmt: skip
        for row in rows:
            session.add(Record(dataset_id=PARTNER, record_key=row["行ID"], data=row, schema_version=1,
                               event_source="/releases/rel-1", event_id=row["行ID"], event_time=NOW,
                               kafka_partition=-1, kafka_offset=-1, updated_at=NOW))  # fmt: skip
    return rows


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Engine]:
    batch = events("aed", [(r["NO"], r) for r in map(aed, range(5))])
    batch += events("resident-moves", [(VALID_MOVE["異動ID"], VALID_MOVE)], start=100)
    engine = load(f"sqlite:///{tmp_path / 'catalog.db'}", REPO_ROOT / "schemas", batch)
    yield engine
    engine.dispose()


def build(engine: Engine, caller: Caller, out: Path, **options: Any) -> Any:
    with session_factory(engine)() as session:
        return build_workspace(session, caller, out, **options)


def tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    finally:
        con.close()


def test_a_partner_release_goes_to_its_applicant_only(catalog: Engine, tmp_path: Path) -> None:
    rows = add_partner_release(catalog)
    mine = build(catalog, APPLICANT, tmp_path / "acme.duckdb")
    assert PARTNER in tables(tmp_path / "acme.duckdb")
    con = duckdb.connect(str(tmp_path / "acme.duckdb"), read_only=True)
    stored = con.execute(f"SELECT 行ID, 年齢, 区 FROM {quoted(PARTNER)} ORDER BY 行ID").fetchall()
    con.close()
    assert stored == [(r["行ID"], r["年齢"], r["区"]) for r in rows]
    assert {d.id for d in mine.datasets} >= {PARTNER, "aed"}
    for caller in (OTHER_APPLICANT, PLANNING, CITIZENS):
        build(catalog, caller, tmp_path / "other.duckdb")
        assert PARTNER not in tables(tmp_path / "other.duckdb")
        assert PARTNER.encode() not in (tmp_path / "other.duckdb").read_bytes()


def test_personal_records_never_go_in_not_even_to_their_owner(catalog: Engine, tmp_path: Path) -> None:
    out = tmp_path / "citizens.duckdb"
    manifest = build(catalog, CITIZENS, out)
    assert "resident-moves" not in {d.id for d in manifest.datasets}
    content = out.read_bytes()
    assert b"resident-moves" not in content
    assert VALID_MOVE["氏名"].encode() not in content and VALID_MOVE["住民番号"].encode() not in content


def test_over_the_row_ceiling_nothing_is_written_and_an_older_file_stays(
    catalog: Engine, tmp_path: Path
) -> None:
    out = tmp_path / "planning.duckdb"
    first = build(catalog, PLANNING, out)
    before = out.read_bytes()
    with pytest.raises(WorkspaceTooLarge):
        build(catalog, PLANNING, out, max_rows=first.rows - 1)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".db" and "catalog" not in p.name) == [
        "planning.duckdb"
    ]  # no partial file left beside it
    assert build(catalog, PLANNING, out, max_rows=first.rows).rows == first.rows


def test_one_audit_entry_per_build_and_no_per_dataset_entries(catalog: Engine, tmp_path: Path) -> None:
    def count(action: str) -> int:
        with Session(catalog) as session:
            return int(session.scalar(select(func.count()).where(AuditEvent.action == action)) or 0)

    reads, denials = count("access.read"), count("access.denied")
    caller = Caller(CallerKind.department, principal="fire", key_id="cos_fire")
    manifest = build(catalog, caller, tmp_path / "fire.duckdb", batch_size=2)
    assert count(AUDIT_ACTION) == 1
    assert (count("access.read"), count("access.denied")) == (reads, denials)
    with Session(catalog) as session:
        entry = session.scalars(select(AuditEvent).where(AuditEvent.action == AUDIT_ACTION)).one()
    assert entry.actor == "department:fire"
    assert entry.detail["datasets"] == [d.id for d in manifest.datasets]
    assert entry.detail["key_id"] == "cos_fire"
    assert entry.detail["rows"] == manifest.rows == sum(d.rows for d in manifest.datasets)


def test_a_dataset_without_records_is_an_empty_typed_table(catalog: Engine, tmp_path: Path) -> None:
    out = tmp_path / "digital.duckdb"
    manifest = build(catalog, Caller(CallerKind.department, principal="digital"), out)
    by_id = {d.id: d for d in manifest.datasets}
    assert by_id["copier-usage"].rows == 0 and by_id["aed"].rows == 5
    con = duckdb.connect(str(out), read_only=True)
    try:
        types = dict(con.execute('SELECT column_name, data_type FROM information_schema.columns '
                                 "WHERE table_name = 'copier-usage'").fetchall())  # fmt: skip
        comment = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'aed'").fetchone()
        count = con.execute(f"SELECT count(*) FROM {quoted('copier-usage')}").fetchone()
    finally:
        con.close()
    assert types["枚数_モノクロ"] == "BIGINT" and types["年月"] == "VARCHAR"
    assert count == (0,)
    assert comment is not None and "AED" in comment[0]


def test_the_plan_is_the_read_decision(catalog: Engine) -> None:
    with session_factory(catalog)() as session:
        anonymous = {p.dataset.id for p in plan_workspace(session, Caller(CallerKind.anonymous))}
        digital = {
            p.dataset.id for p in plan_workspace(session, Caller(CallerKind.department, principal="digital"))
        }
        every = list(session.scalars(select(Dataset)))
    public = {d.id for d in every if d.classification == "public"}
    own_internal = {d.id for d in every if d.classification == "internal" and d.department_id == "digital"}
    assert anonymous == public
    assert digital == public | own_internal  # no grants here: its own internal datasets, and no others
    assert "copier-usage" in own_internal


def internal_facilities(tmp_path: Path) -> Path:
    """The repository's schemas plus an internal facility list of planning's, with a location."""
    target = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", target)
    folder = target / "facility-internal"
    shutil.copytree(target / "public-facility", folder)
    meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    meta.update(id="facility-internal", department="planning", classification="internal")
    (folder / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    schema = json.loads((folder / "v1.schema.json").read_text(encoding="utf-8"))
    schema["$id"] = "https://cityos.example/schemas/facility-internal/1"
    (folder / "v1.schema.json").write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    return target


def test_records_are_placed_in_wards_only_for_whoever_reads_their_position(tmp_path: Path) -> None:
    schemas_dir = internal_facilities(tmp_path)
    # Positions inside 小倉北区 and 門司区 (the demo's boxes inside each ward), and one at sea.
    spots = [(33.875, 130.865, "401064"), (33.89, 130.95, "401013"), (33.95, 130.60, None)]
    rows = [
        {**aed(n), "都道府県コード又は市区町村コード": "401005", "都道府県名": "福岡県", "市区町村名": "北九州市",
         "緯度": lat, "経度": lon}
        for n, (lat, lon, _) in enumerate(spots)
    ]  # fmt: skip
    engine = load(
        f"sqlite:///{tmp_path / 'catalog.db'}",
        schemas_dir,
        events("facility-internal", [(r["NO"], r) for r in rows]),
    )
    try:
        load_wards(engine)
        with Session(engine) as session, session.begin():
            owner = Caller(CallerKind.department, principal="planning")
            grant(session, caller=owner, dataset_id="facility-internal", grantee="digital", fields=["名称"])
            grant(
                session,
                caller=owner,
                dataset_id="facility-internal",
                grantee="fire",
                fields=["名称", "緯度", "経度"],
            )

        def placed(department: str) -> dict[str, str | None]:
            out = tmp_path / f"{department}.duckdb"
            build(engine, Caller(CallerKind.department, principal=department), out)
            con = duckdb.connect(str(out), read_only=True)
            try:
                return dict(con.execute("SELECT record_key, ward_code FROM _record_wards "
                                        "WHERE dataset = 'facility-internal'").fetchall())  # fmt: skip
            finally:
                con.close()

        expected = {r["NO"]: code for r, (_, _, code) in zip(rows, spots, strict=True)}
        assert placed("planning") == expected  # the owner reads every field
        assert placed("fire") == expected  # granted the location fields
        assert placed("digital") == {}  # granted the name only: not even the ward of a record
    finally:
        engine.dispose()
