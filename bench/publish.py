"""bench/publish: the open-data API against a bare Starlette endpoint, and whole-dataset exports.

In one run, on a SQLite file catalog holding ``--records`` (default 1,000,000) public-toilet records:
  page   — ``GET /api/v1/datasets/public-toilet/records?limit=100`` on the real publish server
           (``cityos serve publish`` in its own process) under concurrent keep-alive clients;
  limit  — a bare Starlette app on the same uvicorn settings returning the very same bytes (the
           service also writes uvicorn's access log, as deployed; the bare app does not);
           requests/s, p50 and p99 of both, and the ratio (target >= 0.5); both servers run at
           once and are measured in alternating rounds, so machine noise hits both alike;
  export — the whole dataset as CSV and as GeoJSON from ``/export``: MB/s, rows, and the publish
           server's peak RSS (VmHWM) after both (target < 200 MB).

    .venv/bin/python -m bench.publish [--records 1000000] [--seconds 5] [--clients 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.db.models import Dataset, Record
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT, Settings
from services.catalog.store import sync_schema_set
from tests.support.stack import free_port

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PAGE_PATH = "/api/v1/datasets/public-toilet/records?limit=100"
WARDS = ("小倉北区", "小倉南区", "門司区", "若松区", "八幡東区", "八幡西区", "戸畑区")


def fill(url: str, count: int) -> None:
    """``count`` live records written in bulk (the bench measures reads, not the catalog's writes)."""
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=load_schema_dir(Settings().schemas_dir), now=T0)
    chunk = 20_000
    for start in range(0, count, chunk):
        rows: list[dict[str, Any]] = []
        for n in range(start, min(start + chunk, count)):
            key = f"T{n:07d}"
            lat, lon = 33.80 + (n % 1000) / 5000, 130.70 + (n // 1000 % 1000) / 2500
            ward = WARDS[n % len(WARDS)]
            data = {"ID": key, "名称": f"{ward}公衆トイレ{n}", "所在地_連結表記": f"福岡県北九州市{ward}{n % 97}-1",
                    "設置位置": "屋外", "男性トイレ総数": n % 5, "女性トイレ総数": n % 4, "緯度": lat, "経度": lon}  # fmt: skip
            row = {"dataset_id": "public-toilet", "record_key": key, "data": data, "schema_version": 1,
                   "event_source": "/bench", "event_id": f"e{n}", "event_time": T0, "kafka_partition": 0,
                   "kafka_offset": n, "latitude": lat, "longitude": lon, "updated_at": T0, "deleted_at": None}  # fmt: skip
            rows.append(row)
        with session_factory(engine)() as session, session.begin():
            session.execute(insert(Record), rows)
    with session_factory(engine)() as session, session.begin():
        session.execute(
            update(Dataset)
            .where(Dataset.id == "public-toilet")
            .values(record_count=count, last_record_at=T0 + timedelta(hours=1))
        )
    engine.dispose()


@contextmanager
def process(args: list[str], env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@dataclass
class Run:
    """Requests timed against one server, pooled over rounds."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    sizes: set[int] = field(default_factory=set)

    def summary(self) -> tuple[float, float, float, int]:
        """(requests/s, p50 ms, p99 ms, body bytes)."""
        cuts = statistics.quantiles(self.latencies, n=100)
        return len(self.latencies) / self.elapsed, cuts[49] * 1000, cuts[98] * 1000, max(self.sizes)


def load(port: int, path: str, *, seconds: float, clients: int, into: Run | None = None) -> Run:
    """Keep-alive clients in threads for ``seconds``, added to ``into`` (or a new ``Run``)."""
    run = into if into is not None else Run()
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        own: list[float] = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            own.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
            run.sizes.add(len(body))
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.elapsed += time.perf_counter() - began
    run.latencies.extend(latencies)
    return run


def download(port: int, path: str) -> tuple[int, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    total = 0
    while chunk := response.read(1 << 20):
        total += len(chunk)
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return total, time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_bare(body_file: str, port: int) -> None:
    """The limit: Starlette returning fixed bytes, on the same uvicorn settings as the service."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = Path(body_file).read_bytes()

    async def page(_: Request) -> Response:
        return Response(body, media_type="application/json")

    async def healthz(_: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    app = Starlette(routes=[Route(PAGE_PATH.split("?")[0], page), Route("/healthz", healthz)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating publish/bare measurements")
    parser.add_argument("--serve-bare", nargs=2, metavar=("BODY_FILE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare[0], int(args.serve_bare[1]))
        return

    with tempfile.TemporaryDirectory(prefix="bench-publish-") as folder:
        url = f"sqlite:///{Path(folder) / 'catalog.db'}"
        started = time.perf_counter()
        fill(url, args.records)
        print(f"filled {args.records:,} records in {time.perf_counter() - started:.1f} s (SQLite file)")

        port = free_port()
        env = dict(os.environ)
        env.update({
            "CITYOS_DATABASE_URL": url, "CITYOS_PUBLISH_PORT": str(port),
            "CITYOS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            # The bench measures throughput, not the limiter's refusals.
            "CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE": "100000000",
        })  # fmt: skip
        bare_port = free_port()
        body_file = Path(folder) / "page.json"
        bare_args = [sys.executable, "-m", "bench.publish", "--serve-bare", str(body_file), str(bare_port)]
        with process([sys.executable, "-m", "cityos", "serve", "publish"], env, port) as server:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", PAGE_PATH)
            body_file.write_bytes(connection.getresponse().read())
            # Both servers up at once, measured in alternating rounds: a load change on the machine
            # (other processes) then weighs on both sides alike instead of on whichever ran second.
            with process(bare_args, dict(os.environ), bare_port):
                load(port, PAGE_PATH, seconds=1, clients=args.clients)  # warm-up
                load(bare_port, PAGE_PATH, seconds=1, clients=args.clients)
                api_run, bare_run = Run(), Run()
                for _ in range(args.rounds):
                    load(port, PAGE_PATH, seconds=args.seconds, clients=args.clients, into=api_run)
                    load(bare_port, PAGE_PATH, seconds=args.seconds, clients=args.clients, into=bare_run)
            api, bare = api_run.summary(), bare_run.summary()
            if api[3] != bare[3]:
                raise RuntimeError(f"the two servers sent different bodies ({api[3]} vs {bare[3]} bytes)")
            rss_before = peak_rss_mb(server.pid)
            exports = {}
            for fmt in ("csv", "geojson"):
                exports[fmt] = download(port, f"/api/v1/datasets/public-toilet/export?format={fmt}")
            rss_after = peak_rss_mb(server.pid)

    rounds = f"{args.rounds} alternating round{'s' if args.rounds > 1 else ''} of {args.seconds:.0f} s each"
    print(f"\nrecords page ({api[3]:,} bytes, {args.clients} keep-alive clients, {rounds})")
    print(f"  publish API : {api[0]:8.0f} req/s   p50 {api[1]:6.2f} ms   p99 {api[2]:6.2f} ms")
    print(f"  bare (limit): {bare[0]:8.0f} req/s   p50 {bare[1]:6.2f} ms   p99 {bare[2]:6.2f} ms")
    print(f"  ratio       : {api[0] / bare[0]:.2f}  (target >= 0.5)")
    print(f"\nwhole-dataset export of {args.records:,} records")
    for fmt, (size, seconds) in exports.items():
        print(f"  {fmt:8s}: {size / 1e6:8.1f} MB in {seconds:6.1f} s = {size / 1e6 / seconds:6.1f} MB/s")
    print(
        f"  publish server peak RSS: {rss_after:.0f} MB (before the exports {rss_before:.0f} MB; target < 200 MB)"
    )


if __name__ == "__main__":
    main()
