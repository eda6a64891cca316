"""A release refused because of some records names them: counts per reason and the first keys, in the
gate's outcome, the audit trail, the CLI output and the admin API's 409 answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cityos.cli.main import app as cli
from cityos.domain.anonymize.gate import NAMED_RECORDS, run_gate
from cityos.domain.anonymize.profile import load_profile, profile_path
from cityos.domain.anonymize.releases import create_release
from cityos.domain.anonymize.synthetic import as_records, synthetic_moves
from cityos.domain.audit import list_audit
from cityos.kernel.db.engine import session_factory
from cityos.kernel.settings import REPO_ROOT, Settings, get_settings
from services.catalog import release_api
from tests.support.releases import store_moves

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PROFILE = load_profile(profile_path("resident-moves"))
SCHEMA = json.loads((REPO_ROOT / "schemas" / "resident-moves" / "v1.schema.json").read_text(encoding="utf-8"))
TOKEN = "admin-secret-for-tests"
BORN_LATE = [4, 17, 250]  # born after their move: a negative age
UNKNOWN_PREFECTURE = list(range(300, 325))  # 25: more than the keys a reason names


def bad_moves() -> list[dict[str, Any]]:
    """600 synthetic moves (a release passes on them) with the demo's old defects in 28 records."""
    records = as_records(synthetic_moves(600, seed=8))
    for i in BORN_LATE:
        records[i]["生年月日"] = "2030-01-01"
    for i in UNKNOWN_PREFECTURE:
        records[i]["前住所地_都道府県"] = "福岡県北"
    return records


def key(i: int) -> str:
    return f"MV-{i + 1:07d}"


AGE_LINE = f"年齢: 3 records below the lowest band 0: {', '.join(key(i) for i in BORN_LATE)}"
PREFECTURE_LINE = (
    "前住所地_区分: 25 records outside the hierarchy: 福岡県北: "
    + ", ".join(key(i) for i in UNKNOWN_PREFECTURE[:NAMED_RECORDS])
    + ", …"
)


def test_the_gate_names_every_reason_with_counts_and_the_first_keys(tmp_path: Path) -> None:
    frame = pd.DataFrame.from_records(bad_moves())
    outcome = run_gate(frame, PROFILE, SCHEMA, path=tmp_path / "r.csv", record_key="異動ID")
    assert not outcome.passed
    assert not (tmp_path / "r.csv").exists()
    assert outcome.reasons == [AGE_LINE, PREFECTURE_LINE]
    age, prefecture = outcome.offending
    assert (age.quasi_identifier, age.count, age.keys) == ("年齢", 3, tuple(key(i) for i in BORN_LATE))
    assert (prefecture.count, len(prefecture.keys)) == (25, NAMED_RECORDS)
    assert prefecture.as_json()["keys"] == [key(i) for i in UNKNOWN_PREFECTURE[:NAMED_RECORDS]]


def test_without_a_record_key_the_gate_names_row_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame.from_records(bad_moves()[:10])
    outcome = run_gate(frame, PROFILE, SCHEMA, path=tmp_path / "r.csv")
    assert outcome.reasons == ["年齢: 1 record below the lowest band 0: row 5"]


@pytest.fixture
def bad_catalog(catalog_url: str, engine: Engine) -> str:
    with Session(engine) as session:
        store_moves(session, bad_moves(), now=NOW)
    return catalog_url


def test_a_refused_release_is_audited_with_the_records(bad_catalog: str, engine: Engine) -> None:
    with session_factory(engine)() as session:
        result = create_release(
            session, source_dataset_id="resident-moves", classification="public", operator="admin", now=NOW
        )
        assert result.release is None
        assert result.reasons == [AGE_LINE, PREFECTURE_LINE]
        [audited] = list_audit(session, action="release.refused")
        assert [r["count"] for r in audited.detail["records"]] == [3, 25]
        assert audited.detail["records"][0]["keys"] == [key(i) for i in BORN_LATE]


@pytest.fixture
def runner(bad_catalog: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("CITYOS_DATABASE_URL", bad_catalog)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_the_cli_prints_one_unwrapped_line_per_reason(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["release", "run"], terminal_width=40)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert f"refused: {AGE_LINE}" in lines
    assert f"refused: {PREFECTURE_LINE}" in lines
    assert any(line.startswith("the records named above stop the release") for line in lines)


def test_the_admin_api_answers_409_with_the_records(bad_catalog: str, engine: Engine) -> None:
    api = FastAPI()
    api.state.releases = release_api.ReleaseContext.create(
        session_factory(engine, sqlite_begin="IMMEDIATE"), CollectorRegistry(), Settings(admin_token=TOKEN)
    )
    api.include_router(release_api.router)
    with TestClient(api) as http:
        answer = http.post(
            "/api/v1/admin/releases",
            json={"dataset": "resident-moves"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert detail["reasons"] == [AGE_LINE, PREFECTURE_LINE]
    assert [(r["quasi_identifier"], r["count"]) for r in detail["records"]] == [
        ("年齢", 3),
        ("前住所地_区分", 25),
    ]
    assert detail["records"][1]["keys"] == [key(i) for i in UNKNOWN_PREFECTURE[:NAMED_RECORDS]]
    assert detail["records"][0]["message"] == AGE_LINE
