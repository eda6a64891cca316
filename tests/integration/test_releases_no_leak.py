"""Raw personal records never appear at any public endpoint. With synthetic personal records in the
catalog (through Kafka), a public release (the CLI) and a partner release, walk every GET route of
the publish OpenAPI document -- records API, exports in every format, CKAN actions, DCAT, usage,
the ファイル簿 -- for every dataset id, anonymously and with a developer key, and look for any
source identifier, name, address, birth date or record key. The public release is a positive control:
its rows must be served, so a walker that reached nothing would fail."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from cityos.domain.anonymize import proposals as workflow
from cityos.domain.anonymize.synthetic import synthetic_moves
from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.engine import make_engine, session_factory
from cityos.kernel.settings import REPO_ROOT
from tests.support.stack import Stack

RECORDS = 400
SEED = 91
CKAN_ACTIONS = (
    "status_show",
    "package_list",
    "current_package_list_with_resources",
    "package_show",
    "package_search",
    "organization_list",
    "organization_show",
    "resource_show",
    "datastore_search",
)


def _cli(stack: Stack, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cityos", "release", *args],
        env=stack.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait_for_records(stack: Stack, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        datasets = httpx.get(
            stack.url("catalog", "/api/v1/admin/datasets"), headers=stack.admin_headers
        ).json()
        if next(d["record_count"] for d in datasets if d["id"] == "resident-moves") >= RECORDS:
            return
        time.sleep(0.5)
    raise AssertionError("synthetic records did not reach the catalog")


def _urls(spec: dict[str, Any], dataset_ids: list[str], record_keys: list[str]) -> list[str]:
    urls: list[str] = []
    for path, operations in spec["paths"].items():
        if "get" not in operations or path in ("/healthz", "/readyz"):
            continue
        if "{action_name}" in path:
            for action in CKAN_ACTIONS:
                urls.append(f"/api/3/action/{action}")
                urls += [f"/api/3/action/{action}?id={d}&resource_id={d}&q={d}" for d in dataset_ids]
            continue
        if "{record_key}" in path:
            urls += [
                path.replace("{dataset_id}", d).replace("{record_key}", k)
                for d in dataset_ids
                for k in record_keys
            ]
            continue
        for dataset in dataset_ids if "{" in path else [""]:
            concrete = re.sub(r"\{[a-z_]+\}", dataset, path)
            urls.append(concrete)
            if concrete.endswith(("/export", "/records")):
                urls += [f"{concrete}?format={f}&limit=10000" for f in ("json", "csv", "geojson", "ndjson")]
    return urls


def test_no_public_endpoint_serves_raw_personal_records(stack: Stack) -> None:
    stack.start("catalog")
    stack.start("ingest", "publish")
    _cli(stack, "generate-synthetic", "--count", str(RECORDS), "--seed", str(SEED))
    _wait_for_records(stack)
    public = _cli(stack, "run", "--classification", "public", "--operator", "citizens")
    public_id = re.search(r'"dataset": "([^"]+)"', public).group(1)  # type: ignore[union-attr]
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            now = datetime.now(UTC)
            call = workflow.open_call(
                session,
                dataset_id="resident-moves",
                title="募集",
                opens_at=now - timedelta(days=1),
                closes_at=now + timedelta(days=40),
                actor="citizens",
            )
            proposal = workflow.submit_proposal(
                session,
                call_id=call.id,
                applicant_id="acme",
                purpose="分析",
                items=["年齢"],
                use_period="1年",
                safety_measures="管理",
            )
            workflow.decide(session, proposal_id=proposal.id, accept=True, reason="適合", actor="citizens")
            partner = workflow.release_for_proposal(session, proposal_id=proposal.id, actor="citizens")
            assert partner.release is not None, partner.reasons
            partner_id = partner.release.dataset_id
            developer = issue_key(
                session, owner_kind=OwnerKind.developer, owner_id="dev", purpose="t", actor="admin"
            )
    finally:
        engine.dispose()

    source = synthetic_moves(RECORDS, seed=SEED)  # the very records sent through Kafka
    # Whole values only: a bare 番地 such as '26-11' also occurs inside any timestamp. Birth dates
    # before 2025 cannot be confused with the platform's own recent timestamps.
    secrets_ = set(source["住民番号"]) | set(source["氏名"]) | set(source["住所"]) | set(source["異動ID"])
    secrets_ |= {born for born in source["生年月日"] if born < "2025"}
    pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets_, key=len, reverse=True)))

    spec = httpx.get(stack.url("publish", "/openapi.json")).json()
    urls = _urls(spec, ["resident-moves", partner_id, public_id], ["MV-0000001", str(source["住民番号"][0])])
    assert len(urls) > 60
    served_public_rows = 0
    for url in urls:
        for headers in ({}, {"X-API-Key": developer.secret}):
            response = httpx.get(stack.url("publish", url), headers=headers, timeout=60)
            assert response.status_code < 500, f"{url}: {response.status_code}"
            leak = pattern.search(response.text)
            assert leak is None, f"{url} serves personal value {leak.group(0)!r}"
            if (
                url.startswith(f"/api/v1/datasets/{public_id}/records?format=json")
                and response.status_code == 200
            ):
                served_public_rows = len(response.json()["records"])
            if partner_id in url and url.startswith("/api/v1/datasets/"):
                assert response.status_code == 404, url
    assert served_public_rows > 0.9 * RECORDS  # the walker reached real released data
