"""The access matrix on the real broker and real services: 4 departments x 6 datasets (two of
each classification) x {read records, subscribe, manage grants}. The expected answer of every cell
comes from rules written out independently of the code; 100 % of the cells are
asserted. Granted cells must work (records served, feed delivering); the others are refused
(404 for what the caller may not see). The matrix and its rules live in tests/support/access_matrix.py,
shared with the other read paths' matrix tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.access_matrix import (
    DATASETS,
    DEPARTMENTS,
    GRANTS,
    PER_DATASET,
    RECORD_KEYS,
    expected_fields,
    may_manage,
    may_read,
    record_for,
    schemas_with_extra_datasets,
)
from tests.support.feeds import bearer, catalog, credential, produce, validated_event
from tests.support.stack import Stack


@pytest.mark.timeout(400)
def test_every_cell_of_the_access_matrix(stack: Stack, tmp_path: Path) -> None:
    stack.extra_env["CITYOS_SCHEMAS_DIR"] = str(schemas_with_extra_datasets(tmp_path / "schemas"))
    stack.start("catalog", "publish", "feeds")
    keys = {d: credential(stack, d) for d in {*DEPARTMENTS, "citizens", "city-brand"}}
    for (dataset, grantee), fields in GRANTS.items():  # each grant made by the owner's own credential
        owner = DATASETS[dataset][1]
        made = catalog(
            stack,
            "POST",
            f"/api/v1/datasets/{dataset}/grants",
            auth=bearer(keys[owner]),
            json={"grantee": grantee, "fields": fields},
        )
        assert made.status_code == 201, made.text

    producer = stack.producer()
    for dataset in DATASETS:
        for number in range(PER_DATASET):
            key, value = validated_event(
                dataset, record_for(dataset, number), RECORD_KEYS[dataset], f"mx-{dataset}-{number}"
            )
            produce(producer, stack.settings.validated_topic, key, value, department=DATASETS[dataset][1])
    assert producer.flush(30) == 0
    wait_for_catalog(stack)

    cells = 0
    subscribed: list[tuple[str, str, dict[str, Any]]] = []
    for department in DEPARTMENTS:
        for dataset in DATASETS:
            # read records
            response = httpx.get(
                stack.url("publish", f"/api/v1/datasets/{dataset}/records"),
                headers=bearer(keys[department]),
                timeout=30,
            )
            if may_read(department, dataset):
                assert response.status_code == 200, (department, dataset, response.text)
                records = response.json()["records"]
                assert len(records) == PER_DATASET, (department, dataset)
                visible = expected_fields(department, dataset)
                if visible is not None:
                    assert all(set(r) == visible for r in records), (department, dataset, records[0])
            else:
                assert response.status_code == 404, (department, dataset, response.status_code)
            cells += 1
            # subscribe
            response = catalog(
                stack,
                "POST",
                "/api/v1/subscriptions",
                auth=bearer(keys[department]),
                json={"dataset": dataset},
            )
            if may_read(department, dataset):
                assert response.status_code == 201, (department, dataset, response.text)
                subscribed.append((department, dataset, response.json()))
            else:
                assert response.status_code == 404, (department, dataset, response.status_code)
            cells += 1
    for department in DEPARTMENTS:
        for dataset in DATASETS:
            # manage grants: grant to a department outside the matrix, then revoke it again
            response = catalog(
                stack,
                "POST",
                f"/api/v1/datasets/{dataset}/grants",
                auth=bearer(keys[department]),
                json={"grantee": "construction"},
            )
            if may_manage(department, dataset):
                assert response.status_code == 201, (department, dataset, response.text)
                revoked = catalog(
                    stack,
                    "DELETE",
                    f"/api/v1/datasets/{dataset}/grants/construction",
                    auth=bearer(keys[department]),
                )
                assert revoked.status_code == 200, revoked.text
            elif may_read(department, dataset) or DATASETS[dataset][1] == department:
                assert response.status_code in (403, 409), (department, dataset, response.status_code)
            else:
                assert response.status_code == 404, (department, dataset, response.status_code)
            cells += 1
    assert cells == len(DEPARTMENTS) * len(DATASETS) * 3 == 72

    # A field-subset grantee learns nothing of the other fields through the API: not in JSON or
    # CSV, and not by inference through a filter on an ungranted field.
    records_url = stack.url("publish", "/api/v1/datasets/fire-kpi/records")
    as_digital = bearer(keys["digital"])
    csv_body = httpx.get(records_url, params={"format": "csv"}, headers=as_digital, timeout=30)
    assert csv_body.status_code == 200
    assert "機密の備考" not in csv_body.text and "試験部局" not in csv_body.text
    probes = [
        httpx.get(records_url, params={"備考": value}, headers=as_digital, timeout=30)
        for value in ("機密の備考", "x")
    ]
    statuses = [p.status_code for p in probes]
    assert statuses == [400, 400] or (
        statuses == [200, 200] and probes[0].json()["records"] == probes[1].json()["records"]
    ), f"a filter on an ungranted field answers differently: {statuses}"

    # Every granted subscription works: its feed carries the dataset's records (the snapshot),
    # projected to the granted fields.
    for department, dataset, sub in subscribed:
        feed = stack.read(sub["topic"], until=lambda m: len(m) >= PER_DATASET, timeout_s=60)
        assert len(feed) == PER_DATASET, (department, dataset, len(feed))
        visible = expected_fields(department, dataset)
        for message in feed:
            data = orjson.loads(message.value() or b"")["data"]
            assert set(data) == (visible if visible is not None else set(record_for(dataset, 0))), (
                department,
                dataset,
            )
    assert len(subscribed) == sum(may_read(d, s) for d in DEPARTMENTS for s in DATASETS)


def wait_for_catalog(stack: Stack) -> None:
    deadline = time.monotonic() + 60
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = {
            d["id"]: d["record_count"]
            for d in httpx.get(
                stack.url("catalog", "/api/v1/admin/datasets"), headers=stack.admin_headers
            ).json()
        }
        if all(counts.get(d) == PER_DATASET for d in DATASETS):
            return
        time.sleep(0.3)
    raise AssertionError(f"catalog did not store the records: {counts}")
