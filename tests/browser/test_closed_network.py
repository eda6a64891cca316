"""The browser tests' closed network holds: what a page asks of any host but 127.0.0.1 never leaves,
and is recorded for the test to see (otherwise "nothing was blocked" would prove nothing)."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.support.browser import Portal


def test_requests_elsewhere_are_aborted_and_recorded(
    portal: Portal, page: Page, blocked_requests: list[str]
) -> None:
    page.goto(portal.url("/healthz"))
    loaded = page.evaluate(
        """async (urls) => Promise.all(urls.map(u => fetch(u).then(r => r.status, () => "failed")))""",
        ["https://unpkg.com/leaflet@1.9.4/dist/leaflet.js", "http://localhost:9/", portal.url("/healthz")],
    )
    assert loaded == ["failed", "failed", 200]
    assert blocked_requests == ["https://unpkg.com/leaflet@1.9.4/dist/leaflet.js", "http://localhost:9/"]
