"""API keys and rate limits over real HTTP: anonymous and key limits, 429 with Retry-After and
RateLimit headers, revoked/expired/unknown keys refused, and a key never stored or logged in clear.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from cityos.domain.apikeys import OwnerKind, issue_key, revoke_key
from cityos.kernel.db.engine import session_factory
from tests.support.publish import events, load, schemas_with_sites, serve, yaizu_aed_rows


def _key(engine: Engine, *, limit: int | None = None, expires: datetime | None = None) -> tuple[str, str]:
    with session_factory(engine)() as session, session.begin():
        issued = issue_key(
            session, owner_kind=OwnerKind.developer, owner_id="dev@example.com", purpose="map app",
            actor="admin:test", rate_limit_per_minute=limit, expires_at=expires,
        )  # fmt: skip
    return issued.key_id, issued.secret


def _dump(engine: Engine) -> str:
    """Every row of the tables a key could leak into, as text."""
    with engine.connect() as connection:
        return "\n".join(
            repr(list(connection.execute(text(f"SELECT * FROM {table}"))))
            for table in ("api_keys", "audit_events", "usage_counters")
        )


def test_limits_refusals_and_no_key_in_clear(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schemas_dir = schemas_with_sites(tmp_path)
    engine = load(database_url, schemas_dir, events("aed", yaizu_aed_rows(schemas_dir)))
    own_id, own_key = _key(engine, limit=12)
    default_id, default_key = _key(engine)
    revoked_id, revoked_key = _key(engine)
    _, reporter_key = _key(engine, limit=100)
    expires_at = datetime.now(UTC) + timedelta(seconds=1)
    expired_id, expired_key = _key(engine, expires=expires_at)
    with session_factory(engine)() as session, session.begin():
        assert revoke_key(session, revoked_id, actor="admin:test")
    caplog.set_level(logging.DEBUG)
    try:
        with (
            serve(
                engine,
                database_url,
                publish_anonymous_rate_per_minute=5,
                publish_key_rate_per_minute=8,
                publish_usage_flush_interval_s=0.2,
            ) as server,  # fmt: skip
            httpx.Client(base_url=server.url) as client,
        ):
            url = "/api/v1/datasets/aed/records?limit=2"
            anonymous = [client.get(url) for _ in range(6)]
            assert [r.status_code for r in anonymous] == [200] * 5 + [429]
            assert [r.headers["ratelimit-remaining"] for r in anonymous[:5]] == ["4", "3", "2", "1", "0"]
            refused = anonymous[-1]
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["ratelimit-limit"] == "5"
            assert refused.headers["ratelimit-policy"] == "5;w=60"
            assert refused.json()["error"] == "rate_limited"
            # Operational routes are never throttled.
            assert client.get("/healthz").status_code == 200

            with_own = [client.get(url, headers={"Authorization": f"Bearer {own_key}"}) for _ in range(13)]
            assert [r.status_code for r in with_own] == [200] * 12 + [429]
            assert with_own[0].headers["ratelimit-limit"] == "12"
            with_default = [client.get(url, headers={"X-API-Key": default_key}) for _ in range(9)]
            assert [r.status_code for r in with_default] == [200] * 8 + [429]

            time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.05)
            # Refused keys count against their sender's address like anonymous requests (this
            # address has spent its allowance above, so they would be 429): ask from another one.
            with httpx.Client(
                base_url=server.url, transport=httpx.HTTPTransport(local_address="127.0.0.2")
            ) as other:
                for presented, reason in (
                    (revoked_key, "revoked"),
                    (expired_key, "expired"),
                    (own_id + "_not-the-secret", "not known"),
                    ("not-a-key", "not in the form"),
                ):
                    answer = other.get(url, headers={"Authorization": f"Bearer {presented}"})
                    assert answer.status_code == 401, presented
                    assert reason in answer.json()["detail"]
                    assert presented not in answer.text
            metrics = client.get("/metrics").text
            assert 'cityos_publish_rate_limited_requests_total{key_class="anonymous"} 1.0' in metrics
            assert 'key_class="developer"' in metrics
            report = client.get(
                "/api/v1/usage", params={"dataset": "aed"}, headers={"X-API-Key": reporter_key}
            ).json()["rows"]
    finally:
        stored = _dump(engine)
        engine.dispose()

    secrets = (own_key, default_key, revoked_key, expired_key, reporter_key)
    logged = caplog.text
    for secret in secrets:
        assert secret not in stored
        assert secret not in logged
        assert secret not in metrics
        assert secret.split("_", 2)[2] not in stored  # not even the secret part on its own
    assert revoked_id in logged  # the id is what logs carry
    assert own_id not in metrics  # Prometheus labels carry the class, not the key
    developer = [row for row in report if row["key_class"] == "developer"]
    assert {row["requests"] for row in developer} == {12, 8}
    assert all(row["key"] and row["key"] not in (own_id, default_id) for row in developer)
    assert expired_id not in str(report)
