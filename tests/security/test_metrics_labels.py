"""``/metrics`` answers without a credential, so after an authorised read of internal data neither
publish nor the catalog may name the dataset there: non-public datasets count as ``non-public``."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from cityos.domain.metric_labels import NON_PUBLIC
from cityos.kernel.settings import REPO_ROOT
from tests.support.feeds import aed, bearer, copier, credential, produce, validated_event
from tests.support.stack import Stack

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
        if counts.get(INTERNAL, 0) >= RECORDS and counts.get("aed", 0) >= RECORDS:
            return
        time.sleep(0.3)
    raise AssertionError("records did not reach the catalog")


@pytest.mark.timeout(180)
def test_metrics_name_public_datasets_only(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.start("catalog", "publish")
    producer = stack.producer()
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
    for text in (publish_metrics, catalog_metrics):
        assert INTERNAL not in text and "resident-moves" not in text and "digital" not in text
        assert set(DATASET_LABEL.findall(text)) <= public_datasets() | {NON_PUBLIC}
    # The internal read is counted, under the folded value.
    assert re.search(
        r'cityos_publish_dataset_requests_total\{dataset="non-public",format="json",key_class="department"\} 1\.0',
        publish_metrics,
    )
    assert 'cityos_publish_records_served_total{dataset="aed",format="json"}' in publish_metrics
    assert re.search(r'cityos_catalog_records_upserted_total\{dataset="non-public"\} [1-9]', catalog_metrics)
    assert re.search(r'cityos_catalog_records_upserted_total\{dataset="aed"\} [1-9]', catalog_metrics)
