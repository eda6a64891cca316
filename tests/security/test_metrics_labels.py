"""``/metrics`` answers without a credential, so after an authorised read of internal data neither
publish nor the catalog may name the dataset there, nor ingest after validating it: non-public
datasets count as ``non-public``."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from cityos.domain.metric_labels import NON_PUBLIC
from cityos.kernel.settings import REPO_ROOT
from tests.support.feeds import aed, bearer, copier, credential, produce, validated_event
from tests.support.stack import Stack, header

INTERNAL = "copier-usage"
RECORDS = 3
DATASET_LABEL = re.compile(r'dataset="([^"]*)"')


def public_datasets() -> set[str]:
    """The bundled datasets classified public, read from their metadata (not from the code)."""
    found = set()
    for meta in (REPO_ROOT / "schemas").glob("*/dataset.json"):
        document = json.loads(meta.read_text(encoding="utf-8"))
        if document["classification"] == "public":
            found.add(document["id"])
    return found


def _wait(stack: Stack) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = httpx.get(
            stack.url("catalog", "/api/v1/admin/datasets"), headers=stack.admin_headers
        ).json()
        counts = {d["id"]: d["record_count"] for d in listing}
        if counts.get(INTERNAL, 0) >= RECORDS + 1 and counts.get("aed", 0) >= RECORDS:  # + 1 through ingest
            return
        time.sleep(0.3)
    letters = stack.read(stack.settings.deadletter_topic, until=lambda found: len(found) > 0, timeout_s=2)
    reasons = [(header(m, "cityos_reason"), header(m, "cityos_detail")) for m in letters]
    raise AssertionError(f"records did not reach the catalog: {counts}; dead letters {reasons}")


@pytest.mark.timeout(180)
def test_metrics_name_public_datasets_only(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.start("catalog", "publish", "ingest")
    producer = stack.producer()
    # The owner's system sends one internal record through ingest as well.
    through_key, through_value = validated_event(INTERNAL, copier(99, 1), "ID", "m-through-ingest")
    producer.produce(stack.settings.department_topic("digital"), key=through_key, value=through_value)
    for number in range(RECORDS):
        for dataset, record, key in ((INTERNAL, copier(number, 1), "ID"), ("aed", aed(number, 1), "NO")):
            produce(
                producer,
                stack.settings.validated_topic,
                *validated_event(dataset, record, key, f"m-{dataset}-{number}"),
            )
    assert producer.flush(30) == 0
    _wait(stack)

    digital = credential(stack, "digital")  # the owner: an authorised read of internal records
    for path in (f"/api/v1/datasets/{INTERNAL}/records", f"/api/v1/datasets/{INTERNAL}/export?format=csv"):
        answer = httpx.get(stack.url("publish", path), headers=bearer(digital), timeout=30)
        assert answer.status_code == 200, answer.text
    assert httpx.get(stack.url("publish", "/api/v1/datasets/aed/records")).status_code == 200

    publish_metrics = httpx.get(stack.url("publish", "/metrics")).text
    catalog_metrics = httpx.get(stack.url("catalog", "/metrics")).text  # no credential needed
    ingest_metrics = httpx.get(stack.url("ingest", "/metrics")).text
    for text in (publish_metrics, catalog_metrics, ingest_metrics):
        assert INTERNAL not in text and "resident-moves" not in text
        assert set(DATASET_LABEL.findall(text)) <= public_datasets() | {NON_PUBLIC}
    # Who read is not published either (ingest's department label names where an event came from:
    # departments are public, the catalog of what they hold is not).
    assert "digital" not in publish_metrics and "digital" not in catalog_metrics
    # The internal read is counted, under the folded value.
    assert re.search(
        r'cityos_publish_dataset_requests_total\{dataset="non-public",format="json",key_class="department"\} 1\.0',
        publish_metrics,
    )
    assert 'cityos_publish_records_served_total{dataset="aed",format="json"}' in publish_metrics
    assert re.search(r'cityos_catalog_records_upserted_total\{dataset="non-public"\} [1-9]', catalog_metrics)
    assert re.search(r'cityos_catalog_records_upserted_total\{dataset="aed"\} [1-9]', catalog_metrics)
    assert 'cityos_ingest_events_valid_total{dataset="non-public",department="digital"} 1.0' in ingest_metrics
