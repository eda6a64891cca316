"""The offline API documentation page: only this origin's files, its one inline script allowed by
hash, everything a caller could influence escaped, both languages."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

from fastapi import FastAPI
from fastapi.testclient import TestClient

from cityos.kernel.api_docs import (
    CONTENT_SECURITY_POLICY,
    DocsLinks,
    DocsText,
    docs_html,
    docs_language,
    install_api_docs,
)

TEXT = DocsText(title={"ja": "テスト API", "en": "Test API"}, intro={"ja": "説明<b>", "en": "About <b>"})
LINKS = DocsLinks(openapi_url="/openapi.json", other_lang_url="/docs?lang=en", home_url="/")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "data-openapi-url") and v]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def _parsed(html: str) -> _Collect:
    collect = _Collect()
    collect.feed(html)
    return collect


def test_the_page_loads_only_this_origins_files() -> None:
    urls = _parsed(docs_html(TEXT, LINKS, "ja")).urls
    assert all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in urls
    assert "/static/vendor/swagger-ui/swagger-ui.css" in urls


def test_the_inline_initializer_is_the_one_the_policy_allows() -> None:
    scripts = _parsed(docs_html(TEXT, LINKS, "en")).scripts
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    allowed = re.search(r"script-src ([^;]+)", CONTENT_SECURITY_POLICY)
    assert allowed is not None and allowed.group(1).split() == ["'self'", f"'sha256-{digest}'"]
    assert "validatorUrl: null" in scripts[0] and "queryConfigEnabled: false" in scripts[0]


def test_texts_and_links_are_escaped() -> None:
    hostile = DocsLinks(openapi_url='/o"><script>x()</script>', other_lang_url="/en/docs", home_url=None)
    html = docs_html(TEXT, hostile, "en")
    assert "<script>x()" not in html and "About &lt;b&gt;" in html
    assert len(_parsed(html).scripts) == 1


def test_language_from_path_or_parameter() -> None:
    assert docs_language("/docs", None) == "ja"
    assert docs_language("/docs", "en") == "en"
    assert docs_language("/en/docs", None) == "en"
    assert docs_language("/docs", "fr") == "ja"


def test_installed_page_in_both_languages_links_its_twin() -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    install_api_docs(
        app, TEXT, openapi_url="/openapi.json", paths={"ja": "/docs"}, home_urls={"ja": "/", "en": "/en/"}
    )
    client = TestClient(app)
    ja = client.get("/docs")
    en = client.get("/docs", params={"lang": "en"})
    assert ja.status_code == en.status_code == 200
    assert '<html lang="ja">' in ja.text and 'href="/docs?lang=en"' in ja.text and 'href="/"' in ja.text
    assert '<html lang="en">' in en.text and 'hreflang="ja"' in en.text and 'href="/en/"' in en.text
    assert en.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "/docs" not in client.get("/openapi.json").json()["paths"]
