"""The catalog's access API over real HTTP handling (TestClient) on a real SQLite catalog:
authentication, credentials, grants, subscriptions, audit list and export, ACLs, metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine

from cityos.kernel.db.engine import session_factory
from cityos.kernel.settings import Settings
from services.catalog import access_api

TOKEN = "admin-secret-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(engine: Engine) -> Iterator[tuple[TestClient, CollectorRegistry, list[str]]]:
    sessions = session_factory(engine, sqlite_begin="IMMEDIATE")
    registry = CollectorRegistry()
    created: list[str] = []
    app = FastAPI()
    app.state.access = access_api.AccessContext.create(
        sessions, registry, Settings(admin_token=TOKEN, topic_prefix="t."), ensure_topic=created.append
    )
    app.include_router(access_api.router)
    with TestClient(app) as test_client:
        yield test_client, registry, created


def key_of(client: TestClient, department: str) -> dict[str, str]:
    issued = client.post(f"/api/v1/departments/{department}/credentials", headers=ADMIN, json={})
    assert issued.status_code == 201, issued.text
    return {"Authorization": f"Bearer {issued.json()['secret']}"}


def test_authentication(client: tuple[TestClient, CollectorRegistry, list[str]]) -> None:
    http, _, _ = client
    assert http.get("/api/v1/departments").status_code == 401
    assert http.get("/api/v1/departments", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert http.get("/api/v1/departments", headers={"Authorization": "Basic abc"}).status_code == 401
    departments = http.get("/api/v1/departments", headers=ADMIN).json()
    assert {
        "id": "fire",
        "name": {"ja": "消防局", "en": "Fire Bureau"},
        "kafka_principal": "User:dept-fire",
    } in departments
    fire = key_of(http, "fire")
    assert http.get("/api/v1/departments", headers=fire).status_code == 200
    # Administration needs the admin token: a department key cannot issue keys or read the audit log.
    assert http.post("/api/v1/departments/fire/credentials", headers=fire, json={}).status_code == 403
    assert http.get("/api/v1/audit", headers=fire).status_code == 403


def test_grant_subscribe_revoke_and_audit(client: tuple[TestClient, CollectorRegistry, list[str]]) -> None:
    http, registry, created = client
    digital, fire, planning = key_of(http, "digital"), key_of(http, "fire"), key_of(http, "planning")
    # Only the owner (or an admin) manages grants; a stranger is told the dataset does not exist.
    stranger = http.post(
        "/api/v1/datasets/copier-usage/grants", headers=planning, json={"grantee": "planning"}
    )
    assert stranger.status_code == 404
    made = http.post(
        "/api/v1/datasets/copier-usage/grants", headers=digital, json={"grantee": "fire", "fields": ["年月"]}
    )
    assert made.status_code == 201, made.text
    assert made.json()["fields"] == ["年月"] and made.json()["granted_by"] == "department:digital"
    listed = http.get("/api/v1/datasets/copier-usage/grants", headers=digital).json()
    assert [g["grantee"] for g in listed] == ["fire"]

    sub = http.post(
        "/api/v1/subscriptions", headers=fire, json={"dataset": "copier-usage", "fields": ["年月"]}
    )
    assert sub.status_code == 201, sub.text
    assert sub.json()["topic"] == "t.feed.fire.copier-usage" and created == ["t.feed.fire.copier-usage"]
    leak = http.post("/api/v1/subscriptions", headers=planning, json={"dataset": "copier-usage"})
    assert leak.status_code == 404
    assert http.get(f"/api/v1/subscriptions/{sub.json()['id']}", headers=planning).status_code == 404
    assert [s["id"] for s in http.get("/api/v1/subscriptions", headers=fire).json()] == [sub.json()["id"]]

    revoked = http.delete("/api/v1/datasets/copier-usage/grants/fire", headers=digital)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert http.delete("/api/v1/datasets/copier-usage/grants/fire", headers=digital).status_code == 404

    audit = http.get("/api/v1/audit", headers=ADMIN, params={"subject_id": "copier-usage"}).json()
    actions = [(e["actor"], e["action"]) for e in audit]
    assert actions == [
        ("department:planning", "grant.refused"),
        ("department:digital", "grant.created"),
        ("department:fire", "subscription.created"),
        ("department:planning", "subscription.refused"),
        ("department:digital", "grant.revoked"),
    ]
    exported = http.get("/api/v1/audit/export", headers=ADMIN, params={"format": "csv"})
    assert exported.content.startswith("\ufeffid,at,actor,action".encode())
    assert "grant.revoked" in exported.content.decode("utf-8")
    ndjson = http.get("/api/v1/audit/export", headers=ADMIN).content.splitlines()
    assert len(ndjson) >= len(actions) + 3  # plus the three keys issued

    text = generate_latest(registry).decode()
    assert 'cityos_access_grant_changes_total{action="created"} 1.0' in text
    assert 'cityos_access_grant_changes_total{action="revoked"} 1.0' in text
    assert 'cityos_access_refusals_total{operation="subscribe"} 1.0' in text


def test_credentials_and_acls(client: tuple[TestClient, CollectorRegistry, list[str]]) -> None:
    http, _, _ = client
    fire = key_of(http, "fire")
    keys = http.get("/api/v1/departments/fire/credentials", headers=fire).json()
    assert len(keys) == 1 and "secret" not in keys[0]
    assert http.get("/api/v1/departments/digital/credentials", headers=fire).status_code == 403
    key_id = keys[0]["key_id"]
    assert http.delete(f"/api/v1/credentials/{key_id}", headers=ADMIN).status_code == 200
    assert http.get("/api/v1/departments", headers=fire).status_code == 401, "a revoked key stops at once"
    acls = http.get("/api/v1/feeds/acls", headers=ADMIN).json()
    assert "ALLOW User:dept-fire READ TOPIC PREFIXED:t.feed.fire." in acls
    assert http.post("/api/v1/departments/nope/credentials", headers=ADMIN, json={}).status_code == 404


def test_a_narrow_key_cannot_manage_or_subscribe(
    client: tuple[TestClient, CollectorRegistry, list[str]],
) -> None:
    http, _, _ = client
    issued = http.post(
        "/api/v1/departments/digital/credentials", headers=ADMIN, json={"scopes": ["records:read"]}
    )
    narrow = {"Authorization": f"Bearer {issued.json()['secret']}"}
    grant = http.post("/api/v1/datasets/copier-usage/grants", headers=narrow, json={"grantee": "fire"})
    assert grant.status_code == 403 and grant.json()["detail"]["error"] == "missing_scope"
    assert http.post("/api/v1/subscriptions", headers=narrow, json={"dataset": "aed"}).status_code == 403
    full = key_of(http, "digital")
    assert (
        http.post("/api/v1/datasets/copier-usage/grants", headers=full, json={"grantee": "fire"}).status_code
        == 201
    )
