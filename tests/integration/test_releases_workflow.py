"""Anonymized releases end to end, on SQLite and PostgreSQL: synthetic personal records through
Kafka (the CLI) → ingest → catalog; call → proposal → accept → contract → release (catalog admin
API) → the applicant downloads with its key (publish API); another applicant's key gets 404; the
audit log shows every step; the raw personal records are nowhere public."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.domain.audit import list_audit
from cityos.kernel.db.engine import make_engine, session_factory
from tests.support.promtool import assert_promtool_clean
from tests.support.stack import Stack

RECORDS = 1500
ADMIN = "/api/v1/admin"


def _produce(stack: Stack) -> None:
    result = stack.cli(
        "release", "generate-synthetic", "--count", str(RECORDS), "--seed", "77", timeout_s=180
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def _wait_for_records(stack: Stack, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        datasets = httpx.get(stack.url("catalog", f"{ADMIN}/datasets"), headers=stack.admin_headers).json()
        count = next(d["record_count"] for d in datasets if d["id"] == "resident-moves")
        if count >= RECORDS:
            return
        time.sleep(0.5)
    raise AssertionError(f"catalog holds {count} of {RECORDS} synthetic records")


def _keys(stack: Stack) -> dict[str, str]:
    """Keys of the owning department, the applicant, and another applicant."""
    owners = {"citizens": OwnerKind.department, "acme": OwnerKind.applicant, "other": OwnerKind.applicant}
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            return {
                owner: issue_key(
                    session, owner_kind=kind, owner_id=owner, purpose="releases", actor="admin"
                ).secret
                for owner, kind in owners.items()
            }
    finally:
        engine.dispose()


def _post(stack: Stack, path: str, body: dict[str, Any], key: str, expect: int = 201) -> dict[str, Any]:
    response = httpx.post(
        stack.url("catalog", ADMIN + path), json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    detail: dict[str, Any] = result.get("detail", result) if expect == 409 else result
    return detail


def test_call_proposal_release_and_applicant_download(stack: Stack) -> None:
    stack.start("catalog")
    stack.start("ingest", "publish")
    _produce(stack)
    _wait_for_records(stack)
    keys = _keys(stack)
    dept, acme, other = keys["citizens"], keys["acme"], keys["other"]
    now = datetime.now(UTC)

    short = {
        "dataset": "resident-moves",
        "title": "短すぎる募集",
        "opens_at": now.isoformat(),
        "closes_at": (now + timedelta(days=20)).isoformat(),
    }
    refused = _post(stack, "/proposal-calls", short, dept, expect=409)
    assert "at least 30 days" in refused["reasons"][0]
    _post(stack, "/proposal-calls", short, acme, expect=403)  # an applicant does not open calls
    window = {
        "opens_at": (now - timedelta(days=1)).isoformat(),
        "closes_at": (now + timedelta(days=40)).isoformat(),
    }
    call = _post(stack, "/proposal-calls", {**short, "title": "令和8年度 提案募集", **window}, dept)
    proposal = _post(
        stack,
        "/proposals",
        {
            "call": call["id"],
            "purpose": "転入者向けサービスの需要分析",
            "items": ["年齢", "地域", "異動時期", "異動事由"],
            "use_period": "2026-12-01/2027-11-30",
            "safety_measures": "アクセス制御された分析環境でのみ利用し、再識別を試みない",
        },
        acme,
    )
    assert proposal["status"] == "submitted" and proposal["applicant"] == "acme"
    pid = proposal["id"]
    too_early = _post(stack, f"/proposals/{pid}/release", {}, dept, expect=409)
    assert "only an accepted proposal" in too_early["reasons"][0]
    _post(stack, f"/proposals/{pid}/decision", {"accept": True, "reason": "自己承認"}, acme, expect=403)
    decision = {"accept": True, "reason": "目的と安全管理措置が基準に適合"}
    assert _post(stack, f"/proposals/{pid}/decision", decision, dept, expect=200)["status"] == "accepted"
    _post(stack, f"/proposals/{pid}/contract", {"contract_ref": "KK-2026-001"}, dept, expect=200)
    release = _post(stack, f"/proposals/{pid}/release", {}, dept)
    assert release["classification"] == "partner" and release["applicant"] == "acme"
    assert release["概要"]["本人の数"] == release["rows"] > 0.9 * RECORDS
    assert "levels" not in release and "seed" not in release  # the method is never shown

    download = stack.url("publish", f"/api/v1/releases/{release['dataset']}/download")
    ok = httpx.get(download, headers={"Authorization": f"Bearer {acme}"})
    assert ok.status_code == 200, ok.text
    frame = pd.read_csv(io.BytesIO(ok.content), dtype=str, keep_default_na=False)
    assert len(frame) == release["rows"]
    # Exactly the items the approved proposal asked for, and the row id (the record's identity).
    quasi = ["年齢", "地域", "異動時期", "異動事由"]
    assert list(frame.columns) == ["仮ID", *quasi] and release["概要"]["項目"] == quasi
    assert frame.groupby(quasi, dropna=False).size().min() >= 5
    assert not {"住民番号", "氏名", "住所", "生年月日", "異動日"} & set(frame.columns)
    # The applicant sees its release like any dataset it may read, on every surface.
    mine = {"Authorization": f"Bearer {acme}"}
    listed = httpx.get(stack.url("publish", "/api/v1/datasets"), headers=mine)
    assert listed.status_code == 200 and release["dataset"] in listed.text
    for path in (
        "/catalog.jsonld",
        "/catalog.ttl",
        "/api/3/action/package_list",
        f"/api/3/action/package_show?id={release['dataset']}",
        f"/api/v1/datasets/{release['dataset']}/records",
    ):
        assert httpx.get(stack.url("publish", path), headers=mine).status_code == 200, path
    assert release["dataset"] not in httpx.get(stack.url("publish", "/api/v1/datasets")).text
    for headers in ({"Authorization": f"Bearer {other}"}, {"Authorization": f"Bearer {dept}"}, {}):
        assert httpx.get(download, headers=headers).status_code == 404
    # The partner dataset and the personal source stay invisible to everyone else.
    for dataset in (release["dataset"], "resident-moves"):
        records = stack.url("publish", f"/api/v1/datasets/{dataset}/records")
        assert httpx.get(records).status_code == 404
        assert httpx.get(records, headers={"X-API-Key": other}).status_code == 404

    register = httpx.get(stack.url("publish", "/api/v1/personal-information-files")).json()
    entry = next(e for e in register if e["dataset"] == "resident-moves")
    assert entry["提案募集の対象"] and [c["id"] for c in entry["募集中"]] == [call["id"]]
    assert entry["匿名加工情報の概要"] == [release["概要"]]
    assert "要介護度" in entry["記録項目"] and "levels" not in str(register)

    _post(stack, f"/proposals/{pid}/cancel", {"reason": "契約違反"}, dept, expect=200)
    assert httpx.get(download, headers={"Authorization": f"Bearer {acme}"}).status_code == 404

    def listed_by(key: str) -> list[str]:
        response = httpx.get(
            stack.url("catalog", f"{ADMIN}/proposals"), headers={"Authorization": f"Bearer {key}"}
        )
        return [p["id"] for p in response.json()]

    assert listed_by(acme) == listed_by(dept) == [pid] and listed_by(other) == []

    metrics = httpx.get(stack.url("catalog", "/metrics")).text
    assert 'cityos_release_gate_runs_total{outcome="passed"} 1.0' in metrics, [
        line for line in metrics.splitlines() if "release" in line
    ]
    assert 'cityos_release_workflow_steps_total{step="cancel"} 1.0' in metrics
    assert_promtool_clean(stack.url("catalog", "/metrics"))

    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session:
            actions = [e.action for e in list_audit(session)]
            method = list_audit(session, action="release.method")
            downloads = list_audit(session, action="release.downloaded")
            accepted = list_audit(session, action="proposal.accepted")
    finally:
        engine.dispose()
    for step in (
        "proposal_call.opened",
        "proposal.submitted",
        "proposal.accepted",
        "proposal.contracted",
        "release.created",
        "release.method",
        "release.downloaded",
        "proposal.cancelled",
    ):
        assert step in actions, step
    assert (
        actions.index("proposal.accepted")
        < actions.index("release.created")
        < actions.index("release.downloaded")
    )
    assert method[0].detail["achieved_k"] >= 5 and method[0].detail["levels"]
    assert {"numpy", "pandas"} <= set(method[0].detail["libraries"])
    assert len(downloads) == 1 and downloads[0].actor == "acme" and downloads[0].detail["key_id"]
    assert accepted[0].actor == "citizens"  # the credential's owner, not a name from the body
