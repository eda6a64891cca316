"""Every operation of the catalog's and the open-data API's OpenAPI description, fuzzed with
schemathesis against the real services (one stack with demo data for the module): no answer is a
server error, and every answer is one the description documents (status code, content type, body
schema). The catalog is called as an administrator; the open-data API as an administrator and
anonymously. Examples are derandomized, so a failure reproduces on the next run.

``CITYOS_FUZZ_EXAMPLES`` sets the examples per operation (default 200).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cityos.kernel.kafka_access import KafkaAccess
from tests.support.stack import Stack

EXAMPLES = int(os.environ.get("CITYOS_FUZZ_EXAMPLES", "200"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Rate limits are tested elsewhere; here they would turn most answers into 429.
UNTHROTTLED = {
    "CITYOS_CATALOG_RATE_PER_MINUTE": "1000000",
    "CITYOS_CATALOG_UNAUTHENTICATED_RATE_PER_MINUTE": "1000000",
    "CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE": "1000000",
    "CITYOS_PUBLISH_KEY_RATE_PER_MINUTE": "1000000",
}
# Operations not fuzzed, each with the reason: they are exercised by their own tests.
SKIPPED: dict[str, str] = {}


@pytest.fixture(scope="module")
def fuzz_stack(kafka: KafkaAccess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    environment = Stack(
        kafka=kafka,
        database_url=f"sqlite:///{folder / 'catalog.db'}",
        log_dir=folder,
        extra_env=UNTHROTTLED,
    )
    try:
        environment.start("catalog")
        environment.start("ingest", "publish")
        loaded = environment.cli("demo", "--per-dataset", "5", "--wait", "60")
        assert loaded.returncode == 0, loaded.stdout.decode() + loaded.stderr.decode()
        yield environment
    finally:
        environment.stop_all()


@dataclass
class Findings:
    """Failures by operation and kind, each with the first example that showed it."""

    calls: int = 0
    found: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, operation: str, exc: BaseException, case: Any) -> None:
        failures = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        for failure in failures:
            title = str(getattr(failure, "title", "") or type(failure).__name__)
            message = str(getattr(failure, "message", "") or failure)
            key = (operation, title)
            if key not in self.found:
                self.found[key] = f"{operation}: {title}\n    {message[:800]}\n    {case.as_curl_command()}"

    def report(self) -> str:
        return "\n".join(self.found.values())


def fuzz(base_url: str, headers: dict[str, str]) -> Findings:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers=headers, timeout=30)
    findings = Findings()
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation its own description cannot express
            findings.found[("openapi.json", str(result.err()))] = f"openapi.json: {result.err()}"
        elif result.ok().label not in SKIPPED:
            _fuzz_operation(result.ok(), base_url, headers, findings)
    return findings


def _fuzz_operation(operation: Any, base_url: str, headers: dict[str, str], findings: Findings) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        findings.calls += 1
        try:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)
        except (Exception, BaseExceptionGroup) as exc:  # every failure is a finding, reported together
            findings.add(operation.label, exc, case)

    run()


def issue_reader_key(stack: Stack) -> str:
    """A developer key (``records:read``) for the open-data API, issued by the administrator."""
    answer = httpx.post(
        stack.url("catalog", "/api/v1/admin/keys"),
        json={
            "owner_id": "fuzz@example.com",
            "purpose": "OpenAPI fuzzing",
            "rate_limit_per_minute": 1_000_000,
        },
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


def test_catalog_admin_api_answers_as_documented(fuzz_stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {fuzz_stack.admin_token}"}
    findings = fuzz(fuzz_stack.url("catalog"), auth)
    print(f"\ncatalog: {findings.calls} calls")
    assert not findings.found, findings.report()
    assert findings.calls >= 300


def test_open_data_api_answers_as_documented(fuzz_stack: Stack) -> None:
    # The administrators' token is no open-data credential (it lacks records:read): a developer key.
    auth = {"Authorization": f"Bearer {issue_reader_key(fuzz_stack)}"}
    registered = fuzz(fuzz_stack.url("publish"), auth)
    anonymous = fuzz(fuzz_stack.url("publish"), {})
    print(f"\npublish: {registered.calls} calls with a key, {anonymous.calls} anonymous")
    found = {**registered.found, **{(op, f"anonymous: {t}"): v for (op, t), v in anonymous.found.items()}}
    assert not found, "\n".join(found.values())
    assert registered.calls + anonymous.calls >= 300
