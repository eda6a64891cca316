"""The API documentation works on a closed network: with every request not to 127.0.0.1 aborted, the
publish and catalog ``/docs`` pages draw their operations from the vendored Swagger UI and their own
``/openapi.json``, in Japanese and in English, and never try to reach anywhere else."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.axe import assert_no_serious
from tests.support.browser import CatalogAdmin, Portal, screenshot

# axe checks what we wrote on the page (title, introduction, links). Swagger UI's own markup is a
# third party's, pinned by npm: its findings (an unnamed response-type <select>, contrast of its
# colour scheme) are the library's, so they are not asserted here.
OUR_MARKUP = [".docs-intro"]


def _records_block(page: Page) -> None:
    """The records operation is listed; opened, it shows its parameters (its description was read)."""
    block = page.locator(".opblock-get", has=page.locator(".opblock-summary-path", has_text="/records"))
    operation = block.filter(has=page.get_by_text("/api/v1/datasets/{dataset_id}/records", exact=True)).first
    expect(operation).to_be_visible()
    operation.locator(".opblock-summary-control").click()
    expect(operation.locator(".parameters-container")).to_be_visible()
    expect(operation.locator("tr[data-param-name='dataset_id']")).to_be_visible()


@pytest.mark.parametrize(
    ("path", "lang", "title"),
    [
        ("/docs", "ja", "オープンデータ API ドキュメント"),
        ("/en/docs", "en", "Open Data API documentation"),
    ],
    ids=["ja", "en"],
)
def test_publish_docs_work_offline(
    portal: Portal,
    page: Page,
    blocked_requests: list[str],
    page_errors: list[str],
    path: str,
    lang: str,
    title: str,
) -> None:
    answer = page.goto(portal.url(path))
    assert answer is not None and answer.status == 200
    assert page.locator("html").get_attribute("lang") == lang
    expect(page.locator("h1").first).to_have_text(title)
    expect(
        page.locator(".docs-intro a[href='/']" if lang == "ja" else ".docs-intro a[href='/en/']")
    ).to_be_visible()
    _records_block(page)
    name = f"docs-publish-{lang}"
    screenshot(page, name)
    assert blocked_requests == [], f"the docs page tried to leave 127.0.0.1: {blocked_requests}"
    assert page_errors == []
    assert_no_serious(page, name, include=OUR_MARKUP)


def test_publish_docs_load_only_our_own_assets(portal: Portal) -> None:
    """The page names no other origin: only the vendored Swagger UI and the app's own description."""
    html = httpx.get(portal.url("/docs")).text
    assert "//" not in html.replace("http://www.w3.org", ""), "an absolute URL on the docs page"
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert 'data-openapi-url="/openapi.json"' in html
    english = httpx.get(portal.url("/docs"), params={"lang": "en"}).text
    assert '<html lang="en">' in english and "Open Data API documentation" in english
    for gone in ("/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(portal.url(gone)).status_code == 404, f"{gone} still served (it loads from a CDN)"


def test_catalog_docs_work_offline(
    catalog_service: CatalogAdmin,
    new_page: Callable[..., Page],
    blocked_requests: list[str],
    page_errors: list[str],
) -> None:
    # Every catalog route wants a credential, its documentation included: an operator's browser sends one.
    page = new_page(extra_http_headers={"Authorization": f"Bearer {catalog_service.admin_key}"})
    answer = page.goto(catalog_service.url("/docs"))
    assert answer is not None and answer.status == 200
    assert page.locator("html").get_attribute("lang") == "ja"
    expect(page.locator("h1").first).to_have_text("カタログ管理 API ドキュメント")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/subscriptions").first).to_be_visible()
    screenshot(page, "docs-catalog-ja")
    assert blocked_requests == [], f"the docs page tried to leave 127.0.0.1: {blocked_requests}"
    assert page_errors == []
    assert_no_serious(page, "catalog docs", include=OUR_MARKUP)


def test_catalog_docs_need_a_credential(catalog_service: CatalogAdmin) -> None:
    assert httpx.get(catalog_service.url("/docs")).status_code == 401
    assert httpx.get(catalog_service.url("/static/vendor/swagger-ui/swagger-ui.css")).status_code == 401
