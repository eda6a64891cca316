"""The dataset page's pure builders: schema flattening, ages, sparkline geometry, snippets, links."""

from __future__ import annotations

import ast
import shlex
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest

from services.publish.quality import five_star, metadata_quality
from services.publish.render import cell_text
from services.publish.site import dataset_view as view
from services.publish.site.dataset_view import DayCount

NESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ID", "施設"],
    "$defs": {
        "住所": {
            "type": "object",
            "title": "住所",
            "required": ["町名"],
            "properties": {"町名": {"type": "string", "x-en": "town"}, "番地": {"type": ["string", "null"]}},
        }
    },
    "properties": {
        "ID": {"type": "string", "title": "識別子", "x-en": "identifier", "description": "一意の番号"},
        "施設": {
            "type": "object",
            "properties": {
                "名称": {"type": "string"},
                "所在地": {"$ref": "#/$defs/住所", "description": "施設の所在地"},
            },
        },
        "内訳": {
            "type": "array",
            "items": {"type": "object", "properties": {"金額": {"type": "integer"}}},
        },
        "開設日": {"type": "string", "format": "date"},
        "a/b~c": {"type": "number"},
    },
}


def test_schema_rows_flatten_nested_properties_with_names_and_pointers() -> None:
    rows, truncated = view.schema_rows(NESTED_SCHEMA, "ja")
    assert not truncated
    assert [(r.name, r.pointer, r.depth) for r in rows] == [
        ("ID", "/ID", 0),
        ("施設", "/施設", 0),
        ("施設.名称", "/施設/名称", 1),
        ("施設.所在地", "/施設/所在地", 1),
        ("施設.所在地.町名", "/施設/所在地/町名", 2),
        ("施設.所在地.番地", "/施設/所在地/番地", 2),
        ("内訳", "/内訳", 0),
        ("内訳[].金額", "/内訳/-/金額", 1),
        ("開設日", "/開設日", 0),
        ("a/b~c", "/a~1b~0c", 0),  # RFC 6901 escapes
    ]
    by_name = {r.name: r for r in rows}
    assert by_name["ID"].required and by_name["施設"].required and not by_name["内訳"].required
    assert by_name["施設.所在地.町名"].required and not by_name["施設.所在地.番地"].required
    # Keywords beside a $ref describe this use of the definition; its own title is kept otherwise.
    assert by_name["施設.所在地"].description == "施設の所在地"
    assert by_name["施設.所在地"].title == "住所"
    assert by_name["施設.所在地.番地"].type == "string | null"
    assert by_name["内訳"].type == "array of object"
    assert by_name["開設日"].type == "string (date)"
    assert by_name["ID"].title == "識別子"


def test_schema_rows_use_the_english_field_name_on_the_english_page() -> None:
    rows, _ = view.schema_rows(NESTED_SCHEMA, "en")
    by_name = {r.name: r for r in rows}
    assert by_name["ID"].title == "identifier"
    assert by_name["施設.所在地.町名"].title == "town"
    assert by_name["施設.名称"].title == ""  # neither title nor English name


def test_schema_walk_is_bounded_for_cyclic_and_huge_schemas() -> None:
    cyclic = {"$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}},
              "type": "object", "properties": {"root": {"$ref": "#/$defs/node"}}}  # fmt: skip
    rows, _ = view.schema_rows(cyclic, "ja")
    assert rows[0].name == "root"
    assert max(r.depth for r in rows) < view.MAX_SCHEMA_DEPTH
    huge = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string"} for i in range(view.MAX_SCHEMA_ROWS + 7)},
    }
    rows, truncated = view.schema_rows(huge, "en")
    assert truncated and len(rows) == view.MAX_SCHEMA_ROWS
    assert view.schema_rows(None, "ja") == ((), False)


def test_filterable_fields_are_the_scalar_top_level_properties() -> None:
    assert view.filterable_fields(NESTED_SCHEMA) == ("ID", "開設日", "a/b~c")
    assert view.filterable_fields(None) == ()


NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "ja", "en"),
    [
        (timedelta(seconds=5), "たった今", "just now"),
        (timedelta(seconds=-30), "たった今", "just now"),  # clocks a little apart
        (timedelta(minutes=1), "1分前", "1 minute ago"),
        (timedelta(minutes=59, seconds=59), "59分前", "59 minutes ago"),
        (timedelta(hours=3, minutes=20), "3時間前", "3 hours ago"),
        (timedelta(days=1), "1日前", "1 day ago"),
        (timedelta(days=29), "29日前", "29 days ago"),
        (timedelta(days=61), "2か月前", "2 months ago"),
        (timedelta(days=800), "2年前", "2 years ago"),
    ],
)
def test_age_text(ago: timedelta, ja: str, en: str) -> None:
    assert view.age_text(NOW - ago, NOW, "ja") == ja
    assert view.age_text(NOW - ago, NOW, "en") == en


def test_local_time_is_japan_standard_time() -> None:
    moment = datetime(2025, 4, 1, 15, 30, tzinfo=UTC)  # 00:30 the next day in Japan
    assert view.local_time_text(moment, "ja") == "2025年4月2日 00:30（日本時間）"
    assert view.local_time_text(moment, "en") == "2025-04-02 00:30 JST"


def test_daily_requests_are_counted_per_japanese_day_over_the_window() -> None:
    today = date(2026, 12, 2)
    hours = [
        (datetime(2026, 12, 1, 14, 0, tzinfo=UTC), 2),  # 23:00 JST on 1 Dec
        (datetime(2026, 12, 1, 15, 0, tzinfo=UTC), 5),  # 00:00 JST on 2 Dec
        (datetime(2026, 12, 1, 23, 0, tzinfo=UTC), 1),  # 08:00 JST on 2 Dec
        (datetime(2026, 11, 2, 15, 0, tzinfo=UTC), 4),  # 00:00 JST on 3 Nov: the window's first day
        (datetime(2026, 11, 2, 14, 0, tzinfo=UTC), 100),  # 2 Nov JST: before the window
    ]
    days = view.daily_requests(hours, today=today)
    assert len(days) == 30
    assert days[0] == DayCount(date(2026, 11, 3), 4)
    assert days[-1] == DayCount(today, 6)
    assert days[-2] == DayCount(date(2026, 12, 1), 2)
    assert sum(d.requests for d in days) == 12
    assert view.window_start(today) == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def test_sparkline_geometry() -> None:
    days = [DayCount(date(2026, 11, 1) + timedelta(days=i), n) for i, n in enumerate([0, 5, 10, 0, 2])]
    line = view.sparkline(days, width=100, height=40)
    pad = view.SPARK_PAD
    xs = [x for x, _ in line.points]
    ys = [y for _, y in line.points]
    assert xs[0] == pad and xs[-1] == 100 - pad
    assert all(b > a for a, b in pairwise(xs))
    assert ys[2] == pad  # the busiest day touches the top
    assert ys[0] == ys[3] == 40 - pad  # days without requests sit on the bottom
    assert ys[1] == pytest.approx(pad + (40 - 2 * pad) / 2, abs=0.05)
    assert (line.total, line.peak, line.peak_day) == (17, 10, date(2026, 11, 3))
    assert line.polyline.split(" ")[0] == f"{pad},{40 - pad}"
    assert line.area.startswith(f"{pad},{40 - pad} ") and line.area.endswith(f" {100 - pad},{40 - pad}")


def test_sparkline_of_an_unused_dataset_is_a_flat_bottom_line() -> None:
    days = [DayCount(date(2026, 11, 1) + timedelta(days=i), 0) for i in range(30)]
    line = view.sparkline(days)
    assert {y for _, y in line.points} == {line.height - view.SPARK_PAD}
    assert (line.total, line.peak, line.peak_day) == (0, 0, None)


PARAMS = [("設置位置", "1階 ロビー"), ("q", "小倉&門司"), ("sort", "-名称"), ("limit", "20")]


def test_curl_snippet_percent_encodes_japanese_names_and_values() -> None:
    endpoint = "https://opendata.example.jp/api/v1/datasets/aed/records"
    snippet = view.curl_snippet(endpoint, PARAMS, needs_key=False)
    words = shlex.split(snippet)
    assert words[0] == "curl" and "Authorization" not in snippet
    url = words[-1]
    assert url.isascii() and " " not in url
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == endpoint
    assert parse_qsl(parts.query) == PARAMS
    assert "%E8%A8%AD%E7%BD%AE%E4%BD%8D%E7%BD%AE=1%E9%9A%8E%20%E3%83%AD%E3%83%93%E3%83%BC" in url


def test_curl_snippet_for_an_internal_dataset_reads_the_key_from_the_environment() -> None:
    snippet = view.curl_snippet("https://x.example/api/v1/datasets/c/records", PARAMS, needs_key=True)
    words = shlex.split(snippet.replace("\\\n", " "))
    assert words[words.index("-H") + 1] == "Authorization: Bearer $CITYOS_API_KEY"
    assert '"Authorization: Bearer $CITYOS_API_KEY"' in snippet  # expanded by the shell, never inlined


def test_python_snippet_is_valid_python_building_the_same_query() -> None:
    endpoint = "https://opendata.example.jp/api/v1/datasets/aed/records"
    snippet = view.python_snippet(endpoint, PARAMS, needs_key=True)
    tree = ast.parse(snippet)
    assigned = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    params = ast.literal_eval(assigned["params"])
    assert [tuple(p) for p in params] == PARAMS
    assert "os.environ['CITYOS_API_KEY']" in snippet
    assert urlencode(params, quote_via=quote) == view.query_string(PARAMS)
    # Without filters it is still a program.
    ast.parse(view.python_snippet(endpoint, [], needs_key=False))


def test_preview_params_drop_empty_inputs_and_representation() -> None:
    sent = [
        ("q", ""),
        ("名称", "  "),
        ("設置位置", "2階"),
        ("format", "csv"),
        ("bom", "true"),
        ("limit", "5"),
    ]
    assert view.preview_params(sent) == [("設置位置", "2階"), ("limit", "5")]


def test_downloads_carry_the_filters_but_not_the_page() -> None:
    params = [("設置位置", "2階"), ("limit", "5"), ("offset", "10"), ("cursor", "abc")]
    links = view.downloads("/api/v1/datasets/aed/export", params, located=True)
    assert [d.key for d in links] == [
        "download.csv_bom", "download.csv", "download.geojson", "download.ndjson", "download.json",
        "download.parquet",
    ]  # fmt: skip
    for link in links:
        query = parse_qsl(urlsplit(link.href).query)
        assert ("設置位置", "2階") in query
        assert not {"limit", "offset", "cursor"} & {name for name, _ in query}
    assert parse_qsl(urlsplit(links[0].href).query)[-2:] == [("format", "csv"), ("bom", "true")]
    unlocated = view.downloads("/api/v1/datasets/b/export", [], located=False)
    assert "download.geojson" not in [d.key for d in unlocated]
    assert unlocated[1].href == "/api/v1/datasets/b/export?format=csv"


def test_replaced_sets_appends_and_removes() -> None:
    params = [("a", "1"), ("offset", "20"), ("b", "2")]
    assert view.replaced(params, offset=None, cursor="c") == [("a", "1"), ("b", "2"), ("cursor", "c")]
    assert view.replaced(params, offset="40") == [("a", "1"), ("b", "2"), ("offset", "40")]


def test_quality_view_gives_each_star_its_reason_in_the_page_language() -> None:
    meta = {"license": "CC-BY-4.0", "title": {"ja": "AED", "en": "AED"}, "keywords": ["AED"]}
    rating = five_star(meta, record_key="NO", has_schema=True)
    score = metadata_quality(meta, has_publisher=True, has_contact=True, has_schema=True,
                             has_spatial=False, has_modified=True)  # fmt: skip
    quality = {"five_star": rating.as_dict(), "metadata_quality": score.as_dict()}
    ja = view.quality_view(quality, "ja", license_id="CC-BY-4.0", record_key="NO")
    en = view.quality_view(quality, "en", license_id="CC-BY-4.0", record_key="NO")
    assert ja.stars == en.stars == rating.stars == 4
    assert [s.met for s in ja.criteria] == [s.met for s in rating.criteria]
    assert ja.criteria[0].name == "オープンなライセンス" and "CC-BY-4.0" in ja.criteria[0].reason
    assert "キー：NO" in ja.criteria[3].reason
    assert [s.reason for s in en.criteria] == [s.reason for s in rating.criteria]
    assert ja.score == en.score == score.score
    assert "説明（英語）" in ja.missing and "Description (English)" in en.missing
    assert len(ja.missing) == len(score.missing)


def test_every_word_and_hint_has_both_languages() -> None:
    for key, texts in view.WORDS.items():
        assert set(texts) == {"ja", "en"} and all(texts.values()), key
    assert "100" in view.problem_hint("limit", "ja")
    assert view.problem_hint("名称[gte]", "en") == view.problem_hint("", "en")


def test_texts_fall_back_to_the_other_language() -> None:
    assert view.other_language({"ja": "AED一覧", "en": ""}, "en") == "AED一覧"
    assert view.other_language({"ja": "AED一覧", "en": "AEDs"}, "en") == "AEDs"
    assert view.other_language(None, "ja", "既定") == "既定"
    assert view.frequency_text("monthly", "ja") == "毎月"
    assert view.frequency_text("fortnightly", "en") == "fortnightly"


def test_cells_are_written_as_the_plain_csv_writes_them() -> None:
    assert [cell_text(v) for v in (None, True, 3, 33.5, "小倉", [1, {"a": "北"}])] == [
        "", "true", "3", "33.5", "小倉", '[1,{"a":"北"}]',
    ]  # fmt: skip
