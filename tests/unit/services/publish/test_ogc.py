"""The OGC API - Features documents and parameter rules, without HTTP or a database."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from cityos.domain.readmodel.filters import ParamProblem
from cityos.domain.readmodel.query import RecordQuery, parse_query
from services.publish import ogc

BASE = "https://opendata.example.jp/city"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("f", "accept", "expected"),
    [
        (None, None, "json"),
        (None, "*/*", "json"),  # OWSLib (requests) sends this
        (None, "application/geo+json, application/json", "json"),  # GDAL's items request
        (None, "application/json", "json"),
        (None, BROWSER, "html"),
        (None, "application/json, text/html", "json"),  # equal quality: the client's order
        (None, "text/html, application/json", "html"),
        (None, "text/html;q=0.5, application/json", "json"),
        (None, "text/html;q=0", "json"),
        ("html", "application/json", "html"),
        ("json", BROWSER, "json"),
    ],
)
def test_representation_follows_f_then_accept(f: str | None, accept: str | None, expected: str) -> None:
    assert ogc.representation(f, accept) == expected


def test_unknown_f_and_lang_are_named() -> None:
    assert ogc.representation("xml", None) == ParamProblem("f", "expected json or html")
    assert ogc.language("fr") == ParamProblem("lang", "expected ja or en")
    assert ogc.language(None) == "ja" and ogc.language("en") == "en"


def test_landing_page_links_every_part_with_its_media_type() -> None:
    links = {link["rel"]: link for link in ogc.landing(BASE, "json", "ja")["links"]}
    assert links["self"]["type"] == "application/json"
    assert links["alternate"]["type"] == "text/html"
    assert links["service-desc"] == {
        "href": f"{BASE}/ogc/api", "rel": "service-desc",
        "type": "application/vnd.oai.openapi+json;version=3.0", "title": "The API definition (OpenAPI 3.0)",
    }  # fmt: skip
    assert links["service-doc"]["href"] == f"{BASE}/docs" and links["service-doc"]["type"] == "text/html"
    assert links["conformance"]["href"] == f"{BASE}/ogc/conformance"
    assert links["data"]["href"] == f"{BASE}/ogc/collections"
    as_html = {link["rel"]: link for link in ogc.landing(BASE, "html", "en")["links"]}
    assert as_html["self"]["type"] == "text/html" and "lang=en" in as_html["self"]["href"]


def test_conformance_declares_the_four_classes() -> None:
    assert {uri.rsplit("/", 1)[1] for uri in ogc.conformance()["conformsTo"]} == {
        "core", "geojson", "html", "oas30",
    }  # fmt: skip


META = {
    "title": {"ja": "AED設置箇所一覧", "en": "AED locations"},
    "description": {"ja": "AEDの一覧", "en": "Where AEDs are"},
    "license": "CC-BY-4.0",
    "keywords": ["AED"],
}


def test_collection_carries_extent_crs_and_links_in_the_language_asked() -> None:
    facts = ogc.CollectionFacts("aed", META, (130.8, 33.8, 130.9, 33.9), ("2025-01-01", "2025-03-31"), "日")
    ja = ogc.collection(facts, BASE, "json", "ja")
    en = ogc.collection(facts, BASE, "json", "en")
    assert (ja["title"], en["title"]) == ("AED設置箇所一覧", "AED locations")
    assert en["description"] == "Where AEDs are"
    assert ja["extent"]["spatial"] == {"bbox": [[130.8, 33.8, 130.9, 33.9]], "crs": ogc.CRS84}
    assert ja["extent"]["temporal"]["interval"] == [["2025-01-01", "2025-03-31"]]
    assert ja["crs"] == [ogc.CRS84] and ja["itemType"] == "feature"
    items = [link for link in ja["links"] if link["rel"] == "items"]
    assert {link["type"] for link in items} == {"application/geo+json", "text/html"}
    assert all(link["href"].startswith(f"{BASE}/ogc/collections/aed/items") for link in items)
    related = {(link["type"], link["href"]) for link in en["links"] if link["rel"] == "related"}
    assert related == {
        ("application/json", f"{BASE}/api/v1/datasets/aed"),
        ("text/html", f"{BASE}/en/datasets/aed"),
    }
    assert not [link for link in ja["links"] if link["rel"] == "describedby"]  # that would name a schema
    # No located record, no date property: no extent at all rather than an empty one.
    bare = ogc.collection(ogc.CollectionFacts("aed", {}, None, None, None), BASE, "json", "ja")
    assert "extent" not in bare and bare["title"] == "aed"


def test_title_falls_back_to_the_other_language() -> None:
    assert ogc.text_of({"ja": "名前"}, "en", "id") == "名前"
    assert ogc.text_of({"en": "Name"}, "ja", "id") == "Name"
    assert ogc.text_of(None, "ja", "id") == "id"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-04-01", ogc.TimeFilter("2025-04-01", "2025-04-01", instant=True)),
        (
            "2025-04-01T09:00:00Z",
            ogc.TimeFilter("2025-04-01T09:00:00Z", "2025-04-01T09:00:00Z", instant=True),
        ),
        ("2025-04-01T09:00:00+09:00/2025-05-01", ogc.TimeFilter("2025-04-01T09:00:00+09:00", "2025-05-01")),
        ("../2025-05-01", ogc.TimeFilter(None, "2025-05-01")),
        ("2025-04-01/..", ogc.TimeFilter("2025-04-01", None)),
        ("/2025-05-01", ogc.TimeFilter(None, "2025-05-01")),
        (
            "2025-04-01t09:00:00z",
            ogc.TimeFilter("2025-04-01T09:00:00Z", "2025-04-01T09:00:00Z", instant=True),
        ),
    ],
)
def test_datetime_instants_and_intervals(raw: str, expected: ogc.TimeFilter) -> None:
    assert ogc.parse_datetime(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "../..",
        "2025-13-01",
        "2025-02-30",
        "yesterday",
        "2025-04-01T09:00",
        "2025-05-01/2025-04-01",
        "a/b/c",
        "",
    ],
)
def test_malformed_datetime_is_a_400_naming_datetime(raw: str) -> None:
    problem = ogc.parse_datetime(raw)
    assert isinstance(problem, ParamProblem) and problem.parameter == "datetime"


SCHEMA = {
    "type": "object",
    "properties": {
        "ID": {"type": "string"},
        "名称": {"type": "string"},
        "点検日": {"type": "string", "format": "date"},
        "開催日時": {"type": "string", "format": "date-time"},
        "緯度": {"type": "number"},
        "経度": {"type": "number"},
    },
}


def test_temporal_property_is_the_first_readable_date_or_time() -> None:
    assert ogc.temporal_property(SCHEMA, None) == "点検日"
    assert ogc.temporal_property(SCHEMA, frozenset({"ID", "開催日時"})) == "開催日時"
    assert ogc.temporal_property(SCHEMA, frozenset({"ID"})) is None
    assert ogc.temporal_property(None, None) is None


def _parsed(conditions: list[tuple[str, str]]) -> RecordQuery:
    parsed = parse_query(conditions, SCHEMA, has_location=True)
    assert isinstance(parsed, RecordQuery), parsed
    return parsed


def test_datetime_becomes_records_query_conditions_the_one_parser_accepts() -> None:
    instant = ogc.TimeFilter("2025-04-01T10:00:00Z", "2025-04-01T10:00:00Z", instant=True)
    assert ogc.time_conditions("点検日", "date", instant) == [("点検日", "2025-04-01")]
    interval = ogc.TimeFilter("2025-04-01", "2025-04-30")
    assert ogc.time_conditions("点検日", "date", interval) == [
        ("点検日[gte]", "2025-04-01"),
        ("点検日[lte]", "2025-04-30"),
    ]
    assert ogc.time_conditions("点検日", "date", ogc.TimeFilter(None, "2025-04-30")) == [
        ("点検日[lte]", "2025-04-30")
    ]
    # A bare date on a date-time property spans that whole day, whatever offset the records carry.
    day = ogc.TimeFilter("2025-04-01", "2025-04-01", instant=True)
    assert ogc.time_conditions("開催日時", "date-time", day) == [
        ("開催日時[gte]", "2025-04-01T00:00"), ("開催日時[lt]", "2025-04-02T00:00"),
    ]  # fmt: skip
    exact = ogc.time_conditions("開催日時", "date-time", instant)
    assert exact == [("開催日時", "2025-04-01T10:00:00Z")]
    for conditions in (exact, ogc.time_conditions("開催日時", "date-time", day)):
        assert _parsed(conditions).conditions


def test_date_time_bounds_are_written_in_the_zone_of_the_records() -> None:
    # Text compares in time order only within one zone: bounds follow the records' own zone.
    hour = ogc.TimeFilter("2025-04-01T00:30:00Z", "2025-04-01T02:00:00.5Z")
    assert ogc.time_conditions("開催日時", "date-time", hour, "+09:00") == [
        ("開催日時[gte]", "2025-04-01T09:30:00+09:00"), ("開催日時[lte]", "2025-04-01T11:00:00.500000+09:00"),
    ]  # fmt: skip
    instant = ogc.TimeFilter("2025-04-01T10:00:00+09:00", "2025-04-01T10:00:00+09:00", instant=True)
    assert ogc.time_conditions("開催日時", "date-time", instant, "Z") == [
        ("開催日時", "2025-04-01T01:00:00Z")
    ]
    assert ogc.time_conditions("開催日時", "date-time", instant, "-05:30") == [
        ("開催日時", "2025-03-31T19:30:00-05:30")
    ]
    assert ogc.time_conditions("開催日時", "date-time", instant, None) == [
        ("開催日時", "2025-04-01T10:00:00+09:00")
    ]
    assert (ogc.zone_of("2025-04-01T10:00:00+09:00"), ogc.zone_of("2025-04-01T01:00:00z")) == ("+09:00", "Z")
    assert ogc.zone_of("2025-04-01") is None and ogc.zone_of(None) is None


def test_items_parameters_are_checked_and_unknown_ones_refused() -> None:
    properties = ["ID", "名称", "点検日"]
    assert ogc.items_request([], properties, has_time=False) == ogc.ItemsRequest(10, 0, [], None)
    request = ogc.items_request(
        [
            ("limit", "50"),
            ("offset", "100"),
            ("名称", "小倉"),
            ("bbox", "130.8,33.8,130.9,33.9"),
            ("f", "json"),
        ],
        properties,
        has_time=False,
    )
    assert request == ogc.ItemsRequest(50, 100, [("名称", "小倉"), ("bbox", "130.8,33.8,130.9,33.9")], None)
    # Above the maximum: answered with the maximum, not refused.
    clamped = ogc.items_request([("limit", "50000")], properties, has_time=False)
    assert isinstance(clamped, ogc.ItemsRequest) and clamped.limit == ogc.MAX_LIMIT
    refusals = {
        "unknown": ([("colour", "red")], "colour"),
        "records-api only": ([("q", "小倉")], "q"),
        "operator": ([("名称[in]", "a,b")], "名称[in]"),
        "zero": ([("limit", "0")], "limit"),
        "negative": ([("offset", "-1")], "offset"),
        "text": ([("limit", "ten")], "limit"),
        "3D box": ([("bbox", "130.8,33.8,0,130.9,33.9,10")], "bbox"),
        "no time property": ([("datetime", "2025-04-01")], "datetime"),
        "twice": ([("名称", "a"), ("名称", "b")], "名称"),
    }
    for why, (params, parameter) in refusals.items():
        problem = ogc.items_request(params, properties, has_time=False)
        assert isinstance(problem, ParamProblem) and problem.parameter == parameter, why
    timed = ogc.items_request([("datetime", "2025-04-01/..")], properties, has_time=True)
    assert isinstance(timed, ogc.ItemsRequest) and timed.time == ogc.TimeFilter("2025-04-01", None)


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_items_links_page_by_offset_keeping_every_other_parameter() -> None:
    params = [("名称", "小倉"), ("limit", "10"), ("offset", "20")]
    links = ogc.items_links(BASE, "aed", params, "json", limit=10, offset=20, returned=10, matched=35)
    by_rel = {link["rel"]: link for link in links}
    assert _query(by_rel["next"]["href"]) == {"名称": "小倉", "limit": "10", "offset": "30"}
    assert _query(by_rel["prev"]["href"]) == {"名称": "小倉", "limit": "10", "offset": "10"}
    assert by_rel["self"]["type"] == "application/geo+json" and by_rel["alternate"]["type"] == "text/html"
    assert by_rel["collection"]["href"] == f"{BASE}/ogc/collections/aed"
    last = ogc.items_links(BASE, "aed", [], "json", limit=10, offset=30, returned=5, matched=35)
    assert "next" not in {link["rel"] for link in last}
    first = ogc.items_links(BASE, "aed", [], "json", limit=10, offset=0, returned=10, matched=35)
    assert "prev" not in {link["rel"] for link in first}


def test_feature_collection_envelope_is_json_around_the_encoded_features() -> None:
    features = b'{"type":"Feature","id":"1","geometry":null,"properties":{}}'
    stamp = ogc.timestamp(datetime(2025, 4, 1, 0, 0, 0, 123, tzinfo=UTC))
    body = orjson.loads(ogc.feature_collection(features, matched=7, returned=1, stamp=stamp, links=[]))
    assert body == {
        "type": "FeatureCollection", "features": [{"type": "Feature", "id": "1", "geometry": None, "properties": {}}],
        "numberMatched": 7, "numberReturned": 1, "timeStamp": "2025-04-01T00:00:00Z", "links": [],
    }  # fmt: skip
    assert (
        orjson.loads(ogc.feature_collection(b"", matched=0, returned=0, stamp=stamp, links=[]))["features"]
        == []
    )


def test_api_definition_is_openapi_3_0_with_the_limit_bounds() -> None:
    document = ogc.openapi_document(BASE)
    assert document["openapi"].startswith("3.0.")
    assert document["servers"] == [{"url": BASE}]
    items = document["paths"]["/ogc/collections/{collectionId}/items"]["get"]
    names = {p["$ref"].rsplit("/", 1)[1] for p in items["parameters"]}
    assert {"collectionId", "limit", "offset", "bbox", "datetime", "f", "lang"} == names
    limit = document["components"]["parameters"]["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 10_000, 10)
    # Every reference resolves within the document.
    text = orjson.dumps(document).decode()
    for name in document["components"]["parameters"]:
        assert f"#/components/parameters/{name}" in text
