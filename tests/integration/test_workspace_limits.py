"""The workspace route's limits over the real publish app: builds per credential per minute, the row
ceiling, who may ask, the download's name, and nothing left in the server's temporary folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.settings import REPO_ROOT, Settings
from services.publish.app import create_app
from services.publish.workspace_api import BUILDS_PER_MINUTE, PATH, WorkspaceGate, download_name, install
from tests.support.feeds import aed
from tests.support.publish import T0, events, load


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = load(
        url, REPO_ROOT / "schemas", events("aed", [(r["NO"], r) for r in (aed(n, 1) for n in range(3))])
    )
    yield engine, url
    engine.dispose()


def key(engine: Engine, kind: OwnerKind, owner: str, scopes: list[str] | None = None) -> dict[str, str]:
    with Session(engine) as session, session.begin():
        secret = issue_key(
            session, owner_kind=kind, owner_id=owner, purpose="limits", actor="test", scopes=scopes
        ).secret
    return {"Authorization": f"Bearer {secret}"}


def client(engine: Engine, url: str, gate: WorkspaceGate | None = None) -> TestClient:
    app = create_app(Settings(database_url=url), engine=engine, registry=CollectorRegistry())
    if gate is not None:
        install(app, gate)
    return TestClient(app)


def leftovers() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("cityos-workspace-*"))


def test_builds_per_credential_are_limited_and_each_credential_has_its_own(
    catalog: tuple[Engine, str],
) -> None:
    engine, url = catalog
    fire, planning = key(engine, OwnerKind.department, "fire"), key(engine, OwnerKind.department, "planning")
    before = leftovers()
    with client(engine, url) as http:
        statuses = [http.get(PATH, headers=fire).status_code for _ in range(BUILDS_PER_MINUTE + 1)]
        assert statuses == [200] * BUILDS_PER_MINUTE + [429]
        refused = http.get(PATH, headers=fire)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "rate_limited"
        assert http.get(PATH, headers=planning).status_code == 200  # another credential, its own allowance
    assert leftovers() == before


def test_over_the_row_ceiling_the_answer_is_413_and_nothing_is_kept(catalog: tuple[Engine, str]) -> None:
    engine, url = catalog
    fire = key(engine, OwnerKind.department, "fire")
    before = leftovers()
    with client(engine, url, WorkspaceGate(max_rows=2)) as http:
        answer = http.get(PATH, headers=fire)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large" and "aed" not in answer.text
    assert leftovers() == before


def test_who_may_ask(catalog: tuple[Engine, str]) -> None:
    engine, url = catalog
    with client(engine, url) as http:
        assert http.get(PATH).status_code == 401
        assert http.get(PATH, headers=key(engine, OwnerKind.developer, "dev@example.com")).status_code == 403
        narrow = http.get(PATH, headers=key(engine, OwnerKind.department, "fire", ["feeds:subscribe"]))
        assert narrow.status_code == 403 and narrow.json()["error"] == "missing_scope"  # records:read needed
        applicant = http.get(PATH, headers=key(engine, OwnerKind.applicant, "acme"))
        assert applicant.status_code == 200
        assert 'filename="workspace-acme-' in applicant.headers["content-disposition"]
        assert applicant.headers["cache-control"] == "no-store"
        assert int(applicant.headers["content-length"]) == len(applicant.content)
        assert applicant.headers["x-workspace-rows"] == "3"  # the public aed records, nothing else


@pytest.mark.parametrize(
    ("principal", "name"),
    [
        ("digital", "workspace-digital-20250401.duckdb"),
        ('a"b/../c', "workspace-a_b____c-20250401.duckdb"),
        (None, "workspace-caller-20250401.duckdb"),
    ],
)
def test_download_names_hold_only_safe_characters(principal: str | None, name: str) -> None:
    assert download_name(principal, T0) == name
