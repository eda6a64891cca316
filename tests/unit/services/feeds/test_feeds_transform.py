"""The republisher's pure parts: routes from grants and subscriptions, filter, projection,
denial, state records and the Kafka ACL bindings."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cityos.domain import grants as admin
from cityos.domain.access import Caller, CallerKind
from cityos.domain.acls import TopicLayout, acl_specs, to_binding
from cityos.kernel.events import TYPE_DELETED
from cityos.kernel.settings import Settings
from services.feeds.policy import Route, load_policy
from services.feeds.state import parse_state, state_key, state_value
from services.feeds.transform import Outcome, dataset_of, decode, headers, matches, render

ADMIN = Caller(CallerKind.admin)


def route(**overrides: object) -> Route:
    values: dict[str, object] = {
        "subscription_id": 7,
        "department": "fire",
        "dataset": "copier-usage",
        "topic": "feed.fire.copier-usage",
        "start_mode": "snapshot",
        "filter_json": b"{}",
        "fields": None,
        "allowed": True,
        "filter": {},
    }
    values.update(overrides)
    return Route(**values)  # type: ignore[arg-type]


def event(data: dict[str, object], event_type: str = "jp.cityos.record.upserted") -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": "e1", "source": "/s", "type": event_type, "data": data})


RECORD = {"ID": "fire-2026-01", "部局コード": "fire", "枚数_モノクロ": 10, "備考": "内部メモ"}


def test_full_access_passes_the_validated_bytes_through() -> None:
    raw = event(RECORD)
    decoded = decode(raw, b"copier-usage/fire-2026-01", 2, 41)
    assert decoded is not None
    assert render(route(), decoded) == (Outcome.delivered, raw)
    assert dict(headers(route(), decoded, "live"))["cityos_source_offset"] == b"41"


def test_projection_removes_every_other_field_and_keeps_the_envelope() -> None:
    decoded = decode(event(RECORD), b"k", 0, 0)
    assert decoded is not None
    outcome, value = render(route(fields=frozenset({"ID", "枚数_モノクロ"})), decoded)
    body = orjson.loads(value or b"")
    assert outcome is Outcome.delivered
    assert body["data"] == {"ID": "fire-2026-01", "枚数_モノクロ": 10}
    assert (body["id"], body["type"]) == ("e1", "jp.cityos.record.upserted")
    assert "内部メモ" not in (value or b"").decode()


def test_filter_equality_and_deletions_always_pass() -> None:
    by_department = route(filter={"部局コード": "fire", "枚数_モノクロ": 10.0})
    upsert = decode(event(RECORD), b"k", 0, 0)
    other = decode(event({**RECORD, "部局コード": "digital"}), b"k", 0, 1)
    missing = decode(event({"ID": "x"}), b"k", 0, 2)
    deletion = decode(event({"ID": "x"}, TYPE_DELETED), b"k", 0, 3)
    assert upsert and other and missing and deletion
    assert matches(by_department, upsert)  # 10 == 10.0, as JSON compares numbers
    assert render(by_department, other) == (Outcome.filtered, None)
    assert render(by_department, missing) == (Outcome.filtered, None)
    assert render(by_department, deletion)[0] is Outcome.delivered
    assert not matches(route(filter={"枚数_モノクロ": True}), decode(event({"枚数_モノクロ": 1}), b"k", 0, 0))  # type: ignore[arg-type]


def test_denied_route_delivers_nothing() -> None:
    decoded = decode(event(RECORD), b"k", 0, 0)
    assert decoded is not None
    assert render(route(allowed=False), decoded) == (Outcome.denied, None)


@pytest.mark.parametrize("value", [b"", b"not json", b"[1]", b'"text"', None])
def test_undecodable_messages_are_skipped(value: bytes | None) -> None:
    assert decode(value, b"k", 0, 0) is None


def test_dataset_of_key() -> None:
    assert dataset_of(b"copier-usage/fire-2026-01") == "copier-usage"
    assert dataset_of(b"aed/a/b") == "aed"
    assert dataset_of(None) == ""


def test_state_records_round_trip() -> None:
    assert state_key(3, 5) == b"3/5"
    assert parse_state(state_value(3, 5, 1234, "snapshot")) == ((3, 5), 1234)
    assert parse_state(b"{}") is None
    assert parse_state(b"garbage") is None


def test_policy_routes_follow_grants_and_projections(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        admin.grant(
            session, caller=ADMIN, dataset_id="copier-usage", grantee="fire", fields=["年月", "部局コード"]
        )
        request = admin.SubscriptionRequest(
            "copier-usage", {"部局コード": "fire"}, ["年月"], admin.StartMode.now
        )
        admin.subscribe(session, caller=ADMIN, department="fire", request=request, topic_prefix="x.")
        public = admin.SubscriptionRequest("aed", {}, None, admin.StartMode.snapshot)
        admin.subscribe(session, caller=ADMIN, department="planning", request=public, topic_prefix="x.")
    with Session(engine) as session:
        policy = load_policy(session)
    internal, aed = policy.routes
    assert (internal.topic, internal.label, internal.allowed) == (
        "x.feed.fire.copier-usage",
        "fire.copier-usage",
        True,
    )
    assert internal.fields == frozenset({"年月", "ID"}), "projection within the grant, plus the record key"
    assert internal.filter == {"部局コード": "fire"}
    assert (aed.fields, aed.allowed, aed.start_mode) == (None, True, "snapshot")
    assert policy.active_grants == 1

    with Session(engine) as session, session.begin():
        admin.revoke(session, caller=ADMIN, dataset_id="copier-usage", grantee="fire")
    with Session(engine) as session:
        after = load_policy(session)
    assert after != policy
    assert [r.allowed for r in after.routes] == [False, True]
    with Session(engine) as session:
        assert load_policy(session) == after, "loading twice gives an equal policy (no spurious aborts)"


def test_acl_bindings_per_department_and_for_the_republisher() -> None:
    specs = acl_specs(
        [("fire", "User:dept-fire"), ("water", None)], TopicLayout.of(Settings(topic_prefix="p."))
    )
    lines = [spec.line() for spec in specs]
    assert "ALLOW User:dept-fire READ TOPIC PREFIXED:p.feed.fire." in lines
    assert "ALLOW User:dept-fire WRITE TOPIC LITERAL:p.dept.fire.events" in lines
    assert "ALLOW User:cityos-feeds WRITE TRANSACTIONAL_ID PREFIXED:p.cityos-feeds" in lines
    # A department without a configured principal gets the default one.
    assert "ALLOW User:dept-water WRITE TOPIC LITERAL:p.dept.water.events" in lines
    # A department never gets anything on another department's feeds or on the validated topic.
    fire = [s for s in specs if s.principal == "User:dept-fire"]
    assert all(s.name.startswith(("p.feed.fire.", "p.dept.fire.")) for s in fire)
    assert all(to_binding(s) is not None for s in specs)
