"""A dataset's page in a real browser: filter the preview, page through it, download the CSV, switch
language, read it on a phone; the preview and the download are compared with the records API and
the export for the same filters, and axe-core finds no serious or critical WCAG A/AA violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from playwright.sync_api import Page, expect

from tests.support.axe import assert_no_serious
from tests.support.browser import Portal, screenshot

DATASET = "aed"
PAGE = f"/datasets/{DATASET}"
RECORDS = f"/api/v1/datasets/{DATASET}/records"
EXPORT = f"/api/v1/datasets/{DATASET}/export"
FILTER_FIELD = "小児対応設備の有無"  # a Japanese name, values shared by many records


def _api(portal: Portal, params: list[tuple[str, str]]) -> dict[str, Any]:
    answer = httpx.get(portal.url(RECORDS), params=tuple(params))
    assert answer.status_code == 200, answer.text[:300]
    body: dict[str, Any] = answer.json()
    return body


def _preview_keys(page: Page) -> list[str]:
    """The record keys (column NO) of the preview table as the browser shows it."""
    headers = page.locator(".preview-table thead th").all_inner_texts()
    column = headers.index("NO")
    return page.locator(f".preview-table tbody tr td:nth-child({column + 1})").all_inner_texts()


def _common_value(portal: Portal) -> tuple[str, int]:
    """A value of the filter field shared by several records, and how many have it."""
    records = _api(portal, [("limit", "1000")])["records"]
    counts: dict[str, int] = {}
    for record in records:
        value = record.get(FILTER_FIELD)
        if isinstance(value, str) and value:
            counts[value] = counts.get(value, 0) + 1
    value, count = max(counts.items(), key=lambda item: item[1])
    return value, count


def test_filter_page_download_and_switch_language(
    page: Page, portal: Portal, blocked_requests: list[str], page_errors: list[str]
) -> None:
    value, matching = _common_value(portal)
    assert matching >= 2, "the demo catalog needs a value shared by several records"
    page.goto(portal.url(PAGE))
    expect(page.locator("h1")).to_contain_text("AED")

    # Filter: the labelled field inputs live in a disclosure; two records per page, so it pages.
    page.get_by_text("項目の値で絞り込む").click()
    page.get_by_label(FILTER_FIELD, exact=True).fill(value)
    page.get_by_label("1ページの件数").fill("2")
    page.get_by_role("button", name="絞り込む").click()
    page.wait_for_load_state()
    query = dict(parse_qsl(urlsplit(page.url).query))
    assert query[FILTER_FIELD] == value and query["limit"] == "2"
    expected = _api(portal, [(FILTER_FIELD, value), ("limit", "2")])
    assert _preview_keys(page) == [r["NO"] for r in expected["records"]]
    expect(page.locator("#preview-caption")).to_contain_text(f"{expected['total']} 件中 1〜2 件目")

    # Next page, then back.
    page.get_by_role("link", name="次のページ").click()
    page.wait_for_load_state()
    second = _api(portal, [(FILTER_FIELD, value), ("limit", "2"), ("offset", "2")])
    assert _preview_keys(page) == [r["NO"] for r in second["records"]]
    page.get_by_role("link", name="前のページ").click()
    page.wait_for_load_state()
    assert _preview_keys(page) == [r["NO"] for r in expected["records"]]

    # The CSV download is the export of the same filters, byte for byte.
    for label, extra in (("CSV（UTF-8）", {}), ("CSV（Excel 向け、BOM 付き）", {"bom": "true"})):
        with page.expect_download() as download_info:
            page.get_by_role("link", name=label).click()
        downloaded = download_info.value
        body = Path(downloaded.path()).read_bytes()
        reference = httpx.get(portal.url(EXPORT), params={FILTER_FIELD: value, "format": "csv", **extra})
        assert reference.status_code == 200
        assert body == reference.content, label
        assert body.startswith(b"\xef\xbb\xbf") == bool(extra)
        assert downloaded.suggested_filename == f"{DATASET}.csv"
        assert len(body.decode("utf-8-sig").strip().splitlines()) == matching + 1  # header + records

    assert_no_serious(page, "dataset page, filtered")
    screenshot(page, "dataset-filtered-ja")

    # English and back: the same preview, the same query.
    page.get_by_role("link", name="English version of this page").click()
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "en"
    assert urlsplit(page.url).path == f"/en{PAGE}"
    expect(page.get_by_role("heading", name="Data preview")).to_be_visible()
    expect(page.locator("#preview-caption")).to_contain_text(f"records 1 to 2 of {expected['total']}")
    assert _preview_keys(page) == [r["NO"] for r in expected["records"]]
    assert_no_serious(page, "dataset page, English, filtered")
    page.get_by_role("link", name="このページの日本語版").click()
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "ja"
    assert dict(parse_qsl(urlsplit(page.url).query))[FILTER_FIELD] == value
    assert blocked_requests == []
    assert page_errors == []


def test_bad_filter_shows_the_reason_and_keeps_the_form(page: Page, portal: Portal) -> None:
    response = page.goto(portal.url(f"{PAGE}?limit=abc"))
    assert response is not None and response.status == 400
    expect(page.get_by_role("alert")).to_contain_text("パラメータ「limit」が正しくありません")
    expect(page.get_by_label("1ページの件数")).to_have_attribute("aria-invalid", "true")
    assert_no_serious(page, "dataset page with a refused parameter")


def test_on_a_phone_only_the_table_scrolls_sideways(page: Page, portal: Portal) -> None:
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(portal.url(PAGE))
    page_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert page_width <= 375
    region = page.get_by_role("region", name=page.locator("#preview-caption").inner_text())
    expect(region).to_have_attribute("tabindex", "0")
    assert region.evaluate("el => el.scrollWidth > el.clientWidth")
    # The keyboard reaches the region and scrolls it.
    region.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('.preview-table').parentElement.scrollLeft > 0", timeout=3_000
    )
    assert_no_serious(page, "dataset page on a phone")
    screenshot(page, "dataset-phone-ja")
