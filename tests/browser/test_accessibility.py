"""Every kind of page of the portal, in Japanese and in English, read by a real browser on a closed
network: it answers 200, says its language in ``<html lang>``, links to its twin in the other
language, loads nothing from outside 127.0.0.1, throws no script error, and axe-core finds no serious
or critical WCAG 2.x A/AA violation. Each page leaves a screenshot
(``var/test-artifacts/screenshots/<page>-<lang>.png``).

One test per page and language; each reports every problem it found at once, so a single run shows
all that is left to fix on a page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.axe import describe, serious, violations
from tests.support.browser import Portal, screenshot, sign_in

# What we wrote on the docs page; Swagger UI's own markup is the library's (see test_docs_offline).
DOCS_OWN_MARKUP = [".docs-intro"]
FEATURE = "{feature}"  # replaced by the id of a real AED feature of the demo catalog


@dataclass(frozen=True)
class PageCase:
    name: str
    lang: str
    path: str
    axe_include: list[str] | None = None
    # Draws with what it fetches after load (map data, the API description): wait for the network.
    fetches_after_load: bool = False

    @property
    def id(self) -> str:
        return f"{self.name}-{self.lang}"


PAGES = [
    PageCase("home", "ja", "/"),
    PageCase("home", "en", "/en/"),
    PageCase("search", "ja", f"/search?q={quote('防災')}&keyword={quote('防災')}"),
    PageCase("search", "en", "/en/search?q=evacuation&department=crisis-management"),
    PageCase("dataset", "ja", "/datasets/aed"),
    PageCase("dataset", "en", "/en/datasets/aed"),
    PageCase("map", "ja", "/map"),
    PageCase("map", "en", "/en/map"),
    # With datasets chosen: the map itself (ward outlines, points, legend) and the per-ward tables.
    PageCase("map-datasets", "ja", "/map?d=aed&d=public-toilet", fetches_after_load=True),
    PageCase("map-datasets", "en", "/en/map?d=aed&d=public-toilet", fetches_after_load=True),
    PageCase("ogc-landing", "ja", "/ogc"),
    PageCase("ogc-landing", "en", "/ogc?lang=en"),
    PageCase("ogc-collections", "ja", "/ogc/collections"),
    PageCase("ogc-collections", "en", "/ogc/collections?lang=en"),
    PageCase("ogc-items", "ja", "/ogc/collections/aed/items?f=html"),
    PageCase("ogc-items", "en", "/ogc/collections/aed/items?f=html&lang=en"),
    PageCase("ogc-item", "ja", f"/ogc/collections/aed/items/{FEATURE}?f=html"),
    PageCase("ogc-item", "en", f"/ogc/collections/aed/items/{FEATURE}?f=html&lang=en"),
    PageCase("login", "ja", "/login"),
    PageCase("login", "en", "/en/login"),
    PageCase("docs", "ja", "/docs", DOCS_OWN_MARKUP, fetches_after_load=True),
    PageCase("docs", "en", "/en/docs", DOCS_OWN_MARKUP, fetches_after_load=True),
]


@pytest.fixture(scope="module")
def feature_id(portal: Portal) -> str:
    """The id of one AED feature, as the OGC API itself names it."""
    answer = httpx.get(portal.url("/ogc/collections/aed/items"), params={"f": "json", "limit": 1})
    assert answer.status_code == 200, answer.text[:300]
    return str(answer.json()["features"][0]["id"])


def check_page(
    page: Page,
    url: str,
    case: PageCase,
    *,
    blocked_requests: list[str],
    page_errors: list[str],
) -> tuple[list[str], list[dict[str, object]]]:
    """Open ``url``; every problem found (empty: none) and axe's full findings."""
    problems: list[str] = []
    answer = page.goto(url)
    if answer is None or answer.status != 200:
        problems.append(f"status {None if answer is None else answer.status}")
    if case.fetches_after_load:
        # What the page draws from its fetches must be there before axe reads it.
        page.wait_for_load_state("networkidle")
    lang = page.locator("html").get_attribute("lang")
    if lang != case.lang:
        problems.append(f'<html lang="{lang}">, expected "{case.lang}"')
    other = "en" if case.lang == "ja" else "ja"
    if page.locator(f"a[hreflang='{other}']").count() == 0:
        problems.append(f"no link to the {other} version (a[hreflang={other}])")
    screenshot(page, case.id)
    if blocked_requests:
        problems.append(f"requests that left 127.0.0.1: {blocked_requests}")
    if page_errors:
        problems.append(f"script errors: {page_errors}")
    found = violations(page, include=case.axe_include)
    blocking = serious(found)
    if blocking:
        problems.append(f"{len(blocking)} serious/critical axe violations:\n{describe(blocking)}")
    return problems, found


@pytest.mark.parametrize("case", PAGES, ids=[c.id for c in PAGES])
def test_page_is_accessible(
    portal: Portal,
    new_page: Callable[..., Page],
    blocked_requests: list[str],
    page_errors: list[str],
    request: pytest.FixtureRequest,
    case: PageCase,
) -> None:
    path = case.path
    if FEATURE in path:
        path = path.replace(FEATURE, quote(request.getfixturevalue("feature_id"), safe=""))
    # The browser's own language matches the page's: nothing may depend on it, but a visitor's does.
    page = new_page(locale="ja-JP" if case.lang == "ja" else "en-US")
    problems, found = check_page(
        page, portal.url(path), case, blocked_requests=blocked_requests, page_errors=page_errors
    )
    milder = [v for v in found if v not in serious(found)]
    if milder:
        print(f"{case.id}: moderate/minor axe findings:\n{describe(milder)}")
    assert not problems, f"{case.id} {path}:\n- " + "\n- ".join(problems)


def test_department_login_then_internal_dataset(
    portal: Portal, page: Page, blocked_requests: list[str], page_errors: list[str]
) -> None:
    """A department signs in with its credential through the form and reads its internal dataset's
    page; the signed-in pages meet the same bar as the public ones."""
    sign_in(page, portal)
    expect(page.locator(".login-state")).to_contain_text("digital")
    case = PageCase("dataset-internal", "ja", "/datasets/copier-usage")
    problems, _ = check_page(
        page, portal.url(case.path), case, blocked_requests=blocked_requests, page_errors=page_errors
    )
    assert not problems, f"{case.id}:\n- " + "\n- ".join(problems)
