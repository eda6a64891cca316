"""dx-kpi records from progress, and the publication plan: only what differs is sent, with ids that
repeat while the catalog has not moved and change once it has."""

from __future__ import annotations

from datetime import date
from typing import Any

import jsonschema_rs

from cityos.domain.kpi.definitions import load_kpis
from cityos.domain.kpi.progress import compute_progress
from cityos.domain.kpi.publication import Published, kpi_records, publication_plan
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings

SETTINGS = Settings()


def _records() -> list[dict[str, Any]]:
    kpi = next(k for k in load_kpis(SETTINGS.kpi_dir) if k.id == "e-approval-rate")
    source = [
        {"部局コード": "fire", "年月": month, "決裁件数": 300, "電子決裁件数": 100 + i}
        for i, month in enumerate(("2021-04", "2022-02", "2022-04"))
    ]
    return kpi_records(compute_progress(kpi, source, today=date(2022, 5, 10)))


def test_records_validate_one_per_period() -> None:
    records = _records()
    validator = jsonschema_rs.validator_for(load_schema_dir(SETTINGS.schemas_dir).latest("dx-kpi").document)
    assert all(validator.is_valid(r) for r in records)
    ids = [r["ID"] for r in records]
    assert len(set(ids)) == len(ids) == 14 + 2  # April 2021 … May 2022, FY2021 and FY2022
    years = {r["期間"]: r for r in records if r["期間種別"] == "年度"}
    assert years["FY2021"]["値"] == round((100 + 101) / 600 * 100, 2) and not years["FY2021"]["年度途中"]
    assert years["FY2022"]["年度途中"] and years["FY2022"]["年度"] == 2022
    may = next(r for r in records if r["期間"] == "2022-05")
    assert "値" not in may and may["ID"] == "e-approval-rate-2022-05-city"
    assert next(r for r in records if r["期間"] == "2022-02")["年度"] == 2021


def test_the_plan_sends_only_what_differs() -> None:
    records = _records()
    first = publication_plan(records, {})
    assert [r for _, r in first.upserts] == records and first.deletions == []
    assert publication_plan(records, {}) == first  # sent twice before the catalog moved: the same ids

    assert len({prefix for prefix, _ in first.upserts}) == len(records)
    published = {r["ID"]: Published(event_id=f"{p}-{r['ID']}", data=r) for p, r in first.upserts}
    assert publication_plan(records, published).upserts == []

    changed = [{**records[0], "値": 1.0}, *records[1:]]
    plan = publication_plan(changed, published)
    assert [r["ID"] for _, r in plan.upserts] == [records[0]["ID"]]
    # Back to the earlier figure after the change was applied: a new id, so the catalog takes it.
    after_change = {
        **published,
        records[0]["ID"]: Published(event_id=f"{plan.upserts[0][0]}-x", data=changed[0]),
    }
    back = publication_plan(records, after_change)
    assert [r for _, r in back.upserts] == [records[0]] and back.upserts[0][0] != first.upserts[0][0]


def test_deleted_records_come_back_and_vanished_kpis_go() -> None:
    records = _records()
    first = publication_plan(records, {})
    published = {r["ID"]: Published(event_id=f"{p}-{r['ID']}", data=r) for p, r in first.upserts}
    key = records[3]["ID"]
    published[key] = Published(event_id="cli-delete-1", data=None)  # deleted by hand: a tombstone
    published["old-kpi-fy2021-city"] = Published(event_id="e1", data={"ID": "old-kpi-fy2021-city"})
    plan = publication_plan(records, published)
    assert [r["ID"] for _, r in plan.upserts] == [key]
    assert plan.upserts[0][0] != first.upserts[3][0]
    assert [k for _, k in plan.deletions] == ["old-kpi-fy2021-city"]
    assert publication_plan(records, published).deletions == plan.deletions  # the same id again
