"""The dead-letter header contract: exact bytes written, and reading them back."""

from __future__ import annotations

import pytest

from cityos.kernel.deadletter import (
    Origin,
    Reason,
    Verdict,
    deadletter_headers,
    original_headers,
    parse_verdict,
    verdict_headers,
)

INGEST_NAMES = [
    "cityos_reason",
    "cityos_detail",
    "cityos_pointer",
    "cityos_schema",
    "cityos_dataset",
    "cityos_department",
    "cityos_source_topic",
    "cityos_source_partition",
    "cityos_source_offset",
    "cityos_event_id",
]
CATALOG_NAMES = [
    "cityos_reason",
    "cityos_detail",
    "cityos_source_topic",
    "cityos_source_partition",
    "cityos_source_offset",
]


def received(produced: list[tuple[str, str | bytes]]) -> list[tuple[str, bytes | None]]:
    """The headers as a consumer of the dead-letter topic gets them: bytes."""
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in produced]


def ingest_verdict(reason: Reason) -> Verdict:
    return Verdict(
        reason=reason,
        detail="名称 is too long",
        origin=Origin("dept.fire.events", 3, 41),
        pointer="/data/名称",
        schema="https://schemas.cityos.example/aed/1",
        dataset="aed",
        department="fire",
        event_id="evt-1",
    )


def catalog_verdict(reason: Reason) -> Verdict:
    return Verdict(reason, "IntegrityError: duplicate key", Origin("cityos.validated", 0, 7))


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_survives_a_round_trip(reason: Reason) -> None:
    for verdict, names in ((ingest_verdict(reason), INGEST_NAMES), (catalog_verdict(reason), CATALOG_NAMES)):
        headers = verdict_headers(verdict)
        assert [name for name, _ in headers] == names
        parsed = parse_verdict(headers)
        assert parsed == verdict
        assert parsed.reason is reason


def test_the_catalog_reasons_are_in_the_one_enum() -> None:
    assert Reason("catalog_rejected") is Reason.CATALOG_REJECTED
    assert Reason("undecodable_validated_event") is Reason.UNDECODABLE_VALIDATED_EVENT
    assert len({reason.value for reason in Reason}) == len(Reason)


def test_ingest_dead_letter_bytes() -> None:
    verdict = Verdict(
        reason=Reason.SCHEMA_VIOLATION,
        detail="é" * 600,  # 1200 bytes: cut at 1000
        origin=Origin("city.dept.fire.events", 2, 9_000_000_000),
        pointer="/data/緯度",
        schema="https://schemas.cityos.example/aed/1",
        dataset="aed",
        department="fire",
        event_id="x" * 250,
    )
    original = [("ce_id", b"evt-1"), ("empty", None), ("x-trace", b"t-1")]
    assert deadletter_headers(original, verdict) == [
        ("ce_id", b"evt-1"),
        ("x-trace", b"t-1"),
        ("cityos_reason", b"schema_violation"),
        ("cityos_detail", "é".encode() * 500),
        ("cityos_pointer", "/data/緯度".encode()),
        ("cityos_schema", b"https://schemas.cityos.example/aed/1"),
        ("cityos_dataset", b"aed"),
        ("cityos_department", b"fire"),
        ("cityos_source_topic", b"city.dept.fire.events"),
        ("cityos_source_partition", b"2"),
        ("cityos_source_offset", b"9000000000"),
        ("cityos_event_id", b"x" * 200),
    ]


def test_ingest_dead_letter_with_nothing_known_writes_every_header_empty() -> None:
    verdict = Verdict(
        Reason.MALFORMED_JSON,
        "malformed JSON",
        Origin("dept.fire.events", 0, 0),
        pointer="",
        schema="",
        dataset="unknown",
        department="fire",
        event_id="",
    )
    headers = dict(verdict_headers(verdict))
    assert headers["cityos_pointer"] == headers["cityos_schema"] == headers["cityos_event_id"] == b""
    assert parse_verdict(verdict_headers(verdict)) == verdict


def test_catalog_dead_letter_bytes() -> None:
    long_schema = "s" * 600  # the schema limit applies to what ingest writes; cut at 500 bytes
    assert (
        dict(verdict_headers(Verdict(Reason.SCHEMA_VIOLATION, "", Origin("t", 0, 0), schema=long_schema)))[
            "cityos_schema"
        ]
        == b"s" * 500
    )
    verdict = Verdict(Reason.CATALOG_REJECTED, "IntegrityError: 重複", Origin("cityos.validated", 5, 12))
    assert deadletter_headers([("content-type", b"application/cloudevents+json")], verdict) == [
        ("content-type", b"application/cloudevents+json"),
        ("cityos_reason", b"catalog_rejected"),
        ("cityos_detail", "IntegrityError: 重複".encode()),
        ("cityos_source_topic", b"cityos.validated"),
        ("cityos_source_partition", b"5"),
        ("cityos_source_offset", b"12"),
    ]


def test_missing_headers_read_as_empty() -> None:
    assert parse_verdict([]) == Verdict("", "", Origin("", None, None))
    partial = parse_verdict([("cityos_reason", b"catalog_rejected"), ("cityos_dataset", b"aed")])
    assert partial.reason is Reason.CATALOG_REJECTED
    assert (partial.dataset, partial.department, partial.pointer) == ("aed", None, None)


def test_foreign_headers_are_read_leniently() -> None:
    verdict = parse_verdict(
        [
            ("cityos_reason", b"written_by_a_newer_version"),
            ("cityos_source_partition", b"three"),
            ("cityos_source_offset", "４２".encode()),  # full-width digits are no offset
            ("cityos_unheard_of", b"ignored"),
            ("x-cityos_reason", b"not ours"),
            ("cityos_detail", None),
        ]
    )
    assert verdict.reason == "written_by_a_newer_version" and not isinstance(verdict.reason, Reason)
    assert verdict.origin == Origin("", None, None)
    assert verdict.detail == ""


def test_non_utf8_bytes_are_replaced_not_raised() -> None:
    # A cut at 1000 bytes may split a character; the reader must still list the letter.
    verdict = parse_verdict([("cityos_reason", b"\xffbad"), ("cityos_detail", "é".encode()[:1] + b"ok")])
    assert verdict.reason == "\ufffdbad"
    assert verdict.detail == "\ufffdok"


def test_the_last_verdict_wins() -> None:
    # A department may send its own cityos_* headers; the connector's verdict comes after them.
    forged = [("cityos_reason", b"catalog_rejected"), ("cityos_event_id", b"forged")]
    headers = deadletter_headers(forged, ingest_verdict(Reason.WRONG_DEPARTMENT))
    verdict = parse_verdict(received(headers))
    assert verdict.reason is Reason.WRONG_DEPARTMENT and verdict.event_id == "evt-1"


def test_original_headers_drop_every_connector_header() -> None:
    headers = deadletter_headers(
        [("x-trace", b"t-1"), ("cityos_replay_of", b"d/0/1")], catalog_verdict(Reason.CATALOG_REJECTED)
    )
    assert original_headers([*received(headers), ("nothing", None)]) == [("x-trace", b"t-1")]
