"""The site's frame around the search: paths in both languages, the language switch, and the
messages every template asks for."""

from __future__ import annotations

import re

import pytest
from starlette.requests import Request

from services.publish.site import templating
from services.publish.site.messages import LANGS, MESSAGES
from services.publish.site.templating import TEMPLATES, language_of, site_path, switch_language_url


def test_every_message_has_both_languages() -> None:
    for key, texts in MESSAGES.items():
        assert set(texts) == set(LANGS), key
        assert all(text.strip() for text in texts.values()), key


def test_every_message_a_template_names_exists() -> None:
    named = set()
    for template in TEMPLATES.glob("*.html"):
        named |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']\s*\)""", template.read_text(encoding="utf-8")))
    assert named, "no message found: the pattern no longer matches the templates"
    assert named - set(MESSAGES) == set()


@pytest.mark.parametrize(
    ("lang", "path", "expected"),
    [("ja", "/", "/"), ("en", "/", "/en/"), ("ja", "/search", "/search"), ("en", "/search", "/en/search"),
     ("en", "/datasets/aed", "/en/datasets/aed")],
)  # fmt: skip
def test_site_paths(lang: templating.Lang, path: str, expected: str) -> None:
    assert site_path(lang, path) == expected
    assert language_of(expected) == lang


def test_a_site_path_is_absolute() -> None:
    with pytest.raises(ValueError):
        site_path("en", "search")


@pytest.mark.parametrize("path", ["/english", "/enquiry", "/search"])
def test_only_the_en_prefix_is_english(path: str) -> None:
    assert language_of(path) == "ja"


def _request(path: str, query: str = "") -> Request:
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query.encode(), "headers": [],
             "scheme": "http", "server": ("testserver", 80), "root_path": ""}  # fmt: skip
    return Request(scope)


@pytest.mark.parametrize(
    ("path", "lang", "expected"),
    [("/", "ja", "/en/"), ("/en/", "en", "/"), ("/en", "en", "/"), ("/search", "ja", "/en/search"),
     ("/en/search", "en", "/search")],
)  # fmt: skip
def test_the_language_switch_leads_to_the_same_page(path: str, lang: templating.Lang, expected: str) -> None:
    assert switch_language_url(_request(path), lang) == expected


def test_the_language_switch_keeps_the_search() -> None:
    query = "q=%E9%81%BF%E9%9B%A3&keyword=AED&page=2"
    assert switch_language_url(_request("/search", query), "ja") == f"/en/search?{query}"
