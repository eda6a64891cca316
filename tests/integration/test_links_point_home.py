"""A publish process on a non-default port, no public base URL configured: every link it hands out
-- datasets, records paging, CKAN resources and help, DCAT URIs -- answers 200 from that very stack."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlencode, urljoin

import httpx
from rdflib import Graph, URIRef

from cityos.kernel.kafka_access import KafkaAccess
from tests.support.publish import (
    SITES_ID,
    events,
    hidden_rows,
    kitakyushu_site_rows,
    load,
    schemas_with_sites,
    yaizu_aed_rows,
)
from tests.support.stack import Stack


class LinkWalker:
    """Follows links, each once, asserting it is ours and answers 200."""

    def __init__(self, client: httpx.Client, base: str) -> None:
        self.client = client
        self.base = base
        self.followed: dict[str, int] = {}

    def follow(self, url: str, **params: Any) -> httpx.Response:
        assert url.startswith(self.base + "/"), f"{url} does not point to this stack ({self.base})"
        answer = self.client.get(url, params=params or None)
        assert answer.status_code == 200, f"{url} answered {answer.status_code}: {answer.text[:300]}"
        self.followed[url] = answer.status_code
        return answer

    def follow_all(self, urls: Iterable[str]) -> None:
        for url in dict.fromkeys(urls):
            if url not in self.followed:
                self.follow(url)


def _walk_datasets(walker: LinkWalker) -> list[str]:
    listing = walker.follow(f"{walker.base}/api/v1").json()
    walker.follow_all(listing["links"].values())
    datasets = walker.follow(listing["links"]["datasets"]).json()["datasets"]
    for dataset in datasets:
        walker.follow_all(dataset["links"].values())
        detail = walker.follow(dataset["links"]["self"]).json()
        walker.follow_all(detail["links"].values())
    return [d["id"] for d in datasets]


def _walk_records(walker: LinkWalker, dataset_id: str) -> int:
    """Every ``next`` (offset paging, then cursor paging) to the end; returns the records seen."""
    records = f"{walker.base}/api/v1/datasets/{dataset_id}/records"
    seen, first_cursor = 0, None
    url: str | None = f"{records}?limit=50"
    while url is not None:
        page = walker.follow(url)
        body = page.json()
        seen += len(body["records"])
        first_cursor = first_cursor or body["next_cursor"]
        if body["next"] is not None:
            assert f"<{body['next']}>" in page.headers["link"]
        url = body["next"]
    assert first_cursor is not None
    cursor_seen = 50
    cursor_url: str | None = f"{records}?{urlencode({'limit': 50, 'cursor': first_cursor})}"
    while cursor_url is not None:
        body = walker.follow(cursor_url).json()
        cursor_seen += len(body["records"])
        cursor_url = body["next"]
    assert cursor_seen == seen
    return seen


def _walk_ckan(walker: LinkWalker, dataset_ids: list[str]) -> None:
    action = f"{walker.base}/api/3/action"
    status = walker.follow(f"{action}/status_show").json()
    walker.follow_all([status["help"], status["result"]["site_url"] + "/api/v1"])
    for name in dataset_ids:
        package = walker.follow(f"{action}/package_show", id=name).json()
        walker.follow_all([package["help"], package["result"]["url"]])
        for resource in package["result"]["resources"]:
            walker.follow(resource["url"])
            shown = walker.follow(f"{action}/resource_show", id=resource["id"]).json()
            assert shown["result"]["url"] == resource["url"]
            search = walker.follow(f"{action}/datastore_search", resource_id=resource["id"], limit=5).json()
            walker.follow(urljoin(walker.base, search["result"]["_links"]["next"]))
        by_dataset = walker.follow(f"{action}/datastore_search", resource_id=name, limit=1).json()
        assert by_dataset["result"]["total"] == search["result"]["total"]


def _walk_dcat(walker: LinkWalker, dataset_ids: list[str]) -> int:
    """Every http(s) URI of the catalog and of each dataset document that names this service."""
    graph = Graph()
    graph.parse(data=walker.follow(f"{walker.base}/catalog.ttl").text, format="turtle")
    for name in dataset_ids:
        graph.parse(data=walker.follow(f"{walker.base}/catalog/datasets/{name}.ttl").text, format="turtle")
    uris = {str(term) for triple in graph for term in triple if isinstance(term, URIRef)}
    authority = walker.base.split("://", 1)[1]
    # Nothing may point to another stack of this host (the old default was port 8000).
    assert not [u for u in uris if "127.0.0.1" in u and authority not in u]
    ours = sorted({urldefrag(u).url for u in uris if u.startswith(walker.base + "/")})
    walker.follow_all(ours)
    return len(ours)


def test_every_link_answers_from_a_stack_on_another_port(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    schemas_dir = schemas_with_sites(tmp_path)
    aed = yaizu_aed_rows(schemas_dir)
    sites = kitakyushu_site_rows()
    load(
        database_url, schemas_dir, events("aed", aed) + events(SITES_ID, sites, start=10_000) + hidden_rows()
    )
    # Only the publish process runs: it reads the catalog and never touches Kafka.
    stack = Stack(
        kafka=KafkaAccess("127.0.0.1:9", "nobody", "unused"),
        provision=False,
        database_url=database_url,
        log_dir=tmp_path,
        extra_env={"CITYOS_PUBLIC_BASE_URL": "", "CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE": "100000"},
    )
    assert stack.ports["publish"] != 8000
    stack.start("publish")
    try:
        base = stack.url("publish")
        with httpx.Client(timeout=30) as client:
            walker = LinkWalker(client, base)
            dataset_ids = _walk_datasets(walker)
            assert {"aed", SITES_ID} <= set(dataset_ids)
            assert not {"copier-usage", "resident-moves"} & set(dataset_ids)
            assert _walk_records(walker, "aed") == len(aed)
            assert _walk_records(walker, SITES_ID) == len(sites)
            _walk_ckan(walker, dataset_ids)
            dcat_uris = _walk_dcat(walker, dataset_ids)
        assert dcat_uris > 20
        assert len(walker.followed) > 100
    finally:
        stack.stop_all()
