"""The official JSON-Schema-Test-Suite, draft 2020-12, required part, against the validator ingest uses on
every event (jsonschema-rs, with the platform's offline reference registry).

The suite's ``remotes/`` are served under http://localhost:1234/ from memory, through the same offline
registries the services use (``cityos.kernel.references``); nothing touches the network. In the
required suite ``format`` is an annotation, so validators run with format assertion off here; the
formats ingest asserts are exercised by the dataset tests. The counts are printed (``pytest -s``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from jsonschema import Draft202012Validator

from cityos.kernel.references import offline_registry, rust_registry
from tests.support.json_schema_suite import DRAFT_2020_12, SUITE, Case, read_cases

REMOTE_BASE = "http://localhost:1234/"
# The formats ingest asserts (jsonschema-rs with format validation on), each with an optional suite file.
FORMATS = (
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "json-pointer",
    "relative-json-pointer",
    "regex",
)

Validate = Callable[[Any, Any], bool]


def remotes() -> dict[str, Any]:
    documents = {}
    for file in sorted((SUITE / "remotes").rglob("*.json")):
        if file.relative_to(SUITE / "remotes").parts[0] == "v1":
            continue  # the next, unreleased specification's remotes: no 2020-12 test uses them
        documents[REMOTE_BASE + file.relative_to(SUITE / "remotes").as_posix()] = json.loads(
            file.read_text(encoding="utf-8")
        )
    return documents


def cases() -> list[Case]:
    """(id, schema, instance, valid) of every required draft 2020-12 test."""
    return [case for file in sorted(DRAFT_2020_12.glob("*.json")) for case in read_cases(file, file.stem)]


def rust_validate() -> Validate:
    registry = rust_registry(remotes())

    def validate(schema: Any, instance: Any) -> bool:
        validator = jsonschema_rs.validator_for(
            schema, registry=registry, validate_formats=False, base_uri=None
        )
        return bool(validator.is_valid(instance))

    return validate


@pytest.mark.parametrize("name, make", [("jsonschema-rs", rust_validate)])
def test_required_draft_2020_12_suite_passes_completely(name: str, make: Callable[[], Validate]) -> None:
    all_cases = cases()
    assert len(all_cases) > 1000, f"suite not found or truncated at {SUITE}"
    validate = make()
    failures = []
    for case_id, schema, instance, expected in all_cases:
        try:
            verdict = validate(schema, instance)
        except Exception as exc:  # a crash is a failure of that case, reported with the others
            failures.append(f"{case_id}: raised {type(exc).__name__}: {exc}")
            continue
        if verdict != expected:
            failures.append(f"{case_id}: expected {'valid' if expected else 'invalid'}")
    passed = len(all_cases) - len(failures)
    print(
        f"\n{name}: {passed}/{len(all_cases)} required draft 2020-12 tests passed ({passed / len(all_cases):.1%})"
    )
    assert failures == [], "\n".join(failures[:50])


def test_remotes_are_only_served_from_memory() -> None:
    assert Path(SUITE / "remotes").is_dir()
    validator = Draft202012Validator(
        {"$ref": "http://localhost:1234/nowhere.json"}, registry=offline_registry({})
    )
    with pytest.raises(Exception, match="nowhere"):
        validator.is_valid(1)


def format_cases() -> list[Case]:
    """The optional format tests of the formats ingest asserts."""
    return [
        case
        for name in FORMATS
        for case in read_cases(DRAFT_2020_12 / "optional" / "format" / f"{name}.json", name)
    ]


def test_format_assertion_as_ingest_runs_it() -> None:
    """With format assertion on (ingest's setting), the validator agrees with the suite's optional
    format tests for every format ingest asserts."""
    all_cases = format_cases()
    failures = []
    for case_id, schema, instance, expected in all_cases:
        verdict = bool(jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(instance))
        if verdict != expected:
            failures.append(f"{case_id}: expected {'valid' if expected else 'invalid'}")
    passed = len(all_cases) - len(failures)
    print(f"\njsonschema-rs: {passed}/{len(all_cases)} optional format tests passed with format assertion on")
    assert failures == [], "\n".join(failures[:50])
