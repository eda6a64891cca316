"""The dataset page keeps parts of itself between views (quality, schema, map, usage): a page from
an app that has served it before must be exactly the page a fresh app renders, after every kind of
change (a new record, the ward boundaries loaded, a new schema version, a grant's narrower view).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from starlette.testclient import TestClient

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.access_models import AccessGrant
from cityos.kernel.db.engine import session_factory
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.app import create_app
from tests.support.publish import (
    SITES_ID,
    T0,
    events,
    hidden_rows,
    kitakyushu_site_rows,
    load,
    schemas_with_sites,
)
from tests.support.wards import load_wards

PAGE = f"/datasets/{SITES_ID}"


@contextmanager
def app_client(database_url: str, engine: Engine) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, public_base_url="http://portal.test",
                        publish_anonymous_rate_per_minute=100_000, publish_key_rate_per_minute=100_000)  # fmt: skip
    with TestClient(create_app(settings, engine=engine, registry=CollectorRegistry())) as client:
        yield client


def fresh_page(database_url: str, engine: Engine, path: str, headers: dict[str, str] | None = None) -> str:
    """The page as an app that never rendered it before answers it."""
    with app_client(database_url, engine) as client:
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.text


def seen_page(client: TestClient, path: str, headers: dict[str, str] | None = None) -> str:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.text


def _key(engine: Engine, department: str) -> str:
    with session_factory(engine)() as session, session.begin():
        issued = issue_key(
            session, owner_kind=OwnerKind.department, owner_id=department, purpose="t", actor="t"
        )
        return issued.secret


def test_kept_parts_follow_every_change(database_url: str, tmp_path: Path) -> None:
    schemas_dir = schemas_with_sites(tmp_path)
    rows = kitakyushu_site_rows()
    engine = load(database_url, schemas_dir, events(SITES_ID, rows[:-1]) + hidden_rows())
    try:
        with app_client(database_url, engine) as client:
            paths = [PAGE, f"/en{PAGE}", f"{PAGE}?limit=5"]
            before = {path: seen_page(client, path) for path in paths}
            for path in paths:  # kept parts reused: the same page again
                assert seen_page(client, path) == before[path] == fresh_page(database_url, engine, path)
            assert "ward-table" not in before[PAGE]  # no ward boundaries yet

            load_wards(engine)
            page = seen_page(client, PAGE)
            assert page == fresh_page(database_url, engine, PAGE)
            assert "ward-table" in page and page != before[PAGE]

            last = events(SITES_ID, rows[-1:], start=len(rows))
            with session_factory(engine)() as session, session.begin():
                apply_batch(session, events=last, now=T0 + timedelta(days=3))
            page = seen_page(client, PAGE)
            assert page == fresh_page(database_url, engine, PAGE)
            assert f'<td class="num">{len(rows)}</td><td></td></tr></tfoot>' in page  # the map's total
            assert (T0 + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S") in page  # the last change

            folder = schemas_dir / SITES_ID
            document = json.loads((folder / "v1.schema.json").read_text(encoding="utf-8"))
            document["$id"] = schema_uri(SITES_ID, 2)
            document["properties"]["管理者"] = {"type": "string", "title": "施設の管理者"}
            (folder / "v2.schema.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
            with session_factory(engine)() as session, session.begin():
                sync_schema_set(session, schema_set=load_schema_dir(schemas_dir), now=T0 + timedelta(days=4))
            page = seen_page(client, PAGE)
            assert page == fresh_page(database_url, engine, PAGE)
            assert "施設の管理者" in page and "施設の管理者" not in before[PAGE]

            # A grantee's narrower view is its own: neither it nor the owner's full one is the other's.
            internal = "/datasets/copier-usage"
            owner, grantee = _key(engine, "digital"), _key(engine, "fire")
            with session_factory(engine)() as session, session.begin():
                session.add(AccessGrant(dataset_id="copier-usage", grantee_id="fire", fields=["部局名"],
                                        granted_by="test", granted_at=T0))  # fmt: skip
            for key in (owner, grantee, owner, grantee):
                headers = {"Authorization": f"Bearer {key}"}
                assert seen_page(client, internal, headers) == fresh_page(
                    database_url, engine, internal, headers
                )
            full = seen_page(client, internal, {"Authorization": f"Bearer {owner}"})
            granted = seen_page(client, internal, {"Authorization": f"Bearer {grantee}"})
            assert "枚数_モノクロ" in full and "枚数_モノクロ" not in granted
    finally:
        engine.dispose()
