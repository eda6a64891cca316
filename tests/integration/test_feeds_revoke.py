"""Revoke: from the moment the revoke is committed, the API answers 404 and nothing more reaches
the feed (the republisher re-checks grants before every commit); the audit log shows the grant,
the accesses and the revoke."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest

from tests.support.feeds import (
    admin,
    bearer,
    catalog,
    copier,
    credential,
    grant,
    produce,
    subscribe,
    validated_event,
)
from tests.support.stack import Stack

FIELDS = ["ID", "部局コード", "枚数_モノクロ"]


def produce_until(stack: Stack, stop: threading.Event, progress: list[int]) -> None:
    producer = stack.producer()
    topic = stack.settings.validated_topic
    index = 0
    while not stop.is_set():
        key, value = validated_event("copier-usage", copier(index % 50, index), "ID", f"rv-{index}")
        produce(producer, topic, key, value)
        producer.flush(10)
        index += 1
        progress[0] = index  # events [0, index) have been handed to the broker
        time.sleep(0.01)


@pytest.mark.timeout(240)
def test_revoke_stops_api_and_feed_at_once_and_is_audited(stack: Stack) -> None:
    stack.start("catalog", "feeds", "publish")
    fire = credential(stack, "fire")
    grant(stack, "copier-usage", "fire", FIELDS)
    sub = subscribe(stack, "fire", "copier-usage", start="now")
    stop = threading.Event()
    progress = [0]
    producer = threading.Thread(target=produce_until, args=(stack, stop, progress))
    producer.start()
    try:
        stack.read(sub["topic"], until=lambda m: len(m) >= 30, timeout_s=60)
        records_url = stack.url("publish", "/api/v1/datasets/copier-usage/records")
        deadline = time.monotonic() + 30
        while True:  # the catalog stores the records asynchronously
            response = httpx.get(records_url, headers=bearer(fire), timeout=10)
            assert response.status_code == 200, response.text
            records = response.json()["records"] if isinstance(response.json(), dict) else response.json()
            if records or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert records, "the granted department reads the records"
        assert all(set(record) <= set(FIELDS) for record in records), "only the granted fields"

        revoke = catalog(stack, "DELETE", "/api/v1/datasets/copier-usage/grants/fire", auth=admin(stack))
        revoked_at = time.monotonic()
        after = progress[0]  # every event from this index on was produced after the revoke
        assert revoke.status_code == 200, revoke.text
        status = httpx.get(records_url, headers=bearer(fire), timeout=10).status_code
        while status != 404 and time.monotonic() - revoked_at < 1.0:
            status = httpx.get(records_url, headers=bearer(fire), timeout=10).status_code
        assert status == 404, "the API refuses within one second"
        assert time.monotonic() - revoked_at < 1.0
        time.sleep(2.0)  # the stream goes on; none of it may reach the feed
    finally:
        stop.set()
        producer.join()
    assert progress[0] > after + 50, "events kept flowing after the revoke"

    feed = stack.read(sub["topic"], until=lambda m: False, timeout_s=5)
    indexes = [int(orjson.loads(m.value() or b"")["id"].removeprefix("rv-")) for m in feed]
    assert indexes, "the feed delivered while granted"
    assert max(indexes) < after, f"event rv-{max(indexes)} reached the feed after the revoke (rv-{after})"
    assert all(set(orjson.loads(m.value() or b"")["data"]) == set(FIELDS) for m in feed)

    deadline = time.monotonic() + 10
    actions: list[str] = []
    while time.monotonic() < deadline:
        audit = catalog(
            stack, "GET", "/api/v1/audit", auth=admin(stack), params={"subject_id": "copier-usage"}
        )
        assert audit.status_code == 200, audit.text
        actions = [entry["action"] for entry in audit.json()]
        if "feed.denied" in actions:
            break
        time.sleep(0.2)
    for action in ("grant.created", "subscription.created", "feed.started", "access.read", "grant.revoked"):
        assert action in actions, f"{action} missing from the audit log: {actions}"
    assert actions.index("grant.created") < actions.index("access.read") < actions.index("grant.revoked")
    after_revoke = actions[actions.index("grant.revoked") :]
    assert "access.denied" in after_revoke and "feed.denied" in after_revoke

    metrics = httpx.get(stack.url("feeds", "/metrics"), timeout=10).text
    samples = {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith("cityos_feeds_events_total{")
    }
    # copier-usage is internal: /metrics (unauthenticated) names the department, never the dataset.
    assert not any("copier-usage" in name for name in samples)
    assert samples['cityos_feeds_events_total{outcome="denied",subscription="fire.non-public"}'] > 0
    assert samples['cityos_feeds_events_total{outcome="delivered",subscription="fire.non-public"}'] >= len(
        feed
    )
    export = catalog(stack, "GET", "/api/v1/audit/export", auth=admin(stack), params={"format": "csv"})
    assert export.status_code == 200 and export.content.startswith("\ufeff".encode())
    assert b"grant.revoked" in export.content
