"""Shared by the publish and export benches: a large public-toilet catalog in a SQLite file, the real
publish server in its own process, and what is read from outside it (a download, its peak RSS).

The catalog is written in bulk (the benches measure reads, not the catalog's writes), with the same
rows every time so that figures from different runs compare.
"""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.db.models import Dataset, Record
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT, Settings
from services.catalog.store import sync_schema_set

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DATASET = "public-toilet"
WARDS = ("小倉北区", "小倉南区", "門司区", "若松区", "八幡東区", "八幡西区", "戸畑区")


def toilet(n: int) -> dict[str, Any]:
    """The ``n``-th bench record: Japanese text, integers and coordinates, as a department sends them."""
    key = f"T{n:07d}"
    lat, lon = 33.80 + (n % 1000) / 5000, 130.70 + (n // 1000 % 1000) / 2500
    ward = WARDS[n % len(WARDS)]
    return {"ID": key, "名称": f"{ward}公衆トイレ{n}", "所在地_連結表記": f"福岡県北九州市{ward}{n % 97}-1",
            "設置位置": "屋外", "男性トイレ総数": n % 5, "女性トイレ総数": n % 4, "緯度": lat, "経度": lon}  # fmt: skip


def fill(url: str, count: int) -> None:
    """``count`` live public-toilet records written in bulk into a migrated catalog at ``url``."""
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=load_schema_dir(Settings().schemas_dir), now=T0)
    chunk = 20_000
    for start in range(0, count, chunk):
        rows: list[dict[str, Any]] = []
        for n in range(start, min(start + chunk, count)):
            data = toilet(n)
            row = {"dataset_id": DATASET, "record_key": data["ID"], "data": data, "schema_version": 1,
                   "event_source": "/bench", "event_id": f"e{n}", "event_time": T0, "kafka_partition": 0,
                   "kafka_offset": n, "latitude": data["緯度"], "longitude": data["経度"], "updated_at": T0,
                   "deleted_at": None}  # fmt: skip
            rows.append(row)
        with session_factory(engine)() as session, session.begin():
            session.execute(insert(Record), rows)
    with session_factory(engine)() as session, session.begin():
        session.execute(
            update(Dataset)
            .where(Dataset.id == DATASET)
            .values(record_count=count, last_record_at=T0 + timedelta(hours=1))
        )
    engine.dispose()


@contextmanager
def process(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server started as ``args``, once its ``/healthz`` answers; terminated on the way out. Its log
    goes to the file ``log``: a pipe nobody reads would fill up and stall the server mid-measurement."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=sink)
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
                raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def download(port: int, path: str, *, sink: Any = None) -> tuple[int, float]:
    """(bytes, seconds) of one GET of ``path``, read in 1 MiB pieces; each piece goes to ``sink(piece)``
    when given (a digest's ``update``)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    total = 0
    while chunk := response.read(1 << 20):
        total += len(chunk)
        if sink is not None:
            sink(chunk)
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return total, time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
