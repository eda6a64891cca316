"""Links that point where the request came in (page cache included), and CKAN's own error shapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI

from services.publish import ckan
from services.publish.page_cache import PageCache
from services.publish.responses import CKAN_RESULTS
from tests.support.publish_catalog import BASE_URL, RECORDS, Catalog, open_catalog


@pytest.fixture()
def unconfigured(tmp_path: Path) -> Iterator[Catalog]:
    """The publish app with no public base URL configured: links follow each request."""
    with open_catalog(tmp_path, public_base_url="") as filled:
        yield filled


def _frozen_pages(catalog: Catalog) -> PageCache:
    app = catalog.client.app
    assert isinstance(app, FastAPI)
    pages = app.state.page_cache
    assert isinstance(pages, PageCache) and pages.enabled
    pages.clock = lambda: 1_000.0  # nothing expires during the test
    return pages


def test_links_follow_the_host_and_a_cached_page_never_crosses_hosts(unconfigured: Catalog) -> None:
    pages = _frozen_pages(unconfigured)
    url = RECORDS.format("aed")
    for _ in range(2):  # the second round is answered from the cache
        for host in ("127.0.0.1:18080", "opendata.example.jp"):
            page = unconfigured.client.get(url, params={"limit": 5}, headers={"Host": host})
            assert page.status_code == 200
            assert urlsplit(page.json()["next"]).netloc == host
            assert host in page.headers["link"]
    assert len(pages) == 2
    listing = unconfigured.client.get("/api/v1/datasets", headers={"Host": "127.0.0.1:18080"}).json()
    assert all(d["links"]["self"].startswith("http://127.0.0.1:18080/") for d in listing["datasets"])


def test_a_configured_base_wins_over_the_host(catalog: Catalog) -> None:
    page = catalog.client.get(RECORDS.format("aed"), params={"limit": 5}, headers={"Host": "elsewhere:1"})
    assert page.json()["next"].startswith(BASE_URL + "/")
    status = catalog.client.get("/api/3/action/status_show").json()
    assert status["result"]["site_url"] == BASE_URL


def test_ckan_errors_keep_the_whole_type_and_ckans_message_prefix(catalog: Catalog) -> None:
    missing = catalog.client.get("/api/3/action/package_show", params={"id": "no-such-dataset"})
    assert missing.status_code == 404
    body = missing.json()
    assert body["success"] is False
    assert body["error"] == {"__type": "Not Found Error", "message": "Not found: Dataset not found"}
    unknown = catalog.client.get("/api/3/action/no_such_action")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "__type": "Bad request",
        "message": "Bad request: Action name not known: no_such_action",
    }
    invalid = catalog.client.get("/api/3/action/package_search", params={"rows": "many"}).json()
    assert invalid["error"] == {"__type": "Validation Error", "rows": ["Invalid integer"]}


def test_every_help_link_resolves_to_the_actions_documentation(catalog: Catalog) -> None:
    for name in CKAN_RESULTS:
        envelope = catalog.client.get(f"/api/3/action/{name}", params={"id": "aed"}).json()
        help_url: str = envelope["help"]
        assert help_url.startswith(f"{BASE_URL}/api/3/action/help_show?name=")
        answer = catalog.client.get(help_url.removeprefix(BASE_URL))
        assert answer.status_code == 200, name
        assert answer.json()["result"] == ckan.ACTION_HELP[name]
    unknown = catalog.client.get("/api/3/action/help_show", params={"name": "package_create"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["__type"] == "Not Found Error"
    # The envelope of an unknown action links to help as well, which answers CKAN's Not Found.
    assert catalog.client.get("/api/3/action/nope").json()["help"].endswith("help_show?name=nope")


def test_datastore_search_takes_the_dataset_id_as_well_as_a_resource_id(catalog: Catalog) -> None:
    totals = {}
    for rid in ("aed", "aed.csv", "aed.geojson"):
        answer = catalog.client.get("/api/3/action/datastore_search", params={"resource_id": rid, "limit": 2})
        assert answer.status_code == 200, rid
        result = answer.json()["result"]
        assert result["resource_id"] == rid
        totals[rid] = result["total"]
        following = catalog.client.get(result["_links"]["next"]).json()["result"]
        assert following["offset"] == 2
    assert set(totals.values()) == {12}
    for hidden in ("copier-usage", "copier-usage.csv", "no-such", ""):
        refused = catalog.client.get("/api/3/action/datastore_search", params={"resource_id": hidden})
        assert refused.status_code == 404, hidden
        assert refused.json()["error"]["__type"] == "Not Found Error"
