"""The portal's search as a visitor uses it in a real browser: type, submit, narrow by a facet, open a
result, switch language and back; the same with the keyboard alone; a department's login; and axe-core
on the home and search pages. Nothing may be fetched from outside 127.0.0.1."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Locator, Page, expect

from tests.support.axe import assert_no_serious
from tests.support.browser import Portal, screenshot, sign_in

# Enough Tab presses to cross the header and the facets of the demo catalog, few enough to stop a
# focus trap from looping forever.
MAX_TABS = 80


def total(page: Page) -> int:
    return int(page.locator("[data-total]").inner_text())


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_search_narrow_open_and_switch_language(
    portal: Portal, page: Page, blocked_requests: list[str], page_errors: list[str]
) -> None:
    page.goto(portal.url("/"))
    page.get_by_label("キーワード").fill("防災")
    page.get_by_role("button", name="検索").click()
    page.wait_for_url(re.compile(r"/search\?"))
    assert query(page) == {"q": ["防災"]}
    found = total(page)
    assert found >= 2 and page.locator("[data-dataset]").count() == found

    facet = page.locator("[data-facet='department'] li").first
    expected = int(str(facet.get_attribute("data-count")))
    department = str(facet.get_attribute("data-value"))
    facet.get_by_role("link").click()
    page.wait_for_url(re.compile("department="))
    assert query(page) == {"q": ["防災"], "department": [department]}
    assert total(page) == expected
    # The chosen facet is listed as selected, with a link that removes it.
    selected = page.locator("ul.selected a").first
    expect(selected).to_contain_text("部局")
    screenshot(page, "site-search-facet")

    result = page.locator("[data-dataset]").first
    dataset_id = str(result.get_attribute("data-dataset"))
    title = result.locator("h3 a").inner_text()
    result.locator("h3 a").click()
    page.wait_for_url(portal.url(f"/datasets/{dataset_id}"))
    expect(page.locator("h1")).to_contain_text(title)
    page.go_back()
    page.wait_for_url(re.compile("department="))

    page.locator("a.lang-switch").click()
    page.wait_for_url(re.compile(r"/en/search\?"))
    assert page.locator("html").get_attribute("lang") == "en"
    assert query(page) == {"q": ["防災"], "department": [department]} and total(page) == expected
    expect(page.locator("h1")).to_have_text("Search datasets")
    page.locator("a.lang-switch").click()
    page.wait_for_url(re.compile(r"/search\?"))
    assert not urlsplit(page.url).path.startswith("/en")
    assert page.locator("html").get_attribute("lang") == "ja"

    selected = page.locator("ul.selected a").first
    selected.click()
    page.wait_for_url(re.compile(r"/search\?q="))
    assert query(page) == {"q": ["防災"]} and total(page) == found
    assert blocked_requests == [] and page_errors == []


def tab_to(page: Page, target: Locator, *, what: str) -> int:
    """Press Tab until ``target`` (a locator of one or more elements) holds the focus; the presses."""
    for presses in range(1, MAX_TABS + 1):
        page.keyboard.press("Tab")
        if target.evaluate_all("(nodes) => nodes.includes(document.activeElement)"):
            return presses
    raise AssertionError(f"{what} never got the focus in {MAX_TABS} Tab presses")


def focus_ring(page: Page) -> str:
    """The focused element's outline as the browser draws it."""
    return str(page.evaluate("() => { const s = getComputedStyle(document.activeElement); "
                             "return `${s.outlineStyle} ${s.outlineWidth}`; }"))  # fmt: skip


def test_keyboard_only(portal: Portal, page: Page) -> None:
    page.goto(portal.url("/"))
    # The first Tab reaches the skip link, which shows itself when focused.
    page.keyboard.press("Tab")
    skip = page.locator("a.skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()

    presses = tab_to(page, page.locator("#home-q"), what="the search box")
    assert presses < 20
    assert focus_ring(page) != "none 0px"
    page.keyboard.type("避難")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q="))
    found = total(page)
    assert found >= 1

    facet_links = page.locator("[data-facet='keyword'] a")
    tab_to(page, facet_links, what="a keyword facet")
    assert focus_ring(page).startswith("solid")
    focused = page.locator("[data-facet='keyword'] li").filter(has=page.locator("a:focus"))
    expected = int(str(focused.get_attribute("data-count")))
    keyword = str(focused.get_attribute("data-value"))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile("keyword="))
    assert query(page)["keyword"] == [keyword]
    assert total(page) == expected


def test_a_department_sees_its_internal_dataset_marked(portal: Portal, page: Page) -> None:
    page.goto(portal.url("/search?q=copier"))
    assert total(page) == 0
    sign_in(page, portal)
    page.goto(portal.url("/search?q=copier"))
    internal = page.locator("[data-dataset='copier-usage']")
    expect(internal.locator(".badge")).to_have_text("庁内限定")
    page.locator(".logout-form button").click()
    page.wait_for_url(portal.url("/"))
    expect(page.locator(".login-link")).to_be_visible()
    page.goto(portal.url("/search?q=copier"))
    assert total(page) == 0


def test_home_and_search_pass_axe(portal: Portal, page: Page) -> None:
    for path in (
        "/",
        "/search",
        "/search?q=%E9%98%B2%E7%81%BD&keyword=%E9%98%B2%E7%81%BD",
        "/en/",
        "/en/search",
    ):
        page.goto(portal.url(path))
        assert_no_serious(page, path)
    # A refused search is a page too.
    page.goto(portal.url("/search?page=0"))
    assert_no_serious(page, "refused search")
    # The narrow screen of a phone: nothing overflows sideways.
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(portal.url("/search?q=%E9%98%B2%E7%81%BD"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "site-search-phone")
