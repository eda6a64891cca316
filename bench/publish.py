"""bench/publish: the open-data records API on a mixed workload, against the same SQL served bare.

In one run, on a SQLite file catalog holding ``--records`` (default 2,000 public-toilet records: a
large municipal dataset -- a city's toilets or AEDs number in the hundreds):

  publish   — ``cityos serve publish`` in its own process, the page cache off
              (``CITYOS_PUBLISH_PAGE_CACHE_TTL_S=0``), once with one worker process and once with two
              (``CITYOS_PUBLISH_WORKERS``);
  limit     — a bare Starlette app (same uvicorn settings, one process, no access log, as the
              service) whose handler runs the very
              SQL statements the service's read path runs for that URL (captured from the domain's
              own query builders) through the same driver and engine settings, in one read
              transaction as the service does, and serialises the answer with orjson (the csv
              module for CSV);
  database  — those statements alone, no HTTP: requests' worth of SQL per second on connections
              from the same engine, one thread per client.

The workload is ``--requests`` (default 1,200) distinct records URLs: offset and cursor pages,
equality / ``in`` / range filters, ``q`` text search, ``bbox`` and ``near``, ``sort``, ``fields``, as
JSON, CSV and GeoJSON. Every client walks the whole list from its own starting point on a keep-alive
connection. Before timing, every ``--sample``-th URL is fetched from each server and the bodies are
compared byte for byte (exit 2 on any difference). The servers are measured in alternating rounds
(machine noise weighs on all alike); requests/s are the medians of the rounds, p50/p99 pooled.
Exits 1 when publish (one process) is below 0.7x the limit.

    .venv/bin/python -m bench.publish [--records 2000] [--requests 1200] [--seconds 5] [--clients 8]
                                      [--rounds 3] [--sample 10]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import Engine, event

from bench._catalog_fixture import DATASET, fill, process
from bench.ingest import machine
from cityos.domain.readmodel import queries
from cityos.domain.readmodel.query import RecordQuery, encode_cursor, parse_query
from cityos.kernel.db.engine import make_engine, session_factory
from tests.support.stack import free_port

TARGET = 0.7
RECORDS_PATH = f"/api/v1/datasets/{DATASET}/records"
# Every server writes its links under this base, so the bodies of all of them are comparable.
PUBLIC_BASE = "https://opendata.bench.example"
LOCATION = ("緯度", "経度")
MEDIA = {"json": "application/json", "csv": "text/csv", "geojson": "application/geo+json"}


# --- the workload -------------------------------------------------------------------------------


def _paging(rng: random.Random, records: int) -> list[tuple[str, str]]:
    limit = rng.choice((10, 20, 50, 100))
    return [("limit", str(limit)), ("offset", str(rng.randrange(0, max(1, records - limit))))]


def _point(rng: random.Random) -> tuple[float, float]:
    return round(rng.uniform(130.72, 131.08), 4), round(rng.uniform(33.81, 33.99), 4)


def _request(rng: random.Random, kind: str, records: int) -> list[tuple[str, str]]:
    """One records query of ``kind``; the random parts make each URL distinct."""
    key = f"T{rng.randrange(records):07d}"
    if kind == "page":
        return _paging(rng, records)
    if kind == "cursor":
        return [("limit", str(rng.choice((20, 50, 100)))), ("cursor", encode_cursor(key))]
    if kind == "fields":
        return [
            ("fields", rng.choice(("ID,名称", "名称,緯度,経度", "ID,男性トイレ総数"))),
            *_paging(rng, records),
        ]
    if kind == "eq":
        return [
            ("男性トイレ総数", str(rng.randrange(5))),
            ("limit", "20"),
            ("offset", str(rng.randrange(2000))),
        ]
    if kind == "in":
        keys = sorted({f"T{rng.randrange(records):07d}" for _ in range(rng.randrange(2, 8))})
        return [("ID[in]", ",".join(keys))]
    if kind == "range":
        return [
            ("女性トイレ総数[gte]", str(rng.randrange(4))),
            ("limit", "20"),
            ("offset", str(rng.randrange(2000))),
        ]
    if kind == "q":
        return [("q", f"トイレ{rng.randrange(1000, records)}")]
    if kind == "bbox":
        lon, lat = _point(rng)
        return [("bbox", f"{lon},{lat},{lon + 0.02:.4f},{lat + 0.02:.4f}"), ("limit", "50")]
    if kind == "near":
        lon, lat = _point(rng)
        return [("near", f"{lon},{lat}"), ("distance", str(rng.randrange(200, 1500)))]
    if kind == "sort":
        return [("sort", rng.choice(("-男性トイレ総数", "名称", "-女性トイレ総数,名称"))), ("limit", "20"),
                ("offset", str(rng.randrange(500)))]  # fmt: skip
    if kind == "csv":
        return [("format", "csv"), *_paging(rng, records)]
    lon, lat = _point(rng)  # geojson
    return [("format", "geojson"), ("bbox", f"{lon},{lat},{lon + 0.03:.4f},{lat + 0.03:.4f}")]


# How often each kind comes up: paging and light filters dominate real API traffic; whole-dataset
# scans (text search, sort on a JSON field, counts of a filter) are a minority but present.
KINDS = {"page": 4, "cursor": 4, "fields": 2, "csv": 2, "geojson": 2, "bbox": 2, "near": 2, "in": 2,
         "eq": 1, "range": 1, "q": 1, "sort": 1}  # fmt: skip


QueryMaker = Callable[[random.Random, str, int], list[tuple[str, str]]]


def distinct_queries(
    count: int, records: int, kinds: dict[str, int], make: QueryMaker, seed: int
) -> list[str]:
    """``count`` distinct query strings (percent-encoded, as clients send them), the kinds drawn in
    turn by weight: every bench request is one a cache has not seen."""
    rng = random.Random(seed)
    names = [kind for kind, weight in kinds.items() for _ in range(weight)]
    seen: dict[str, None] = {}
    while len(seen) < count:
        params = make(rng, names[len(seen) % len(names)], records)
        seen[urlencode(params, quote_via=quote)] = None
    return list(seen)


def workload(count: int, records: int, seed: int = 14) -> list[str]:
    """The records endpoint's mixed workload: ``count`` distinct query strings."""
    return distinct_queries(count, records, KINDS, _request, seed)


# --- the same SQL, captured from the domain's query builders -------------------------------------


@dataclass
class Plan:
    """What the limit needs to answer one URL: the statements, and how to render their rows."""

    statements: list[tuple[str, list[Any]]]
    counted: bool  # the second statement is a COUNT; otherwise the total is the dataset row's count
    record_count_at: int  # column of ``record_count`` in the dataset row
    format: str
    limit: int
    offset: int
    cursor: str | None
    keyset: bool
    fields: list[str] | None
    params: list[tuple[str, str]]


def _read_paging(query_string: str) -> tuple[str, int, int, str | None, list[tuple[str, str]]]:
    from starlette.requests import Request

    from services.publish.records_api import read_paging

    request = Request({"type": "http", "query_string": query_string.encode(), "headers": []})
    paging = read_paging(request)
    return (
        paging.format or "json",
        paging.limit,
        paging.offset,
        paging.cursor,
        request.query_params.multi_items(),
    )


def capture_plans(engine: Engine, query_strings: Sequence[str]) -> dict[str, Plan]:
    """The statements (SQL text and parameters as the driver receives them) of each URL's read."""
    executed: list[tuple[str, list[Any], list[str]]] = []

    def record(_conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if not statement.startswith("BEGIN"):  # run_statements opens the same read transaction
            executed.append((statement, list(parameters), [column[0] for column in cursor.description or ()]))

    event.listen(engine, "after_cursor_execute", record)
    plans: dict[str, Plan] = {}
    make_session = session_factory(engine)
    try:
        for query_string in query_strings:
            fmt, limit, offset, cursor, params = _read_paging(query_string)
            executed.clear()
            with make_session() as session:
                dataset = queries.get_dataset(session, dataset_id=DATASET)
                assert dataset is not None
                schema = queries.latest_schema(session, dataset_id=DATASET)
                parsed = parse_query(params, schema.document if schema else None, has_location=True)
                assert isinstance(parsed, RecordQuery), (query_string, parsed)
                del executed[1:]  # the schema comes from the service's cache, not from each request
                counted = _filtered(parsed)
                if counted:
                    queries.count_records(session, dataset_id=DATASET, query=parsed)
                queries.query_records(
                    session, dataset_id=DATASET, query=parsed, limit=limit + 1, offset=0 if cursor else offset
                )
            plans[query_string] = Plan(
                statements=[(sql, values) for sql, values, _ in executed], counted=counted,
                record_count_at=executed[0][2].index("datasets_record_count"), format=fmt, limit=limit,
                offset=offset, cursor=cursor, keyset=parsed.keyset,
                fields=list(parsed.fields) if parsed.fields is not None else None, params=params,
            )  # fmt: skip
    finally:
        event.remove(engine, "after_cursor_execute", record)
    return plans


def _filtered(parsed: RecordQuery) -> bool:
    return bool(parsed.conditions or parsed.text is not None or parsed.bbox or parsed.near)


def run_statements(connection: Any, plan: Plan) -> list[list[Any]]:
    """One request's SQL in one read transaction, as the service's session runs it."""
    cursor = connection.cursor()
    cursor.execute("BEGIN DEFERRED")
    try:
        return [cursor.execute(sql, values).fetchall() for sql, values in plan.statements]
    finally:
        cursor.execute("ROLLBACK")
        cursor.close()


# --- the limit: a bare Starlette handler ----------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()


def _next_url(plan: Plan, returned: int, total: int, next_cursor: str | None) -> str | None:
    base = f"{PUBLIC_BASE}{RECORDS_PATH}"
    if plan.cursor is not None:
        if next_cursor is None:
            return None
        kept = [(k, v) for k, v in plan.params if k != "cursor"]
        return f"{base}?{urlencode([*kept, ('cursor', next_cursor)], quote_via=quote)}"
    following = plan.offset + returned
    if returned == 0 or following >= total:
        return None
    kept = [(k, v) for k, v in plan.params if k not in ("limit", "offset")]
    return f"{base}?{urlencode([*kept, ('limit', str(plan.limit)), ('offset', str(following))], quote_via=quote)}"


def render_bare(plan: Plan, results: list[list[Any]], columns: Sequence[str]) -> bytes:
    """The body the records endpoint answers for these rows."""
    rows = results[-1]
    records, more = rows[: plan.limit], len(rows) > plan.limit
    total = results[1][0][0] if plan.counted else results[0][0][plan.record_count_at]
    shown = plan.fields

    def data(raw: str) -> Any:
        whole = orjson.loads(raw)
        return whole if shown is None else {name: whole[name] for name in shown if name in whole}

    if plan.format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        names = shown if shown is not None else columns
        writer.writerow(names)
        for row in records:
            values = data(row[1])
            writer.writerow([_cell(values.get(name)) for name in names])
        return buffer.getvalue().encode()
    if plan.format == "geojson":
        features = [
            {"type": "Feature", "id": key, "properties": orjson.Fragment(raw) if shown is None else data(raw),
             "geometry": {"type": "Point", "coordinates": [lon, lat]}}
            for key, raw, lat, lon in records
        ]  # fmt: skip
        return orjson.dumps({"type": "FeatureCollection", "features": features})
    next_cursor = encode_cursor(records[-1][0]) if more and plan.keyset and records else None
    return orjson.dumps({
        "dataset": DATASET, "total": total, "limit": plan.limit, "offset": plan.offset,
        "records": [orjson.Fragment(row[1]) if shown is None else data(row[1]) for row in records],
        "next": _next_url(plan, len(records), total, next_cursor), "next_cursor": next_cursor,
    })  # fmt: skip


def serve_bare(database_url: str, plans_file: str, port: int) -> None:
    """The limit, in its own process: Starlette, the captured SQL, orjson."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    plans = {qs: Plan(**raw) for qs, raw in orjson.loads(Path(plans_file).read_bytes()).items()}
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        schema = queries.latest_schema(session, dataset_id=DATASET)
        properties = schema.document.get("properties", {}) if schema is not None else {}
    columns = list(properties)

    def records(request: Request) -> Response:  # a plain function: Starlette runs it in its thread pool
        plan = plans[request.scope["query_string"].decode()]
        connection = engine.raw_connection()
        try:
            results = run_statements(connection, plan)
        finally:
            connection.close()
        return Response(render_bare(plan, results, columns), media_type=MEDIA[plan.format])

    async def healthz(_: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    app = Starlette(routes=[Route(RECORDS_PATH, records), Route("/healthz", healthz)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Run:
    """Requests timed against one server: requests/s of each round, latencies pooled."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> tuple[float, float, float]:
        """(median requests/s, p50 ms, p99 ms)."""
        cuts = statistics.quantiles(self.latencies, n=100)
        return statistics.median(self.rates), cuts[49] * 1000, cuts[98] * 1000


def load(port: int, paths: Sequence[str], *, seconds: float, clients: int, into: Run) -> None:
    """Keep-alive clients in threads for ``seconds``, each walking ``paths`` from its own start."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    problems: list[str] = []

    def client(start: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        own: list[float] = []
        n = start
        while time.monotonic() < stop_at:
            path = paths[n % len(paths)]
            n += 1
            began = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            own.append(time.perf_counter() - began)
            if response.status != 200:
                problems.append(f"{path}: HTTP {response.status}")
                break
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=client, args=(i * len(paths) // clients,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if problems:
        raise RuntimeError(problems[0])
    into.rates.append(len(latencies) / (time.perf_counter() - began))
    into.latencies.extend(latencies)


def database_rate(engine: Engine, plans: Sequence[Plan], *, seconds: float, threads: int) -> float:
    """Requests' worth of SQL per second, no HTTP: each thread on its own pooled connection."""
    done = [0] * threads
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        connection = engine.raw_connection()
        n = index * len(plans) // threads
        try:
            while time.monotonic() < stop_at:
                run_statements(connection, plans[n % len(plans)])
                n += 1
                done[index] += 1
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    began = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return sum(done) / (time.perf_counter() - began)


def fetch(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {body[:300]!r}")
    return body


def compare(ports: dict[str, int], paths: Sequence[str], every: int) -> list[str]:
    """Paths whose bodies differ between the servers (the first one is the reference)."""
    reference, *others = ports
    differing = []
    for path in paths[::every]:
        expected = fetch(ports[reference], path)
        for name in others:
            if fetch(ports[name], path) != expected:
                differing.append(f"{name}: {path}")
    return differing


def publish_env(url: str, port: int, workers: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "CITYOS_DATABASE_URL": url, "CITYOS_PUBLISH_PORT": str(port), "CITYOS_PUBLIC_BASE_URL": PUBLIC_BASE,
        "CITYOS_PUBLISH_PAGE_CACHE_TTL_S": "0", "CITYOS_PUBLISH_WORKERS": str(workers),
        # The bench measures throughput, not the limiter's refusals.
        "CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE": "100000000",
    })  # fmt: skip
    return env


def measure(args: argparse.Namespace, folder: Path, url: str) -> int:
    paths = [f"{RECORDS_PATH}?{qs}" for qs in workload(args.requests, args.records)]
    engine = make_engine(url)
    plans = capture_plans(engine, [p.split("?", 1)[1] for p in paths])
    plans_file = folder / "plans.json"
    plans_file.write_bytes(orjson.dumps({qs: plan.__dict__ for qs, plan in plans.items()}))
    ports = {"publish ×1": free_port(), "publish ×2": free_port(), "bare (limit)": free_port()}
    bare = [
        sys.executable,
        "-m",
        "bench.publish",
        "--serve-bare",
        url,
        str(plans_file),
        str(ports["bare (limit)"]),
    ]
    serve = [sys.executable, "-m", "cityos", "serve", "publish"]
    with (
        process(serve, publish_env(url, ports["publish ×1"], 1), ports["publish ×1"], folder / "p1.log"),
        process(serve, publish_env(url, ports["publish ×2"], 2), ports["publish ×2"], folder / "p2.log"),
        process(bare, dict(os.environ), ports["bare (limit)"], folder / "bare.log"),
    ):
        differing = compare({"bare (limit)": ports["bare (limit)"], **ports}, paths, args.sample)
        if differing:
            print(f"bodies differ from the limit's on {len(differing)} sampled URLs, e.g. {differing[0]}")
            return 2
        runs = {name: Run() for name in ports}
        for port in ports.values():  # warm-up: every process builds its statements once per query shape
            load(port, paths, seconds=2, clients=args.clients, into=Run())
        database: list[float] = []
        for _ in range(args.rounds):
            for name, port in ports.items():
                load(port, paths, seconds=args.seconds, clients=args.clients, into=runs[name])
            database.append(
                database_rate(engine, list(plans.values()), seconds=args.seconds, threads=args.clients)
            )
    engine.dispose()
    return report(args, runs, statistics.median(database))


def report(args: argparse.Namespace, runs: dict[str, Run], database: float) -> int:
    rounds = f"{args.rounds} alternating round{'s' if args.rounds > 1 else ''} of {args.seconds:.0f} s"
    print(f"machine  {machine()}")
    print(f"workload {args.requests:,} distinct records URLs over {args.records:,} records, bodies equal on "
          f"every {args.sample}th; {args.clients} keep-alive clients, {rounds}; page cache off")  # fmt: skip
    summaries = {name: run.summary() for name, run in runs.items()}
    for name, (rate, p50, p99) in summaries.items():
        print(f"  {name:13s}: {rate:8,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:7.2f} ms")
    print(
        f"  {'database':13s}: {database:8,.0f} req/s   (the same SQL alone, no HTTP, {args.clients} threads)"
    )
    limit = summaries["bare (limit)"][0]
    ratio = summaries["publish ×1"][0] / limit
    print(f"  limit / database  : {limit / database:.2f}")
    print(f"  publish ×2 / ×1   : {summaries['publish ×2'][0] / summaries['publish ×1'][0]:.2f}")
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"  ratio publish ×1 / limit (medians): {ratio:.2f}   (target ≥ {TARGET:.1f}: {verdict})")
    return 0 if ratio >= TARGET else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=1_200, help="distinct URLs (at least 1,000)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample", type=int, default=10, help="compare bodies of every Nth URL")
    parser.add_argument("--serve-bare", nargs=3, metavar=("URL", "PLANS", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare[0], args.serve_bare[1], int(args.serve_bare[2]))
        return
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as folder:
        url = f"sqlite:///{Path(folder) / 'catalog.db'}"
        started = time.perf_counter()
        fill(url, args.records)
        print(f"filled {args.records:,} records in {time.perf_counter() - started:.1f} s (SQLite file)")
        sys.exit(measure(args, Path(folder), url))


if __name__ == "__main__":
    main()
