"""Pure parts of the open-data API: query parsing, rate limiting, validators, ratings, CKAN parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cityos.domain.readmodel.filters import ParamProblem
from cityos.domain.readmodel.query import (
    BBox,
    Condition,
    Near,
    RecordQuery,
    SortKey,
    decode_cursor,
    encode_cursor,
    haversine_m,
    parse_query,
)
from services.publish import ckan
from services.publish.conditional import http_date, not_modified, weak_etag
from services.publish.limits import RateLimiter
from services.publish.quality import five_star, metadata_quality
from services.publish.usage import Tally, UsageBuffer, hashed_key, hour_of

SCHEMA: dict[str, Any] = {
    "properties": {
        "ID": {"type": "string"},
        "名称": {"type": "string"},
        "数": {"type": "integer"},
        "日付": {"type": "string", "format": "date"},
        "秘密": {"type": "string"},
    }
}


def test_parse_query_builds_typed_conditions() -> None:
    params = [("数[gte]", "3"), ("ID[in]", "A,B"), ("日付[lt]", "2025-04-01"), ("名称", "x"), ("sort", "-数,ID"),
              ("fields", "ID,名称"), ("q", " 門司 "), ("bbox", "130,33,131,34"), ("limit", "5")]  # fmt: skip
    parsed = parse_query(params, SCHEMA, has_location=True)
    assert isinstance(parsed, RecordQuery)
    assert parsed.conditions == (
        Condition("数", "gte", (3,)),
        Condition("ID", "in", ("A", "B")),
        Condition("日付", "lt", ("2025-04-01",)),
        Condition("名称", "eq", ("x",)),
    )
    assert parsed.sort == (SortKey("数", True), SortKey("ID"))
    assert parsed.fields == ("ID", "名称")
    assert parsed.text == "門司"
    assert parsed.text_fields == ("ID", "名称", "日付", "秘密")
    assert parsed.bbox == BBox(130, 33, 131, 34)
    assert not parsed.keyset


@pytest.mark.parametrize(
    ("params", "parameter", "fragment"),
    [
        ([("日付[gte]", "2025/04/01")], "日付[gte]", "ISO 8601"),
        ([("名称[gt]", "a")], "名称[gt]", "numbers, dates and times"),
        ([("数[between]", "1")], "数[between]", "unknown operator"),
        ([("秘密", "x")], "秘密", "not a declared property"),
        ([("sort", "秘密")], "sort", "not a declared property"),
        ([("fields", "ID,秘密")], "fields", "not a declared property"),
        ([("near", "200,33")], "near", "longitude"),
        ([("ID", "a"), ("ID", "b")], "ID", "more than once"),
        ([("cursor", encode_cursor("A")), ("offset", "10")], "cursor", "not both"),
    ],
)
def test_parse_query_problems_name_the_parameter(
    params: list[tuple[str, str]], parameter: str, fragment: str
) -> None:
    # 秘密 is outside the caller's fields: refused exactly like an undeclared property.
    parsed = parse_query(
        params, SCHEMA, allowed_fields=frozenset({"ID", "名称", "数", "日付"}), has_location=True
    )
    assert isinstance(parsed, ParamProblem)
    assert parsed.parameter == parameter
    assert fragment in parsed.problem


def test_text_search_is_limited_to_the_callers_fields() -> None:
    parsed = parse_query([("q", "x")], SCHEMA, allowed_fields=frozenset({"ID", "数"}))
    assert isinstance(parsed, RecordQuery)
    assert parsed.text_fields == ("ID",)


def test_cursor_round_trip_and_refusal() -> None:
    assert decode_cursor(encode_cursor("T0001/東")) == "T0001/東"
    for bad in ("", "!!!", encode_cursor("x")[:-3] + "AAA", "eyJ2IjoyLCJrIjoieCJ9"):
        assert isinstance(decode_cursor(bad), ParamProblem)


def test_near_defaults_and_haversine() -> None:
    parsed = parse_query([("near", "130.87,33.88")], SCHEMA, has_location=True)
    assert isinstance(parsed, RecordQuery) and parsed.near == Near(130.87, 33.88, 1000.0)
    # One degree of latitude is about 111.2 km on the mean sphere.
    assert haversine_m(130.0, 33.0, 130.0, 34.0) == pytest.approx(111_195, rel=1e-3)


def test_rate_limiter_bursts_then_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    decisions = [limiter.check("a", 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after_s == 20  # one request per 20 s at 3 per minute
    assert decisions[-1].headers()["Retry-After"] == "20"
    assert limiter.check("b", 3).allowed  # buckets are per identity
    now[0] = 20.0
    assert limiter.check("a", 3).allowed
    assert not limiter.check("a", 3).allowed


def test_conditional_evaluation() -> None:
    etag = weak_etag("json", b"[]")
    assert etag != weak_etag("csv", b"[]")
    assert not_modified(etag=etag, last_modified=None, if_none_match=f'"x", {etag}', if_modified_since=None)
    assert not_modified(
        etag=etag, last_modified=None, if_none_match=etag.removeprefix("W/"), if_modified_since=None
    )
    assert not not_modified(etag=etag, last_modified=None, if_none_match='"other"', if_modified_since=None)
    moment = datetime(2025, 4, 1, 9, 0, 30, 500, tzinfo=UTC)
    assert not_modified(
        etag=etag, last_modified=moment, if_none_match=None, if_modified_since=http_date(moment)
    )
    assert not not_modified(etag=etag, last_modified=moment, if_none_match=None, if_modified_since="garbage")
    # If-None-Match wins over If-Modified-Since.
    assert not not_modified(
        etag=etag, last_modified=moment, if_none_match='"x"', if_modified_since=http_date(moment)
    )


def test_five_star_is_cumulative_with_reasons() -> None:
    rating = five_star({"license": "CC-BY-4.0"}, record_key="NO", has_schema=True)
    assert rating.stars == 4
    closed = five_star({"license": "proprietary"}, record_key="NO", has_schema=True)
    assert closed.stars == 0 and "not a recognised open licence" in closed.criteria[0].reason
    linked = five_star(
        {"license": "CC0-1.0", "links": ["https://example.org/x"]}, record_key="NO", has_schema=True
    )
    assert linked.stars == 5


def test_metadata_quality_lists_missing_fields() -> None:
    meta = {
        "title": {"ja": "題", "en": ""},
        "license": "CC-BY-4.0",
        "keywords": ["防災"],
        "update_frequency": "daily",
    }
    score = metadata_quality(
        meta, has_publisher=True, has_contact=False, has_schema=True, has_spatial=False, has_modified=True
    )
    assert "title (en)" in score.missing and "contact point" in score.missing
    assert "themes" in score.present  # 防災 maps to an EU data theme
    assert score.score == round(100 * len(score.present) / 15)


def test_fq_parsing_and_search() -> None:
    clauses = ckan.parse_fq('+organization:fire tags:"AED 設置" -res_format:GeoJSON')
    assert [(c.field, c.value, c.negated) for c in clauses] == [
        ("organization", "fire", False),
        ("tags", "AED 設置", False),
        ("res_format", "GeoJSON", True),
    ]
    with pytest.raises(ckan.ActionError):
        ckan.parse_fq("secret_field:x")
    packages: list[dict[str, Any]] = [
        {"name": n, "title": t, "title_translated": {"ja": t, "en": ""}, "notes_translated": {"ja": "", "en": ""},
         "tags": [], "owner_org": o, "resources": [], "license_id": "CC-BY-4.0", "type": "dataset",
         "id": n, "metadata_modified": m, "metadata_created": m, "organization": None}
        for n, t, o, m in (("b", "イ", "fire", "2025-01-02"), ("a", "ア", "fire", "2025-01-01"), ("c", "ウ", "x", "2025-01-03"))
    ]  # fmt: skip
    found = ckan.search_packages(packages, q="", fq="organization:fire", sort="name asc", rows=10, start=0)
    assert [p["name"] for p in found["results"]] == ["a", "b"] and found["count"] == 2
    newest = ckan.search_packages(packages, q="", fq="", sort="metadata_modified desc", rows=1, start=1)
    assert [p["name"] for p in newest["results"]] == ["b"]
    assert ckan.parse_datastore_sort("名称 desc, NO") == [("名称", True), ("NO", False)]


def test_usage_buffer_aggregates_and_hashes_keys() -> None:
    from cityos.domain.access import ANONYMOUS, Caller, CallerKind

    moment = datetime(2025, 4, 1, 9, 42, tzinfo=UTC)
    buffer = UsageBuffer(clock=lambda: moment)
    developer = Caller(CallerKind.developer, key_id="cos_0123abcd")
    buffer.add(ANONYMOUS, Tally("aed", "csv", rows=10), 100)
    buffer.add(ANONYMOUS, Tally("aed", "csv", rows=5), 50)
    buffer.add(developer, Tally("aed", "json", rows=1), 7)
    pending = buffer.drain()
    hour = hour_of(moment)
    assert pending == {
        (hour, "aed", "anonymous", "", "csv"): [2, 15, 150],
        (hour, "aed", "developer", "cos_0123abcd", "json"): [1, 1, 7],
    }
    assert buffer.drain() == {}
    buffer.restore(pending)
    assert buffer.drain() == pending
    secret = b"server secret"
    assert (
        hashed_key("cos_0123abcd", secret) != "cos_0123abcd" and len(hashed_key("cos_0123abcd", secret)) == 16
    )
    assert hashed_key("", secret) == ""
