"""The feeds republisher starting before the broker authorizes its transactional ids, as it may on
a cluster while the set-up's ACLs reach every broker: it keeps trying (each try logged) and starts
once they arrive, without exiting; when they never come it stops within its budget, saying why."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from cityos.domain.acls import AclSpec, TopicLayout, acl_specs, apply_acls
from cityos.kernel.kafka import admin_client
from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from tests.support.stack import Stack

RETRY_LINE = "feeds: transactions: "


def transactional_id_acls(stack: Stack) -> list[AclSpec]:
    settings = stack.service_settings
    departments = [
        (d.id, d.kafka_principal) for d in load_schema_dir(settings.schemas_dir).departments.values()
    ]
    specs = [
        s for s in acl_specs(departments, TopicLayout.of(settings)) if s.resource_type == "TRANSACTIONAL_ID"
    ]
    assert specs, "the set-up grants the republisher its transactional ids"
    return specs


def revoke(kafka: KafkaAccess, specs: list[AclSpec]) -> None:
    admin = admin_client(kafka)
    filters = [
        AclBindingFilter(
            ResourceType["TRANSACTIONAL_ID"],
            spec.name,
            ResourcePatternType.PREFIXED,
            spec.principal,
            "*",
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        for spec in {(s.name, s.principal): s for s in specs}.values()
    ]
    for future in admin.delete_acls(filters, request_timeout=30).values():
        future.result()


@pytest.fixture
def stack_without_transactional_ids(
    kafka: KafkaAccess, tmp_path: Path
) -> Iterator[tuple[Stack, list[AclSpec]]]:
    stack = Stack(kafka=kafka, database_url=f"sqlite:///{tmp_path / 'catalog.db'}", log_dir=tmp_path)
    specs = transactional_id_acls(stack)
    revoke(kafka, specs)
    try:
        yield stack, specs
    finally:
        stack.stop_all()


def start_feeds(stack: Stack, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = stack.log_dir / "feeds.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "cityos", "serve", "feeds"],
        env={**stack.env, **env},
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    stack.processes["feeds"] = process  # stopped with the stack
    return process, log


def wait_for(condition: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {condition}")


def ready(stack: Stack) -> bool:
    try:
        return httpx.get(stack.url("feeds", "/readyz"), timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_feeds_waits_for_its_transactional_ids_and_starts_once_granted(
    kafka: KafkaAccess, stack_without_transactional_ids: tuple[Stack, list[AclSpec]]
) -> None:
    stack, specs = stack_without_transactional_ids
    process, log = start_feeds(stack)
    wait_for("a retry logged", lambda: log.read_text(errors="replace").count(RETRY_LINE) >= 2, 60)
    assert process.poll() is None, log.read_text(errors="replace")
    assert not ready(stack)
    text = log.read_text(errors="replace")
    assert "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" in text

    apply_acls(kafka, specs)
    wait_for("feeds ready once granted", lambda: ready(stack) or process.poll() is not None, 60)
    assert process.poll() is None, log.read_text(errors="replace")
    assert stack.processes["feeds"] is process  # the same process: it coped, nobody restarted it


def test_feeds_never_granted_stops_within_its_budget_naming_the_cause(
    stack_without_transactional_ids: tuple[Stack, list[AclSpec]],
) -> None:
    stack, _specs = stack_without_transactional_ids
    budget_s = 4
    started = time.monotonic()
    process, log = start_feeds(stack, CITYOS_KAFKA_START_RETRY_S=str(budget_s))
    code = process.wait(timeout=budget_s + 60)
    took = time.monotonic() - started
    text = log.read_text(errors="replace")
    assert code != 0, text
    assert f"{RETRY_LINE}still failing after" in text
    assert "cityos kafka setup" in text
    # Start-up itself (migration, topics) takes seconds; the retries end at the budget.
    assert took < budget_s + 45, took
