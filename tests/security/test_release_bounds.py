"""An anonymized release holds no more than it may, against the real services: no one can choose
the randomness behind its row order and pseudonyms over HTTP, and a partner release carries exactly
the items its approved proposal asked for."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from tests.support.releases import store_synthetic_moves
from tests.support.stack import Stack

ADMIN = "/api/v1/admin"
ITEMS = ["年齢", "地域", "異動事由"]


def _prepare(stack: Stack) -> dict[str, str]:
    """600 synthetic resident moves in the catalog, and keys of the owner and an applicant."""
    migrate(stack.database_url)
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session:
            store_synthetic_moves(session, count=600, seed=8, now=datetime.now(UTC))
        with session_factory(engine)() as session, session.begin():
            owners = {"citizens": OwnerKind.department, "acme": OwnerKind.applicant}
            return {
                owner: issue_key(session, owner_kind=kind, owner_id=owner, purpose="t", actor="admin").secret
                for owner, kind in owners.items()
            }
    finally:
        engine.dispose()


def _post(stack: Stack, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    return httpx.post(
        stack.url("catalog", ADMIN + path), json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )


def _accepted_proposal(stack: Stack, owner: str, applicant: str) -> str:
    now = datetime.now(UTC)
    call = _post(
        stack,
        "/proposal-calls",
        {
            "dataset": "resident-moves",
            "title": "提案募集",
            "opens_at": (now - timedelta(days=1)).isoformat(),
            "closes_at": (now + timedelta(days=40)).isoformat(),
        },
        owner,
    )
    assert call.status_code == 201, call.text
    proposal = _post(
        stack,
        "/proposals",
        {
            "call": call.json()["id"],
            "purpose": "需要分析",
            "items": ITEMS,
            "use_period": "1年",
            "safety_measures": "閉域環境",
        },
        applicant,
    )
    assert proposal.status_code == 201, proposal.text
    pid: str = proposal.json()["id"]
    decided = _post(stack, f"/proposals/{pid}/decision", {"accept": True, "reason": "適合"}, owner)
    assert decided.status_code == 200, decided.text
    return pid


@pytest.mark.timeout(300)
def test_a_seed_cannot_be_chosen_over_http(sqlite_stack: Stack) -> None:
    keys = _prepare(sqlite_stack)
    sqlite_stack.start("catalog")
    chosen = _post(sqlite_stack, "/releases", {"dataset": "resident-moves", "seed": 1}, keys["citizens"])
    assert chosen.status_code == 422, chosen.text
    pid = _accepted_proposal(sqlite_stack, keys["citizens"], keys["acme"])
    assert _post(sqlite_stack, f"/proposals/{pid}/release", {"seed": 1}, keys["citizens"]).status_code == 422
    # Two public releases of the same records: fresh order, fresh pseudonyms, same rows.
    first, second = (
        _post(sqlite_stack, "/releases", {"dataset": "resident-moves"}, keys["citizens"]) for _ in range(2)
    )
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json()["sha256"] != second.json()["sha256"]
    assert "seed" not in first.text


@pytest.mark.timeout(300)
def test_a_partner_release_holds_exactly_the_approved_items(sqlite_stack: Stack) -> None:
    keys = _prepare(sqlite_stack)
    sqlite_stack.start("catalog", "publish")
    pid = _accepted_proposal(sqlite_stack, keys["citizens"], keys["acme"])
    made = _post(sqlite_stack, f"/proposals/{pid}/release", {}, keys["citizens"])
    assert made.status_code == 201, made.text
    release = made.json()
    assert release["概要"]["項目"] == ITEMS

    applicant = {"Authorization": f"Bearer {keys['acme']}"}
    download = httpx.get(
        sqlite_stack.url("publish", f"/api/v1/releases/{release['dataset']}/download"), headers=applicant
    )
    assert download.status_code == 200, download.text
    frame = pd.read_csv(io.BytesIO(download.content), dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["仮ID", *ITEMS] and len(frame) == release["rows"]
    assert frame.groupby(ITEMS).size().min() >= 5

    base = sqlite_stack.url("publish", f"/api/v1/datasets/{release['dataset']}")
    records = httpx.get(f"{base}/records", params={"limit": 1000}, headers=applicant).json()["records"]
    assert len(records) == release["rows"] and all(set(r) == {"仮ID", *ITEMS} for r in records)
    schema = httpx.get(base, headers=applicant).json()["schema"]["document"]
    assert list(schema["properties"]) == ["仮ID", *ITEMS]
