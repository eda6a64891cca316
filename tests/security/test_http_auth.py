"""Attacks on the HTTP doors of the catalog and publish, replayed against the real services: what
once answered without a credential, with the wrong scope, forever, or to an unthrottled guesser
now answers 401, 403 or 429, and nothing of the data is in the refusal."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.engine import make_engine, session_factory
from cityos.kernel.db.models import ApiKey
from services.catalog.route_policy import OPEN_PATHS, POLICY
from tests.support.feeds import bearer, catalog, copier, produce, validated_event
from tests.support.stack import Stack

INTERNAL = "copier-usage"  # internal, owned by the digital department
PERSONAL = "resident-moves"
RECORDS = 3
# Words of the catalog's answers that must never reach a caller without a credential.
SECRETS = (INTERNAL, PERSONAL, "record_count", "anonymization", "機密の備考")


def _concrete(path: str) -> str:
    """A route template with every placeholder filled (a personal dataset where one fits)."""
    return re.sub(r"\{[^}]+\}", lambda m: PERSONAL if m.group(0) == "{dataset_id}" else "1", path)


def _issue(stack: Stack, kind: OwnerKind, owner: str, **options: Any) -> str:
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            return issue_key(
                session, owner_kind=kind, owner_id=owner, purpose="attack", actor="admin:test", **options
            ).secret
    finally:
        engine.dispose()


def _load_internal_records(stack: Stack) -> None:
    producer = stack.producer()
    for number in range(RECORDS):
        key, value = validated_event(INTERNAL, copier(number, 1), "ID", f"sec-{number}")
        produce(producer, stack.settings.validated_topic, key, value)
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = httpx.get(
            stack.url("catalog", "/api/v1/admin/datasets"), headers=stack.admin_headers
        ).json()
        if next(d["record_count"] for d in listing if d["id"] == INTERNAL) >= RECORDS:
            return
        time.sleep(0.3)
    raise AssertionError("internal records did not reach the catalog")


@pytest.mark.timeout(180)
def test_every_catalog_route_refuses_a_request_without_a_valid_credential(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.extra_env["CITYOS_CATALOG_UNAUTHENTICATED_RATE_PER_MINUTE"] = "10000"
    stack.start("catalog")
    forged = "cos_0123abcd_" + "A" * 43  # shaped like a key, known to no one
    for method, template in sorted(POLICY):
        url = stack.url("catalog", _concrete(template))
        for headers in ({}, {"Authorization": f"Bearer {forged}"}, {"Authorization": "Bearer admin"}):
            answer = httpx.request(method, url, headers=headers, json={}, timeout=10)
            assert answer.status_code == 401, (method, template, headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert not any(word in answer.text for word in SECRETS), (method, template, answer.text)
    # The attacks as they were reproduced, named.
    for method, path in (
        ("GET", "/api/v1/admin/datasets"),
        ("GET", f"/schemas/{PERSONAL}/1"),
        ("GET", f"/api/v1/admin/schemas/{PERSONAL}"),
        ("GET", "/api/v1/admin/proposal-calls"),
        ("GET", "/api/v1/admin/proposals"),
        ("POST", f"/api/v1/admin/schemas/{PERSONAL}/check"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
    ):
        assert httpx.request(method, stack.url("catalog", path), json={}).status_code == 401, path
    for path in sorted(OPEN_PATHS):
        assert httpx.get(stack.url("catalog", path)).status_code == 200, path

    # With credentials: the personal schema (its anonymisation tags) is for administrators and its
    # owner; another department is told it does not exist; a developer key has no business here.
    fire = _issue(stack, OwnerKind.department, "fire")
    developer = _issue(stack, OwnerKind.developer, "dev@example.com")
    schema_url = stack.url("catalog", f"/schemas/{PERSONAL}/1")
    assert httpx.get(schema_url, headers=stack.admin_headers).status_code == 200
    hidden = httpx.get(schema_url, headers=bearer(fire))
    assert hidden.status_code == 404 and "anonymization" not in hidden.text
    assert httpx.get(schema_url, headers=bearer(developer)).status_code == 403
    admin_only = stack.url("catalog", "/api/v1/admin/datasets")
    assert httpx.get(admin_only, headers=bearer(fire)).status_code == 403
    check = stack.url("catalog", f"/api/v1/admin/schemas/{PERSONAL}/check")
    assert httpx.post(check, headers=bearer(fire), json={}).status_code == 403
    assert httpx.get(stack.url("catalog", "/openapi.json"), headers=bearer(fire)).status_code == 200


@pytest.mark.timeout(180)
def test_a_credential_without_records_read_reads_nothing_on_publish(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.start("catalog", "publish")
    _load_internal_records(stack)
    narrow = catalog(
        stack,
        "POST",
        "/api/v1/departments/digital/credentials",
        auth=stack.admin_headers,
        json={"scopes": ["feeds:subscribe"]},
    )
    assert narrow.status_code == 201, narrow.text
    owner_full = _issue(stack, OwnerKind.department, "digital")
    paths = (
        f"/api/v1/datasets/{INTERNAL}/records",
        f"/api/v1/datasets/{INTERNAL}/export?format=csv",
        f"/api/3/action/datastore_search?resource_id={INTERNAL}",
        "/api/v1/datasets/aed/records",
    )
    for path in paths:
        refused = httpx.get(stack.url("publish", path), headers=bearer(narrow.json()["secret"]), timeout=30)
        assert refused.status_code == 403, (path, refused.text)
        assert "records:read" in refused.json()["detail"]
        assert "機密の備考" not in refused.text and "digital-" not in refused.text
    # The owner's credential with every department scope still reads its records.
    allowed = httpx.get(stack.url("publish", paths[0]), headers=bearer(owner_full), timeout=30)
    assert allowed.status_code == 200 and len(allowed.json()["records"]) == RECORDS


@pytest.mark.timeout(180)
def test_department_credentials_expire_by_default_and_expired_ones_are_refused(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.extra_env["CITYOS_CREDENTIAL_LIFETIME_DAYS"] = "30"
    stack.start("catalog", "publish")
    issued = catalog(stack, "POST", "/api/v1/departments/fire/credentials", auth=stack.admin_headers, json={})
    assert issued.status_code == 201, issued.text
    expires = datetime.fromisoformat(issued.json()["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    secret = issued.json()["secret"]
    assert catalog(stack, "GET", "/api/v1/departments", auth=bearer(secret)).status_code == 200

    # The same credential once its day has passed, and one from before expiry was required.
    engine = make_engine(stack.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(ApiKey)
                .where(ApiKey.id == issued.json()["key_id"])
                .values(expires_at=datetime.now(UTC))
            )
    finally:
        engine.dispose()
    legacy = _issue(stack, OwnerKind.department, "digital")
    engine = make_engine(stack.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(update(ApiKey).where(ApiKey.owner_id == "digital").values(expires_at=None))
    finally:
        engine.dispose()
    for presented in (secret, legacy):
        for answer in (
            catalog(stack, "GET", "/api/v1/departments", auth=bearer(presented)),
            httpx.get(stack.url("publish", "/api/v1/datasets/aed/records"), headers=bearer(presented)),
        ):
            assert answer.status_code == 401, answer.text
            assert "expired" in answer.json()["detail"]


@pytest.mark.timeout(180)
def test_administrators_act_by_name_and_the_static_token_is_only_break_glass(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    glass = "break-glass-" + "x" * 40
    stack.extra_env["CITYOS_ADMIN_TOKEN"] = glass
    issued = stack.cli("admins", "issue", "alice", "--days", "7")
    assert issued.returncode == 0, issued.stderr.decode()
    alice = issued.stdout.decode().strip()
    stack.start("catalog")

    made = catalog(stack, "POST", "/api/v1/departments/fire/credentials", auth=bearer(alice), json={})
    assert made.status_code == 201, made.text
    glass_made = catalog(
        stack, "POST", "/api/v1/departments/digital/credentials", auth=bearer(glass), json={}
    )
    assert glass_made.status_code == 201, glass_made.text
    audit = catalog(stack, "GET", "/api/v1/audit", auth=bearer(alice), params={"action": "key.issued"}).json()
    actors = {entry["subject_id"]: entry["actor"] for entry in audit}
    assert actors[made.json()["key_id"]] == "admin:alice"
    assert actors[glass_made.json()["key_id"]] == "admin:break-glass"
    assert "break-glass administrator token used" in stack.log_tail("catalog", 200)

    # Revoked through the CLI: refused from the next request on.
    listed = json.loads(stack.cli("admins", "list", "alice").stdout)
    assert [row["owner_kind"] for row in listed] == ["admin"]
    assert stack.cli("admins", "revoke", listed[0]["id"]).returncode == 0
    assert catalog(stack, "GET", "/api/v1/departments", auth=bearer(alice)).status_code == 401
    # A never-expiring administrator credential cannot be issued.
    assert stack.cli("admins", "issue", "bob", "--days", "0").returncode != 0


@pytest.mark.timeout(180)
def test_guessing_credentials_is_throttled_on_both_services(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.extra_env.update(
        {
            "CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE": "5",
            "CITYOS_CATALOG_UNAUTHENTICATED_RATE_PER_MINUTE": "5",
            "CITYOS_CATALOG_RATE_PER_MINUTE": "5",
        }
    )
    stack.start("catalog", "publish")
    guesses = [f"cos_{n:08x}_{'G' * 43}" for n in range(6)]
    for service, path in (("publish", "/api/v1/datasets/aed/records"), ("catalog", "/api/v1/departments")):
        answers = [httpx.get(stack.url(service, path), headers=bearer(guess)) for guess in guesses]
        assert [a.status_code for a in answers] == [401] * 5 + [429], service
        assert int(answers[-1].headers["retry-after"]) >= 1
    # The catalog limits each credential too.
    admin = [
        httpx.get(stack.url("catalog", "/api/v1/departments"), headers=stack.admin_headers) for _ in range(6)
    ]
    assert [a.status_code for a in admin] == [200] * 5 + [429]
    metrics = httpx.get(stack.url("publish", "/metrics")).text
    assert 'cityos_publish_rate_limited_requests_total{key_class="anonymous"} 1.0' in metrics
