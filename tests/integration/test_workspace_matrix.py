"""The access matrix, for analysis workspaces: every department's DuckDB workspace, downloaded over
real HTTP from a real publish server (and once built by the CLI), holds exactly the datasets the
matrix's rules say it may read, each with exactly the expected columns and the values that were
sent; nothing of the others -- no table, no row in ``_datasets``, no id anywhere in the file.

The rules and the world are tests/support/access_matrix.py (shared with the records, feeds and grants
matrix); 100 % of the 4 x 6 cells are asserted, in each of the two ways of getting a workspace. The
catalog is filled through its own write path (``apply_batch``) and the grants are made by the
owners through the grants' own rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cityos.domain.access import Caller, CallerKind
from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.domain.grants import grant
from cityos.domain.readmodel import queries
from cityos.kernel.db.engine import session_factory
from cityos.kernel.db.models import AuditEvent
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from tests.support.access_matrix import (
    DATASETS,
    DEPARTMENTS,
    GRANTS,
    PER_DATASET,
    RECORD_KEYS,
    expected_fields,
    may_read,
    record_for,
    schemas_with_extra_datasets,
)
from tests.support.publish import events, load, serve
from tests.support.wards import load_wards

CATALOG_TABLES = {"_datasets", "_wards", "_record_wards"}
# Matrix datasets that declare a location (every one of their records is placed in a ward).
LOCATED = {"aed", "tourism"}


def matrix_schemas(tmp_path: Path) -> Path:
    """The matrix's six datasets and nothing else, so "exactly the readable ones" is exact."""
    folder = schemas_with_extra_datasets(tmp_path / "schemas")
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name not in DATASETS:
            shutil.rmtree(entry)
    return folder


def fill(database_url: str, schemas_dir: Path) -> Engine:
    batch = []
    for offset, dataset in enumerate(DATASETS):
        rows = [record_for(dataset, n) for n in range(PER_DATASET)]
        batch += events(dataset, [(str(r[RECORD_KEYS[dataset]]), r) for r in rows], start=offset * 100)
    engine = load(database_url, schemas_dir, batch)
    load_wards(engine)
    with session_factory(engine)() as session, session.begin():
        for (dataset, grantee), fields in GRANTS.items():  # each grant made by the owner
            owner = Caller(CallerKind.department, principal=DATASETS[dataset][1])
            grant(session, caller=owner, dataset_id=dataset, grantee=grantee, fields=fields)
    return engine


def stored_schema_order(engine: Engine) -> dict[str, list[str]]:
    with Session(engine) as session:
        return {
            d: list(row.document["properties"])
            for d in DATASETS
            if (row := queries.latest_schema(session, dataset_id=d)) is not None
        }


def plain(value: Any) -> Any:
    """A DuckDB value as the records API writes it (dates as ISO text)."""
    return value.isoformat() if isinstance(value, date | datetime) else value


def table_rows(con: duckdb.DuckDBPyConnection, table: str) -> tuple[list[str], list[dict[str, Any]]]:
    cursor = con.execute(f'SELECT * FROM "{table}"')
    columns = [d[0] for d in cursor.description]
    rows = [
        {name: plain(value) for name, value in zip(columns, row, strict=True) if value is not None}
        for row in cursor.fetchall()
    ]
    return columns, rows


def check_workspace(
    path: Path, department: str, properties: dict[str, list[str]], stored_order: dict[str, list[str]]
) -> int:
    """Every cell of ``department``'s row of the matrix, asserted on the file; the cells checked."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        readable = {dataset for dataset in DATASETS if may_read(department, dataset)}
        assert tables == readable | CATALOG_TABLES, (department, tables)
        listed = {
            row[0]: (list(row[1]), row[2], row[3])
            for row in con.execute("SELECT id, fields, row_count, classification FROM _datasets").fetchall()
        }
        assert set(listed) == readable, (department, listed)
        cells = 0
        for dataset in DATASETS:
            cells += 1
            if dataset not in readable:
                continue
            visible = expected_fields(department, dataset)
            columns, rows = table_rows(con, dataset)
            expected_columns = [name for name in properties[dataset] if visible is None or name in visible]
            assert set(columns) == set(expected_columns), (department, dataset, columns)
            # In the order of the schema as the catalog keeps it (PostgreSQL's JSONB orders an
            # object's keys its own way), as the records API's CSV orders its columns.
            assert columns == [name for name in stored_order[dataset] if name in expected_columns]
            assert listed[dataset] == (columns, PER_DATASET, DATASETS[dataset][0])
            sent = [record_for(dataset, n) for n in range(PER_DATASET)]
            expected = [
                {name: value for name, value in record.items() if visible is None or name in visible}
                for record in sent
            ]
            key = RECORD_KEYS[dataset]
            assert sorted(rows, key=lambda r: r[key]) == sorted(expected, key=lambda r: r[key]), (
                department,
                dataset,
            )
        wards = con.execute("SELECT count(*) FROM _wards").fetchone()
        assert wards is not None and wards[0] == 7
        placed = dict(con.execute("SELECT dataset, count(*) FROM _record_wards GROUP BY dataset").fetchall())
        assert placed == {d: PER_DATASET for d in LOCATED & readable}, (department, placed)
    finally:
        con.close()
    content = path.read_bytes()
    for dataset in DATASETS:
        if not may_read(department, dataset):
            assert dataset.encode() not in content, (department, dataset)
    if not any(may_read(department, d) for d in ("copier-usage", "fire-kpi")):
        assert "機密の備考".encode() not in content, department  # a value only the internal datasets hold
    return cells


def last_build(engine: Engine, department: str) -> AuditEvent:
    with Session(engine) as session:
        entry = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "workspace.built", AuditEvent.actor == f"department:{department}")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).first()
    assert entry is not None, department
    return entry


@pytest.mark.timeout(300)
def test_every_department_workspace_holds_exactly_what_the_matrix_allows(
    database_url: str, tmp_path: Path
) -> None:
    schemas_dir = matrix_schemas(tmp_path)
    schema_set = load_schema_dir(schemas_dir)
    properties = {d: list(schema_set.latest(d).document["properties"]) for d in DATASETS}
    engine = fill(database_url, schemas_dir)
    with session_factory(engine)() as session, session.begin():
        keys = {
            d: issue_key(session, owner_kind=OwnerKind.department, owner_id=d, purpose="matrix", actor="test").secret
            for d in DEPARTMENTS
        }  # fmt: skip
        developer = issue_key(
            session, owner_kind=OwnerKind.developer, owner_id="dev", purpose="t", actor="test"
        )
    cells = 0
    try:
        with serve(engine, database_url) as server, httpx.Client(base_url=server.url, timeout=120) as client:
            for department in DEPARTMENTS:
                answer = client.get(
                    "/api/v1/workspace.duckdb", headers={"Authorization": f"Bearer {keys[department]}"}
                )
                assert answer.status_code == 200, (department, answer.text)
                assert answer.headers["content-type"] == "application/octet-stream"
                assert f"workspace-{department}-" in answer.headers["content-disposition"]
                path = tmp_path / f"{department}.duckdb"
                path.write_bytes(answer.content)
                cells += check_workspace(path, department, properties, stored_schema_order(engine))
                audit = last_build(engine, department)
                readable = sorted(d for d in DATASETS if may_read(department, d))
                assert audit.detail["datasets"] == readable
                assert audit.detail["rows"] == PER_DATASET * len(readable)
                order = stored_schema_order(engine)
                assert audit.detail["fields"] == {
                    d: [n for n in order[d] if n in fields]
                    for d in readable
                    if (fields := expected_fields(department, d)) is not None
                }
            # The refusals have the API's one error shape, and name nothing.
            anonymous = client.get("/api/v1/workspace.duckdb")
            assert anonymous.status_code == 401
            assert set(anonymous.json()) == {"error", "detail"}
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            as_developer = client.get("/api/v1/workspace.duckdb", headers={"X-API-Key": developer.secret})
            assert as_developer.status_code == 403
            assert set(as_developer.json()) == {"error", "detail"}
            for refusal in (anonymous, as_developer):
                assert not any(d in refusal.text for d in DATASETS)
    finally:
        engine.dispose()
    assert cells == len(DEPARTMENTS) * len(DATASETS) == 24
    # Nothing is left behind on the server's disk once a workspace is sent.
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("cityos-workspace-*"))


@pytest.mark.timeout(300)
def test_the_cli_builds_the_same_workspace(database_url: str, tmp_path: Path) -> None:
    schemas_dir = matrix_schemas(tmp_path)
    schema_set = load_schema_dir(schemas_dir)
    properties = {d: list(schema_set.latest(d).document["properties"]) for d in DATASETS}
    engine = fill(database_url, schemas_dir)
    cells = 0
    try:
        for department in DEPARTMENTS:
            out = tmp_path / "out" / f"{department}.duckdb"
            result = subprocess.run(
                [sys.executable, "-m", "cityos", "workspace", "build", "--department", department, "--out", str(out)],
                env={**os.environ, "CITYOS_DATABASE_URL": database_url, "CITYOS_SCHEMAS_DIR": str(schemas_dir)},
                cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert f"wrote {out}" in result.stderr.replace("\n", "")
            cells += check_workspace(out, department, properties, stored_schema_order(engine))
            assert [
                p.name for p in out.parent.iterdir() if p.name.startswith(".")
            ] == []  # no partial file left
            assert last_build(engine, department).detail["datasets"] == sorted(
                d for d in DATASETS if may_read(department, d)
            )
        unknown = subprocess.run(
            [sys.executable, "-m", "cityos", "workspace", "build", "--department", "nobody", "--out",
             str(tmp_path / "nobody.duckdb")],
            env={**os.environ, "CITYOS_DATABASE_URL": database_url}, cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        assert unknown.returncode == 2 and not (tmp_path / "nobody.duckdb").exists()
    finally:
        engine.dispose()
    assert cells == 24
