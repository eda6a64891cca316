"""Browser fixtures: one real publish server and one headless chromium per session, a fresh page per test.

Every page runs in a context that lets requests reach 127.0.0.1 only: anything else (a CDN, a font
service, a validator) is aborted and its URL recorded in ``blocked_requests``, so a test can prove
that a page works on a city network without the public internet. Pages open in Japanese (ja-JP),
the portal's default; ``new_page(locale="en-US")`` gives an English browser. A failed test leaves a
screenshot of each page it opened in ``var/test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from tests.support import needs
from tests.support.browser import CatalogAdmin, Portal, catalog_admin, publish_portal, screenshot

LOCAL_HOST = "127.0.0.1"
# Generous: on a shared CI machine Swagger UI alone may take seconds to parse and draw.
DEFAULT_TIMEOUT_MS = 20_000
expect.set_options(timeout=DEFAULT_TIMEOUT_MS)

NewPage = Callable[..., Page]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """``cityos serve publish`` over a SQLite catalog holding every dataset's demo records."""
    with publish_portal(tmp_path_factory.mktemp("portal")) as running:
        yield running


@pytest.fixture(scope="session")
def catalog_service(portal: Portal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CatalogAdmin]:
    """The catalog's admin API over the portal's catalog (started only by tests that ask for it)."""
    with catalog_admin(portal.db_url, tmp_path_factory.mktemp("catalog")) as running:
        yield running


# Package scope, not session: Playwright's synchronous API keeps an event loop running in the main
# thread while it is open, and tests after this folder call asyncio.run(). It stops with the folder.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's chromium, headless (Playwright attaches to it; it never downloads one)."""
    executable = needs.chromium()
    # Chromium refuses to sandbox itself as root, which CI containers are.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    launched = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
    yield launched
    launched.close()


@pytest.fixture
def blocked_requests() -> list[str]:
    """URLs the page tried to fetch from anywhere but 127.0.0.1 (all aborted)."""
    return []


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught JavaScript errors of the test's pages."""
    return []


@pytest.fixture
def new_page(
    browser: Browser,
    blocked_requests: list[str],
    page_errors: list[str],
    request: pytest.FixtureRequest,
) -> Iterator[NewPage]:
    """``new_page(locale="ja-JP", **context_options)``: a page in a fresh context that may only
    reach 127.0.0.1."""
    opened: list[Page] = []

    def guard(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == LOCAL_HOST:
            route.continue_()
        else:
            blocked_requests.append(url)
            route.abort()

    def make(locale: str = "ja-JP", **options: Any) -> Page:
        context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900}, **options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        context.route("**/*", guard)
        page = context.new_page()
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        opened.append(page)
        return page

    yield make
    failed = request.node.stash.get(_FAILED, False)
    for index, page in enumerate(opened):
        if failed and not page.is_closed():
            try:
                screenshot(page, f"FAILED-{_safe(request.node.name)}-{index}")
            except Exception as error:  # a screenshot must never hide the failure
                print(f"no screenshot: {error}")
        page.context.close()


@pytest.fixture
def page(new_page: NewPage) -> Page:
    """A Japanese browser's page that may only reach 127.0.0.1."""
    return new_page()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]
