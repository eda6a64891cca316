"""The portal's home, search and login through the real publish app, on SQLite and PostgreSQL.

The catalog is filled the way production fills it (schemas synced, records applied as validated
events). What the pages list is checked against what ``GET /api/v1/datasets`` gives the same caller:
the same datasets, and facet counts computed here from the API's listing. Internal datasets show
only to a department that may read them; the personal one never shows to anyone.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cityos.domain.access import Caller, CallerKind
from cityos.domain.apikeys import OwnerKind, issue_key, revoke_key
from cityos.domain.grants import grant
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.app import create_app
from services.publish.callers import SESSION_COOKIE
from tests.support.publish_catalog import (
    COPIER,
    MOVE,
    NO_LOCATION_ID,
    T0,
    TOILETS,
    aed_rows,
    schemas_with_budget_lines,
    validated_events,
)

INTERNAL = "copier-usage"
PERSONAL = "resident-moves"
PERSONAL_TEXTS = (PERSONAL, "住民異動", "Resident moves")
ANONYMOUS_LIMIT = 40


@dataclass
class Site:
    client: TestClient
    engine: Engine
    keys: dict[str, str]  # who -> credential


def _issue(engine: Engine, kind: OwnerKind, owner: str) -> str:
    with session_factory(engine)() as session, session.begin():
        return issue_key(
            session, owner_kind=kind, owner_id=owner, purpose="site test", actor="admin:test"
        ).secret


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[Site]:
    migrate(database_url)
    engine = make_engine(database_url)
    schema_set = load_schema_dir(schemas_with_budget_lines(tmp_path))
    budget = [{"事業ID": "B1", "事業名": "DX推進", "予算額": 5000000}]
    events = (
        validated_events("aed", "NO", aed_rows(), 0)
        + validated_events("public-toilet", "ID", TOILETS, 100)
        + validated_events(INTERNAL, "ID", [COPIER], 200)
        + validated_events(PERSONAL, "異動ID", [MOVE], 300)
        + validated_events(NO_LOCATION_ID, "事業ID", budget, 400)
    )
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=schema_set, now=T0)
        apply_batch(session, events=events, now=T0 + timedelta(hours=1))
    with session_factory(engine)() as session, session.begin():
        # Planning may read two fields of the internal dataset; fire holds no grant.
        grant(session, caller=Caller(CallerKind.department, "digital"), dataset_id=INTERNAL,
              grantee="planning", fields=["部局名", "年月"])  # fmt: skip
    keys = {
        "digital": _issue(engine, OwnerKind.department, "digital"),  # owns the internal dataset
        "planning": _issue(engine, OwnerKind.department, "planning"),  # granted it
        "fire": _issue(engine, OwnerKind.department, "fire"),  # neither
        "citizens": _issue(engine, OwnerKind.department, "citizens"),  # owns the personal dataset
        "developer": _issue(engine, OwnerKind.developer, "dev@example.com"),
    }
    settings = Settings(database_url=database_url, publish_anonymous_rate_per_minute=ANONYMOUS_LIMIT)
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            yield Site(client, engine, keys)
    finally:
        engine.dispose()


def cookie(key: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={key}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class PageParser(HTMLParser):
    """What the tests read of a page: listed datasets, facet values with counts, the total, badges."""

    def __init__(self) -> None:
        super().__init__()
        self.datasets: list[str] = []
        self.facets: dict[str, dict[str, int]] = {}
        self.total: int | None = None
        self.html_lang: str | None = None
        self.h1 = ""
        self._facet: str | None = None
        self._in: str | None = None
        self.badges = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_lang = a.get("lang")
        if "data-dataset" in a:
            self.datasets.append(str(a["data-dataset"]))
        if "data-facet" in a:
            self._facet = str(a["data-facet"])
            self.facets[self._facet] = {}
        if "data-value" in a and self._facet is not None:
            self.facets[self._facet][str(a["data-value"])] = int(str(a["data-count"]))
        if "data-total" in a:
            self._in = "total"
        if tag == "h1":
            self._in = "h1"
        if a.get("class") == "badge":
            self.badges += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("strong", "h1"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "total":
            self.total = int(data)
        elif self._in == "h1":
            self.h1 += data


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def expected_facets(listing: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Facet counts from the API's listing, by this test's own reading of it."""
    counts: dict[str, Counter[str]] = {
        f: Counter() for f in ("department", "keyword", "format", "stars", "license")
    }
    for dataset in listing:
        counts["department"][dataset["department"]["id"]] += 1
        counts["keyword"].update(set(dataset["keywords"]))
        formats = ["CSV", "JSON", "NDJSON", "Parquet"] + (
            ["GeoJSON"] if "geojson" in dataset["links"] else []
        )
        counts["format"].update(formats)
        counts["stars"][str(dataset["five_star"])] += 1
        counts["license"][dataset["license"]] += 1
    return counts


CALLERS = ["anonymous", "digital", "planning", "fire", "citizens", "developer"]


def _auth(site: Site, who: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers for the API, headers for the pages) of a caller."""
    if who == "anonymous":
        return {}, {}
    if who == "developer":  # a developer's key works on pages only as a header
        return bearer(site.keys[who]), bearer(site.keys[who])
    return bearer(site.keys[who]), cookie(site.keys[who])


def test_search_lists_what_the_api_lists_with_its_counts(site: Site) -> None:
    seen_internal = set()
    for who in CALLERS:
        api_headers, page_headers = _auth(site, who)
        listing = site.client.get("/api/v1/datasets", headers=api_headers).json()["datasets"]
        page = site.client.get("/search", headers=page_headers)
        assert page.status_code == 200, (who, page.text)
        parsed = parse(page.text)
        assert parsed.total == len(listing), who
        assert sorted(parsed.datasets) == sorted(d["id"] for d in listing), who
        expected = expected_facets(listing)
        for facet, counter in expected.items():
            shown = parsed.facets.get(facet, {})
            assert shown, (who, facet)
            assert all(shown[value] == counter[value] for value in shown), (who, facet, shown, counter)
            # The most frequent values are the ones listed (all of them when they are few).
            top = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[: len(shown)]
            assert sorted(shown.items()) == sorted(top), (who, facet)
            assert len(shown) == min(len(counter), 15), (who, facet)
        if INTERNAL in parsed.datasets:
            seen_internal.add(who)
            # One badge per internal dataset the caller sees (the digital office owns two).
            internal = sum(d["classification"] == "internal" for d in listing)
            assert parsed.badges == internal >= 1 and "庁内限定" in page.text
        else:
            assert parsed.badges == 0 and "庁内限定" not in page.text
        assert not any(text in page.text for text in PERSONAL_TEXTS), who
    assert seen_internal == {"digital", "planning"}


def test_facets_and_text_narrow_like_the_api(site: Site) -> None:
    listing = site.client.get("/api/v1/datasets").json()["datasets"]
    geo_fire = [d["id"] for d in listing if "geojson" in d["links"] and d["department"]["id"] == "fire"]
    parsed = parse(site.client.get("/search?format=GeoJSON&department=fire").text)
    assert parsed.datasets == geo_fire and parsed.total == len(geo_fire) == 1
    no_location = parse(site.client.get("/search", params={"format": "GeoJSON"}).text)
    assert NO_LOCATION_ID not in no_location.datasets and no_location.datasets
    assert NO_LOCATION_ID in parse(site.client.get("/search?format=CSV").text).datasets
    # Japanese substring, English any case, a keyword: each the CKAN API's package_search finds too.
    for q in ("トイレ", "defibrillator", "BUDGET", "救命"):
        found = parse(site.client.get("/search", params={"q": q}).text).datasets
        ckan = site.client.get("/api/3/action/package_search", params={"q": q}).json()["result"]
        assert found and sorted(found) == sorted(p["name"] for p in ckan["results"]), q
    # The internal dataset's English text is searchable by who may read it, and by no one else.
    internal_text = {"q": "paper-reduction"}
    assert parse(
        site.client.get("/en/search", params=internal_text, headers=cookie(site.keys["digital"])).text
    ).datasets == [INTERNAL]
    assert (
        parse(
            site.client.get("/en/search", params=internal_text, headers=cookie(site.keys["fire"])).text
        ).datasets
        == []
    )
    # Selected facets are shown with a link that removes them.
    page = site.client.get("/search?keyword=防災&department=fire").text
    assert 'href="/search?department=fire"' in page and 'href="/search?keyword=%E9%98%B2%E7%81%BD"' in page


def test_home_shows_counts_newest_most_used_and_departments(site: Site) -> None:
    # Usage: three reads of the toilets, one of the budget, counted once flushed.
    for _ in range(3):
        assert site.client.get("/api/v1/datasets/public-toilet/records").status_code == 200
    assert site.client.get(f"/api/v1/datasets/{NO_LOCATION_ID}/records").status_code == 200
    site.client.get("/api/v1/usage")  # flushes the counters
    for who, headers in (("anonymous", {}), ("digital", cookie(site.keys["digital"]))):
        listing = site.client.get(
            "/api/v1/datasets", headers=bearer(site.keys[who]) if headers else {}
        ).json()
        home = site.client.get("/", headers=headers)
        assert home.status_code == 200
        assert re.search(r"<strong data-count>(\d+)</strong>", home.text).group(1) == str(listing["count"])  # type: ignore[union-attr]
        popular = home.text.split('id="popular-heading"')[1].split("</section>")[0]
        assert popular.index("公衆トイレ") < popular.index("予算事業一覧")
        assert "利用回数 3" in popular and "利用回数 1" in popular
        departments = Counter(d["department"]["id"] for d in listing["datasets"])
        for department_id, n in departments.items():
            shown = re.search(
                rf'href="/search\?department={department_id}">[^<]+</a> <span class="count">\((\d+)\)',
                home.text,
            )
            assert shown is not None and int(shown.group(1)) == n, department_id
        assert (INTERNAL in home.text) == (who == "digital")
        assert not any(text in home.text for text in PERSONAL_TEXTS)
    assert 'action="/search"' in home.text and '<label for="home-q">' in home.text


def test_english_pages_are_english(site: Site) -> None:
    for path in ("/en/", "/en/search", "/en/search?q=AED", "/en/login"):
        page = site.client.get(path)
        parsed = parse(page.text)
        assert page.status_code == 200 and parsed.html_lang == "en", path
        assert page.headers["content-language"] == "en"
        assert not re.search(r"[\u3040-\u30ff]", parsed.h1), (path, parsed.h1)
        switch = re.search(r'class="lang-switch" href="([^"]+)" hreflang="ja"', page.text)
        assert switch is not None and switch.group(1) == (path.removeprefix("/en") or "/"), path
    search = site.client.get("/en/search?q=AED").text
    assert "AED locations" in search or "Automated External Defibrillator" in search
    assert "Search datasets" in search and "CC BY 4.0" in search
    ja = site.client.get("/search?q=AED")
    assert parse(ja.text).html_lang == "ja" and 'href="/en/search?q=AED"' in ja.text
    assert "「国土数値情報（行政区域データ）」（国土交通省）を加工して作成" in ja.text


def test_over_a_cap_is_a_400_page_at_once(site: Site) -> None:
    cases: list[list[tuple[str, str]]] = [
        [("q", "避難" * 101)],
        [("keyword", f"k{i}") for i in range(21)],
        [("page", "0")],
        [("page", "9" * 10_000)],
    ]
    for params in cases:
        started = time.perf_counter()
        page = site.client.get("/en/search?" + urlencode(params))
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
        assert time.perf_counter() - started < 5.0  # refused before any work, even on a busy machine
        assert 'role="alert"' in page.text and parse(page.text).html_lang == "en"
    # At exactly the cap, a search is answered.
    assert site.client.get("/search", params={"q": "避" * 200}).status_code == 200


def _login(site: Site, key: str, *, path: str = "/login", **headers: str) -> Any:
    return site.client.post(path, data={"key": key}, headers=headers, follow_redirects=False)


def test_login_sets_a_strict_http_only_cookie_and_logout_clears_it(site: Site) -> None:
    answer = _login(site, site.keys["digital"], origin="http://testserver")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    set_cookie = answer.headers["set-cookie"]
    assert set_cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in set_cookie
    assert "SameSite=strict" in set_cookie or "SameSite=Strict" in set_cookie
    assert "Path=/" in set_cookie and "Secure" not in set_cookie
    home = site.client.get("/", headers=cookie(site.keys["digital"]))
    assert "digital" in home.text and 'action="/logout"' in home.text and INTERNAL in home.text
    assert home.headers["cache-control"] == "private, no-store"
    out = site.client.post("/logout", headers={"Referer": "http://testserver/", **cookie(site.keys["digital"])},
                           follow_redirects=False)  # fmt: skip
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    en = _login(site, site.keys["planning"], path="/en/login", referer="http://testserver/en/login")
    assert en.status_code == 303 and en.headers["location"] == "/en/"
    with TestClient(site.client.app, base_url="https://testserver") as secure:
        answer = secure.post("/login", data={"key": site.keys["fire"]}, follow_redirects=False)
        assert answer.status_code == 303 and "Secure" in answer.headers["set-cookie"]


def test_a_refused_login_is_the_page_again_with_the_reason(site: Site) -> None:
    bad = _login(site, "cos_0000abcd_not-a-real-secret")
    assert bad.status_code == 403 and bad.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in bad.headers and "認証情報が正しくないか" in bad.text
    bad_en = _login(site, "", path="/en/login")
    assert "The credential is wrong" in bad_en.text and parse(bad_en.text).html_lang == "en"
    developer = _login(site, site.keys["developer"])
    assert developer.status_code == 403 and "部局のものではありません" in developer.text
    cross = _login(site, site.keys["digital"], origin="https://evil.example")
    assert cross.status_code == 403 and "set-cookie" not in cross.headers and "このサイト以外" in cross.text
    cross = _login(site, site.keys["digital"], referer="https://evil.example/form")
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    crowded = site.client.post("/login", content="&".join(f"f{i}=x" for i in range(50)),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert crowded.status_code == 403 and "認証情報が正しくないか" in crowded.text
    logout = site.client.post("/logout", headers={"Origin": "null"}, follow_redirects=False)
    assert logout.status_code == 403


def test_refused_logins_count_against_the_address(site: Site) -> None:
    statuses = [_login(site, f"cos_0000abcd_guess{i}").status_code for i in range(ANONYMOUS_LIMIT + 1)]
    assert statuses[:ANONYMOUS_LIMIT] == [403] * ANONYMOUS_LIMIT and statuses[-1] == 429
    # Signed in, the guesses are still charged to the address (spent by now), not to the key's
    # larger allowance: the page says so in the visitor's language.
    signed_in = _login(site, "cos_0000abcd_guess", path="/en/login", **cookie(site.keys["fire"]))
    assert signed_in.status_code == 429 and "Too many attempts" in signed_in.text
    assert site.client.get("/en/search", headers=cookie(site.keys["fire"])).status_code == 200


def test_the_cookie_reads_like_a_bearer_key_and_the_header_wins(site: Site) -> None:
    digital = site.keys["digital"]
    listed = site.client.get("/api/v1/datasets", headers=cookie(digital)).json()["datasets"]
    assert INTERNAL in [d["id"] for d in listed]
    both = {**cookie(digital), **bearer(site.keys["fire"])}
    assert INTERNAL not in [
        d["id"] for d in site.client.get("/api/v1/datasets", headers=both).json()["datasets"]
    ]
    # A refused header key is still the API's 401, whatever the cookie.
    refused = site.client.get("/api/v1/datasets", headers={**cookie(digital), **bearer("cos_0000abcd_x")})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_api_key"
    # A cookie whose credential was revoked: the visitor goes on anonymously and the cookie is dropped.
    with session_factory(site.engine)() as session, session.begin():
        assert revoke_key(session, digital.split("_")[0] + "_" + digital.split("_")[1], actor="admin:test")
    page = site.client.get("/search", headers=cookie(digital))
    assert page.status_code == 200 and INTERNAL not in page.text
    assert "Max-Age=0" in page.headers["set-cookie"]
