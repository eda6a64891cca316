"""Cursor pagination stays exact while the dataset changes under it.

50,000 records are walked page by page over real HTTP while another thread inserts new records
between existing keys and updates existing ones through the catalog's own ``apply_batch``. Every
record that existed before the walk must come back exactly once.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from cityos.kernel.db.engine import session_factory
from services.catalog.store import apply_batch
from tests.support.publish import T0, events, load, schemas_with_sites, serve

COUNT = 50_000
PAGE = 1_000


def _toilet(key: str, men: int) -> dict[str, Any]:
    return {"ID": key, "名称": f"公衆トイレ{key}", "男性トイレ総数": men}


def test_cursor_walk_sees_every_preexisting_record_once(database_url: str, tmp_path: Path) -> None:
    # Even numbers exist before the walk; odd ones are inserted during it, between existing keys.
    existing = [(f"T{n:06d}", _toilet(f"T{n:06d}", 1)) for n in range(0, 2 * COUNT, 2)]
    engine = load(database_url, schemas_with_sites(tmp_path), events("public-toilet", existing))
    # IMMEDIATE, as the catalog consumer does: on SQLite the writer waits for the lock instead of failing.
    sessions = session_factory(engine, sqlite_begin="IMMEDIATE")
    failures: list[BaseException] = []
    stop = threading.Event()
    writes = {"inserted": 0, "updated": 0}

    def writer() -> None:
        try:
            write_until_stopped()
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    def write_until_stopped() -> None:
        offset = 1_000_000
        step = 0
        while not stop.is_set():
            new = [
                (f"T{n:06d}", _toilet(f"T{n:06d}", 2))
                for n in range(2 * step * 50 + 1, 2 * step * 50 + 100, 2)
            ]
            changed = [(k, _toilet(k, 3 + step)) for k, _ in existing[step * 37 % COUNT :][:50]]
            batch = events("public-toilet", new + changed, start=offset)
            with sessions() as session, session.begin():
                apply_batch(session, events=batch, now=T0 + timedelta(days=1, seconds=step))
            writes["inserted"] += len(new)
            writes["updated"] += len(changed)
            offset += len(batch)
            step += 1

    thread = threading.Thread(target=writer, daemon=True)
    seen: list[str] = []
    try:
        with serve(engine, database_url, publish_anonymous_rate_per_minute=100_000) as server:
            url = f"{server.url}/api/v1/datasets/public-toilet/records"
            thread.start()
            with httpx.Client(timeout=60) as client:
                params: dict[str, str | int] = {"limit": PAGE, "fields": "ID"}
                while True:
                    page = client.get(url, params=params)
                    assert page.status_code == 200, page.text
                    body = page.json()
                    seen += [r["ID"] for r in body["records"]]
                    if body["next_cursor"] is None:
                        break
                    params = {"limit": PAGE, "fields": "ID", "cursor": body["next_cursor"]}
    finally:
        stop.set()
        thread.join(timeout=60)
        engine.dispose()
    assert not failures, failures
    assert writes["inserted"] > 0 and writes["updated"] > 0  # the walk really raced with writes
    assert len(seen) == len(set(seen)), "a record came back twice"
    missing = {k for k, _ in existing} - set(seen)
    assert not missing, f"{len(missing)} pre-existing records skipped"
    assert seen == sorted(seen)  # keyset order
