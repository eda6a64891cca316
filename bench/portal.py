"""bench/portal: the portal's dataset page and the OGC API's items, each against the records API.

In one run, on a SQLite file catalog holding ``--records`` (default 2,000) public-toilet records,
with one ``cityos serve publish`` process (page cache off: ``CITYOS_PUBLISH_PAGE_CACHE_TTL_S=0``):

  page  — the dataset page ``/datasets/public-toilet?<query>`` (Japanese HTML: metadata, schema,
          usage, a table of the query's records, snippets) against the records API's JSON page
          ``/api/v1/datasets/public-toilet/records?<query>`` for the very same query string: paging,
          equality / range filters, ``q``, ``bbox``, ``sort``. Server time per request, one client
          on a keep-alive connection, the two asked one after the other for each query (which one
          first alternates); medians over ``--rounds`` passes. Every record key of the JSON page must
          appear in the page (checked on every ``--sample``-th query). Goal: the page's median time
          ≤ 2× the JSON page's.
  ogc   — ``/ogc/collections/public-toilet/items?<query>`` against the records API's GeoJSON
          (``format=geojson``) for the same bbox, property equality, limit and offset. Throughput of
          ``--clients`` keep-alive clients in ``--pairs`` pairs of ``--seconds`` slices, the two
          back to back in each pair (which one first alternates); the median of the pairs' ratios.
          On every ``--sample``-th query the features of both answers are compared byte for byte (the
          bytes between ``"features":[`` and the end of the array: the envelopes differ by design)
          and ``numberMatched`` with ``X-Total-Count``. Goal: OGC ≥ 0.8× the records API.

Every query string is distinct (``--requests`` of each kind), so no answer comes from a cache.
Exits 2 when bodies differ, 1 when a goal is missed.

    .venv/bin/python -m bench.portal [--records 2000] [--requests 600] [--rounds 3] [--pairs 12]
                                     [--seconds 2] [--clients 4] [--sample 10]
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench._catalog_fixture import DATASET, WARDS, fill, process
from bench.ingest import machine
from bench.publish import distinct_queries, publish_env
from tests.support.stack import free_port

PAGE_GOAL = 2.0  # the dataset page's median time at most this many times the JSON page's
OGC_GOAL = 0.8  # OGC items' throughput at least this share of the records API's
PAGE_PATH = f"/datasets/{DATASET}"
RECORDS_PATH = f"/api/v1/datasets/{DATASET}/records"
ITEMS_PATH = f"/ogc/collections/{DATASET}/items"
FEATURES_HEAD = b'{"type":"FeatureCollection","features":['


# --- the workloads --------------------------------------------------------------------------------


def _box(rng: random.Random, size: float) -> str:
    lon, lat = round(rng.uniform(130.70, 131.05), 4), round(rng.uniform(33.80, 33.98), 4)
    return f"{lon},{lat},{lon + size:.4f},{lat + size:.4f}"


def _page_query(rng: random.Random, kind: str, records: int) -> list[tuple[str, str]]:
    """One dataset-page query (the page shows at most 100 records)."""
    limit = rng.choice((10, 20, 50, 100))
    paging = [("limit", str(limit)), ("offset", str(rng.randrange(0, max(1, records - limit))))]
    if kind == "eq":
        return [
            ("男性トイレ総数", str(rng.randrange(5))),
            ("limit", "20"),
            ("offset", str(rng.randrange(300))),
        ]
    if kind == "range":
        return [
            ("女性トイレ総数[gte]", str(rng.randrange(4))),
            ("limit", "20"),
            ("offset", str(rng.randrange(500))),
        ]
    if kind == "q":
        return [("q", f"{rng.choice(WARDS)}公衆トイレ{rng.randrange(10, records)}"), ("limit", "20")]
    if kind == "bbox":
        return [("bbox", _box(rng, 0.03)), ("limit", "50")]
    if kind == "sort":
        return [
            ("sort", rng.choice(("-男性トイレ総数", "名称"))),
            ("limit", "20"),
            ("offset", str(rng.randrange(500))),
        ]
    return paging


def _items_query(rng: random.Random, kind: str, records: int) -> list[tuple[str, str]]:
    """One query both the OGC items and the records API read the same way."""
    limit = rng.choice((10, 20, 50, 100))
    if kind == "bbox":
        return [("bbox", _box(rng, rng.choice((0.02, 0.04, 0.08)))), ("limit", str(limit))]
    if kind == "eq":
        return [
            ("男性トイレ総数", str(rng.randrange(5))),
            ("limit", str(limit)),
            ("offset", str(rng.randrange(300))),
        ]
    if kind == "eq+bbox":
        return [("女性トイレ総数", str(rng.randrange(4))), ("bbox", _box(rng, 0.08)), ("limit", str(limit))]
    return [("limit", str(limit)), ("offset", str(rng.randrange(0, max(1, records - limit))))]


PAGE_KINDS = {"page": 4, "eq": 2, "range": 1, "q": 1, "bbox": 2, "sort": 1}
ITEMS_KINDS = {"page": 3, "bbox": 3, "eq": 2, "eq+bbox": 2}


# --- requests -------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    seconds: float


class Client:
    """One keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> Answer:
        began = time.perf_counter()
        self.connection.request("GET", path)
        response = self.connection.getresponse()
        body = response.read()
        seconds = time.perf_counter() - began
        return Answer(response.status, body, {k.lower(): v for k, v in response.getheaders()}, seconds)


def _ok(answer: Answer, path: str) -> Answer:
    if answer.status != 200:
        raise RuntimeError(f"{path}: HTTP {answer.status}: {answer.body[:300]!r}")
    return answer


# --- (a) the dataset page against the JSON page ---------------------------------------------------


def check_page(client: Client, query: str) -> str | None:
    """Why the page does not show the JSON page's records, or None."""
    page = _ok(client.get(f"{PAGE_PATH}?{query}"), query).body.decode()
    records = orjson.loads(_ok(client.get(f"{RECORDS_PATH}?{query}"), query).body)["records"]
    missing = [r["ID"] for r in records if f">{r['ID']}<" not in page]
    return f"{query}: the page lacks {missing[:3]}" if missing else None


def page_times(port: int, queries: Sequence[str], rounds: int) -> tuple[list[float], list[float]]:
    """(page seconds, JSON seconds) of every query in every round, asked back to back."""
    client = Client(port)
    pages: list[float] = []
    jsons: list[float] = []
    for round_number in range(rounds):
        for index, query in enumerate(queries):
            pair = [(pages, f"{PAGE_PATH}?{query}"), (jsons, f"{RECORDS_PATH}?{query}")]
            if (index + round_number) % 2:
                pair.reverse()
            for into, path in pair:
                into.append(_ok(client.get(path), path).seconds)
    return pages, jsons


# --- (b) OGC items against the records API's GeoJSON ----------------------------------------------


def _features(body: bytes, *, ogc: bool) -> bytes:
    if not body.startswith(FEATURES_HEAD):
        raise RuntimeError(f"not a FeatureCollection: {body[:80]!r}")
    end = body.rindex(b'],"numberMatched":') if ogc else len(body) - 2
    return body[len(FEATURES_HEAD) : end]


def check_items(client: Client, query: str) -> str | None:
    """Why the OGC answer differs from the records API's for ``query``, or None."""
    ogc = _ok(client.get(f"{ITEMS_PATH}?{query}"), query)
    records = _ok(client.get(f"{RECORDS_PATH}?format=geojson&{query}"), query)
    if _features(ogc.body, ogc=True) != _features(records.body, ogc=False):
        return f"{query}: features differ"
    matched = orjson.loads(ogc.body)["numberMatched"]
    if str(matched) != records.headers["x-total-count"]:
        return f"{query}: numberMatched {matched} but X-Total-Count {records.headers['x-total-count']}"
    return None


@dataclass
class Run:
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def load(port: int, paths: Sequence[str], *, seconds: float, clients: int, into: Run) -> None:
    """Keep-alive clients in threads for ``seconds``, each walking ``paths`` from its own start."""
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    done: list[float] = []
    problems: list[str] = []

    def client(start: int) -> None:
        own = Client(port)
        times: list[float] = []
        n = start
        while time.monotonic() < stop_at:
            path = paths[n % len(paths)]
            n += 1
            answer = own.get(path)
            if answer.status != 200:
                problems.append(f"{path}: HTTP {answer.status}")
                break
            times.append(answer.seconds)
        with lock:
            done.extend(times)

    threads = [threading.Thread(target=client, args=(i * len(paths) // clients,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if problems:
        raise RuntimeError(problems[0])
    into.rates.append(len(done) / (time.perf_counter() - began))
    into.latencies.extend(done)


def _ms(values: Sequence[float], cut: int) -> float:
    return statistics.quantiles(values, n=100)[cut - 1] * 1000


def measure(args: argparse.Namespace, folder: Path, url: str) -> int:
    page_queries = distinct_queries(args.requests, args.records, PAGE_KINDS, _page_query, seed=21)
    item_queries = distinct_queries(args.requests, args.records, ITEMS_KINDS, _items_query, seed=22)
    port = free_port()
    serve = [sys.executable, "-m", "cityos", "serve", "publish"]
    with process(serve, publish_env(url, port, 1), port, folder / "publish.log"):
        checker = Client(port)
        differing = [p for q in page_queries[:: args.sample] if (p := check_page(checker, q))]
        differing += [p for q in item_queries[:: args.sample] if (p := check_items(checker, q))]
        if differing:
            print(f"{len(differing)} sampled answers differ, e.g. {differing[0]}")
            return 2
        ogc_paths = [f"{ITEMS_PATH}?{q}" for q in item_queries]
        records_paths = [f"{RECORDS_PATH}?format=geojson&{q}" for q in item_queries]
        # Warm-up: every statement shape is built once, every template compiled.
        page_times(port, page_queries[:50], 1)
        for paths in (ogc_paths, records_paths):
            load(port, paths, seconds=1, clients=args.clients, into=Run())
        pages, jsons = page_times(port, page_queries, args.rounds)
        runs = {"ogc items": Run(), "records geojson": Run()}
        # Short slices, the two back to back (which one first alternates): a machine whose load
        # moves within seconds weighs on both sides of a pair alike; the goal is judged on the
        # median of the pairs' ratios.
        for pair in range(args.pairs):
            order = [("ogc items", ogc_paths), ("records geojson", records_paths)]
            for name, paths in order if pair % 2 == 0 else order[::-1]:
                load(port, paths, seconds=args.seconds, clients=args.clients, into=runs[name])
    return report(args, pages, jsons, runs)


def report(args: argparse.Namespace, pages: list[float], jsons: list[float], runs: dict[str, Run]) -> int:
    print(f"machine  {machine()}")
    print(f"catalog  {args.records:,} {DATASET} records (SQLite file), one publish process, page cache off; "
          f"bodies checked on every {args.sample}th query")  # fmt: skip
    page_ms, json_ms = statistics.median(pages) * 1000, statistics.median(jsons) * 1000
    page_ratio = page_ms / json_ms
    print(f"(a) dataset page vs JSON records page: {args.requests:,} distinct queries × {args.rounds} rounds, "
          "one keep-alive client, back to back")  # fmt: skip
    print(f"  page      : median {page_ms:6.2f} ms   p90 {_ms(pages, 90):6.2f} ms")
    print(f"  JSON page : median {json_ms:6.2f} ms   p90 {_ms(jsons, 90):6.2f} ms")
    page_met = page_ratio <= PAGE_GOAL
    print(
        f"  page / JSON (medians): {page_ratio:.2f}   (goal ≤ {PAGE_GOAL:.1f}: {'met' if page_met else 'MISSED'})"
    )
    print(f"(b) OGC items vs records API GeoJSON: {args.requests:,} distinct queries, {args.clients} clients, "
          f"{args.pairs} pairs of {args.seconds:g} s slices back to back")  # fmt: skip
    for name, run in runs.items():
        print(f"  {name:15s}: {statistics.median(run.rates):7,.0f} req/s (median of slices)   "
              f"p50 {_ms(run.latencies, 50):6.2f} ms   p99 {_ms(run.latencies, 99):6.2f} ms")  # fmt: skip
    ratios = [o / r for o, r in zip(runs["ogc items"].rates, runs["records geojson"].rates, strict=True)]
    ogc_ratio = statistics.median(ratios)
    ogc_met = ogc_ratio >= OGC_GOAL
    print(f"  OGC / records per pair: {' '.join(f'{r:.2f}' for r in ratios)}")
    print(f"  OGC / records (median of pairs): {ogc_ratio:.2f}   "
          f"(goal ≥ {OGC_GOAL:.1f}: {'met' if ogc_met else 'MISSED'})")  # fmt: skip
    return 0 if page_met and ogc_met else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=600, help="distinct queries of each kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=12, help="OGC/records pairs of throughput slices")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one throughput slice")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sample", type=int, default=10, help="check the bodies of every Nth query")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as folder:
        url = f"sqlite:///{Path(folder) / 'catalog.db'}"
        started = time.perf_counter()
        fill(url, args.records)
        print(f"filled {args.records:,} records in {time.perf_counter() - started:.1f} s (SQLite file)")
        sys.exit(measure(args, Path(folder), url))


if __name__ == "__main__":
    main()
