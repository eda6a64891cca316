"""A dataset's page over a real publish server, on SQLite and on PostgreSQL.

The preview must be the records API's page for the same query string (rows, order, paging), its
snippets must reproduce that page when run, and it must be shown exactly to those the API serves.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pyarrow.parquet as pq
from sqlalchemy import Engine

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.access_models import AccessGrant
from cityos.kernel.db.engine import session_factory
from services.publish.site.dataset_view import JST
from tests.support.publish import (
    T0,
    LiveServer,
    events,
    hidden_rows,
    load,
    schemas_with_sites,
    serve,
    yaizu_aed_rows,
)

PAGE = "/datasets/aed"
RECORDS = "/api/v1/datasets/aed/records"
Query = list[tuple[str, str]]


class PageParser(HTMLParser):
    """The parts of a dataset page a reader relies on: the preview table, links by rel, code blocks,
    the alert, the page's language."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang = ""
        self.columns: list[str] = []
        self.rows: list[list[str]] = []
        self.links: dict[str, str] = {}
        self.hrefs: list[str] = []
        self.code: list[str] = []  # the copy-paste snippets
        self.alert = ""
        self.badge = ""
        self._in_preview = False
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_code = False
        self._in_alert = 0
        self._in_badge = False
        self._head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        elif tag == "table" and "preview-table" in (a.get("class") or ""):
            self._in_preview = True
        elif self._in_preview and tag == "thead":
            self._head = True
        elif self._in_preview and tag == "tr":
            self._row = []
        elif self._in_preview and tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self.hrefs.append(str(a.get("href")))
            if a.get("rel"):
                self.links[str(a["rel"])] = str(a["href"])
        elif tag == "pre" and a.get("class") == "snippet":
            self._in_code = True
            self.code.append("")
        elif tag == "div" and a.get("role") == "alert":
            self._in_alert = 1
        elif tag == "div" and self._in_alert:
            self._in_alert += 1
        elif tag == "span" and a.get("class") == "badge":
            self._in_badge = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_preview = False
        elif self._in_preview and tag == "thead":
            self._head = False
        elif self._in_preview and tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif self._in_preview and tag == "tr" and self._row is not None:
            (self.columns.extend if self._head else lambda r: self.rows.append(list(r)))(self._row)
            self._row = None
        elif tag == "pre":
            self._in_code = False
        elif tag == "div" and self._in_alert:
            self._in_alert -= 1
        elif tag == "span":
            self._in_badge = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_code:
            self.code[-1] += data
        if self._in_alert:
            self.alert += data
        if self._in_badge:
            self.badge += data


def parse(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    return parser


def same_cell(cell: str, value: Any) -> bool:
    """Whether a preview cell shows ``value`` (read independently of the page's own writer)."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == str(value).lower()
    if isinstance(value, int | float):
        return float(cell) == value
    if isinstance(value, str):
        return cell == value
    return bool(json.loads(cell) == value)


def assert_preview_is_api_page(page: PageParser, api: dict[str, Any]) -> None:
    records = api["records"]
    assert len(page.rows) == len(records)
    for row, record in zip(page.rows, records, strict=True):
        shown = dict(zip(page.columns, row, strict=True))
        assert set(record) <= set(shown)
        for name, cell in shown.items():
            assert same_cell(cell, record.get(name)), (name, cell, record.get(name))


@contextmanager
def aed_server(database_url: str, tmp_path: Path, **overrides: Any) -> Iterator[tuple[Engine, LiveServer]]:
    schemas_dir = schemas_with_sites(tmp_path)
    engine = load(database_url, schemas_dir, events("aed", yaizu_aed_rows(schemas_dir)) + hidden_rows())
    try:
        with serve(engine, database_url, publish_anonymous_rate_per_minute=100_000,
                   publish_key_rate_per_minute=100_000, **overrides) as server:  # fmt: skip
            yield engine, server
    finally:
        engine.dispose()


def _page_and_api(client: httpx.Client, query: Query) -> tuple[httpx.Response, dict[str, Any]]:
    page = client.get(PAGE, params=tuple(query))
    # The API reads an empty value as a condition (or refuses it); the page's form sends empty
    # inputs, which mean no condition: the API is asked without them.
    sent = [(k, v) for k, v in query if v]
    api_query = sent if any(k == "limit" for k, _ in sent) else [*sent, ("limit", "20")]
    api = client.get(RECORDS, params=tuple(api_query))
    assert api.status_code == 200, api.text
    return page, api.json()


def test_preview_is_the_records_api_page_for_the_same_query(database_url: str, tmp_path: Path) -> None:
    with aed_server(database_url, tmp_path) as (_, server), httpx.Client(base_url=server.url) as client:
        everything = client.get(RECORDS, params={"limit": "1000"}).json()["records"]
        assert len(everything) > 40
        place = everything[5]["設置位置"]
        name_part = everything[3]["名称"][:2]
        queries: list[Query] = [
            [],
            [("limit", "7"), ("offset", "14")],
            [("設置位置", place)],
            [("q", name_part), ("limit", "5")],
            [("sort", "-名称"), ("limit", "9"), ("offset", "3")],
            [("fields", "名称,NO"), ("limit", "4")],
            [("設置位置", place), ("q", ""), ("名称", "")],  # empty form inputs are no condition
        ]
        for query in queries:
            page, api = _page_and_api(client, query)
            assert page.status_code == 200, (query, page.text)
            parsed = parse(page.text)
            assert_preview_is_api_page(parsed, api)
            if ("fields", "名称,NO") in query:
                assert parsed.columns == ["名称", "NO"]
        # Cursor paging as the API does it.
        first = client.get(RECORDS, params={"limit": "10"}).json()
        page, api = _page_and_api(client, [("limit", "10"), ("cursor", first["next_cursor"])])
        assert_preview_is_api_page(parse(page.text), api)


def test_paging_through_the_preview_visits_every_record_once_in_order(
    database_url: str, tmp_path: Path
) -> None:
    with aed_server(database_url, tmp_path) as (_, server), httpx.Client(base_url=server.url) as client:
        expected = [r["NO"] for r in client.get(RECORDS, params={"limit": "1000"}).json()["records"]]
        seen: list[str] = []
        url: str | None = f"{PAGE}?limit=25"
        pages = 0
        while url is not None:
            parsed = parse(client.get(url).text)
            key = parsed.columns.index("NO")
            seen += [row[key] for row in parsed.rows]
            url = parsed.links.get("next")
            pages += 1
            if url is not None:
                # Back from the next page leads here again.
                back = parse(client.get(url).text).links["prev"]
                assert parse(client.get(back).text).rows == parsed.rows
        assert seen == expected
        assert pages == -(-len(expected) // 25)


BAD_QUERIES: list[Query] = [
    [("limit", "abc")], [("limit", "0")], [("limit", "101")], [("offset", "-1")],
    [("存在しない項目", "x")], [("緯度[gte]", "北")], [("sort", "未定義")], [("cursor", "zzz")],
    [("bbox", "1,2,3")], [("q", "x" * 201)], [(f"p{i}", "1") for i in range(60)],
]  # fmt: skip


def test_bad_parameters_are_a_page_with_the_reason_never_a_server_error(
    database_url: str, tmp_path: Path
) -> None:
    with aed_server(database_url, tmp_path) as (_, server), httpx.Client(base_url=server.url) as client:
        for query in BAD_QUERIES:
            ja = client.get(PAGE, params=tuple(query))
            en = client.get(f"/en{PAGE}", params=tuple(query))
            assert ja.status_code == en.status_code == 400, (query, ja.status_code, en.status_code)
            parameter = query[0][0] if len(query) < 50 else "request"
            assert f"パラメータ「{parameter}」" in parse(ja.text).alert, query
            assert f"Parameter “{parameter}”" in parse(en.text).alert, query
            assert parse(ja.text).rows == []
            # The API refuses the same query (the preview only adds its own page-size cap).
            if query != [("limit", "101")]:
                assert client.get(RECORDS, params=tuple(query)).status_code == 400, query


def _department_key(engine: Engine, department: str) -> str:
    with session_factory(engine)() as session, session.begin():
        issued = issue_key(
            session, owner_kind=OwnerKind.department, owner_id=department, purpose="t", actor="t"
        )
        return issued.secret


def test_only_those_the_api_serves_see_the_page(database_url: str, tmp_path: Path) -> None:
    with aed_server(database_url, tmp_path) as (engine, server):
        digital = _department_key(engine, "digital")  # owns copier-usage (internal)
        citizens = _department_key(engine, "citizens")  # owns resident-moves (personal)
        fire = _department_key(engine, "fire")
        with session_factory(engine)() as session, session.begin():
            session.add(AccessGrant(dataset_id="copier-usage", grantee_id="fire", fields=["部局名"],
                                    granted_by="test", granted_at=T0))  # fmt: skip
        with httpx.Client(base_url=server.url) as client:
            for hidden in ("copier-usage", "resident-moves"):
                # Anonymous, and the department owning the personal dataset: the API says 404 to both.
                for headers in ({}, {"Authorization": f"Bearer {citizens}"}):
                    answer = client.get(f"/datasets/{hidden}", headers=headers)
                    api = client.get(f"/api/v1/datasets/{hidden}", headers=headers)
                    assert answer.status_code == api.status_code == 404
                    # The same page as for a dataset that does not exist: nothing tells them apart.
                    missing = client.get("/datasets/no-such-dataset", headers=headers)
                    assert missing.status_code == 404
                    assert answer.text.replace(hidden, "X") == missing.text.replace("no-such-dataset", "X")
            owner = client.get("/datasets/copier-usage", headers={"Authorization": f"Bearer {digital}"})
            assert owner.status_code == 200
            assert parse(owner.text).badge == "庁内限定"
            assert "private" in owner.headers["cache-control"]
            api = client.get("/api/v1/datasets/copier-usage/records", params={"limit": "20"},
                             headers={"Authorization": f"Bearer {digital}"}).json()  # fmt: skip
            assert_preview_is_api_page(parse(owner.text), api)
            en = client.get("/en/datasets/copier-usage", headers={"Authorization": f"Bearer {digital}"})
            assert parse(en.text).badge == "Internal"
            # A grantee sees its granted fields only: no other field's name reaches the page.
            granted = client.get("/datasets/copier-usage", headers={"Authorization": f"Bearer {fire}"})
            assert granted.status_code == 200
            assert parse(granted.text).columns == ["ID", "部局名"]
            for hidden_field in ("枚数_モノクロ", "枚数_カラー", "年月", "用紙削減目標枚数"):
                assert f'title="/{hidden_field}"' not in granted.text  # no schema row
                assert f'name="{hidden_field}"' not in granted.text  # no filter input
            assert "枚数_モノクロ" not in granted.text and "枚数_カラー" not in granted.text
            public = client.get(PAGE)
            assert "庁内限定" not in public.text.split("<main", 1)[1]
            assert "private" not in public.headers.get("cache-control", "")
            # A signed-in department's view of a public dataset names it: never in a shared cache.
            signed_in = client.get(PAGE, headers={"Authorization": f"Bearer {digital}"})
            assert "private" in signed_in.headers["cache-control"]


def test_english_page_is_english(database_url: str, tmp_path: Path) -> None:
    with aed_server(database_url, tmp_path) as (_, server), httpx.Client(base_url=server.url) as client:
        ja, en = client.get(PAGE), client.get(f"/en{PAGE}")
    assert (parse(ja.text).lang, parse(en.text).lang) == ("ja", "en")
    main = en.text.split("<main", 1)[1]
    for english in ("AED locations", "Data preview", "Downloads", "Fields (schema)", "5-star open data",
                    "Publisher", "Licence", "Update frequency", "Irregularly", "Last change", " ago"):  # fmt: skip
        assert english in main, english
    for japanese in ("データのプレビュー", "ダウンロード", "公開部局", "更新頻度", "不定期", "前）"):
        assert japanese not in main, japanese
        assert japanese in ja.text, japanese
    assert 'href="/datasets/aed"' in en.text  # the same page in Japanese


def test_the_parquet_download_holds_the_filtered_records_of_the_api(
    database_url: str, tmp_path: Path
) -> None:
    with aed_server(database_url, tmp_path) as (_, server), httpx.Client(base_url=server.url) as client:
        place = client.get(RECORDS).json()["records"][0]["設置位置"]
        query = [("設置位置", place), ("sort", "-NO")]
        hrefs = parse(client.get(PAGE, params=(*query, ("limit", "3"))).text).hrefs
        parquet_link = next(h for h in hrefs if "format=parquet" in h)
        assert dict(parse_qsl(urlsplit(parquet_link).query)) == {
            "設置位置": place,
            "sort": "-NO",
            "format": "parquet",
        }
        table = pq.read_table(io.BytesIO(client.get(parquet_link).content))
        every = client.get(RECORDS, params=(*query, ("limit", "1000"))).json()["records"]
    assert table.num_rows == len(every) > 0
    assert table.column("NO").to_pylist() == [record["NO"] for record in every]
    assert table.column("設置位置").to_pylist() == [place] * len(every)


def test_snippets_reproduce_the_preview_page(database_url: str, tmp_path: Path) -> None:
    with aed_server(database_url, tmp_path) as (_, server), httpx.Client(base_url=server.url) as client:
        place = client.get(RECORDS).json()["records"][0]["設置位置"]
        query = [("設置位置", place), ("sort", "-NO"), ("limit", "3")]
        page = parse(client.get(PAGE, params=tuple(query)).text)
        api = client.get(RECORDS, params=tuple(query)).json()
        curl, python = page.code
        assert server.url in curl
        curled = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=True)
        assert json.loads(curled.stdout)["records"] == api["records"]
        ran = subprocess.run(
            [sys.executable, "-c", python], capture_output=True, text=True, timeout=30, check=True
        )
        lines = ran.stdout.splitlines()
        assert lines[0] == f"{api['total']} records"
        assert lines[1:] == [repr(record) for record in api["records"]]
        # The downloads carry the same filters.
        hrefs = parse(client.get(PAGE, params=tuple(query)).text).hrefs
        csv_link = next(h for h in hrefs if "format=csv" in h and "bom" not in h)
        assert dict(parse_qsl(urlsplit(csv_link).query)) == {
            "設置位置": place,
            "sort": "-NO",
            "format": "csv",
        }
        deadline = time.monotonic() + 10
        while True:
            text = client.get(f"/en{PAGE}").text
            if "4 in all" in text or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    today = datetime.now(JST).date()
    assert f"API requests in the last 30 days: 4 in all, at most 4 a day ({today:%d %b})" in text
    assert f'<time datetime="{today.isoformat()}">{today:%d %b}</time></th><td>4</td>' in text
    assert '<polyline class="spark-line"' in text
