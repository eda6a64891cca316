"""The portal as a visitor's browser sees it: a real publish server process over a SQLite catalog that
holds every dataset's demo records and the wards' boundaries, plus a department credential for the
pages that sign in.

The catalog is filled the way production fills it: the repository's schemas synced with
``sync_schema_set``, then the demo generator's records applied as validated events through
``apply_batch``. Servers run as ``cityos serve publish`` (and the catalog's admin app under uvicorn),
each logging to a file next to its database, and are stopped when the session ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page
from prometheus_client import CollectorRegistry

from cityos.department.demo import demo_records
from cityos.domain.apikeys import SCOPE_READ, OwnerKind
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.events import TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import SchemaSet, load_schema_dir
from cityos.kernel.settings import REPO_ROOT, Settings
from services.catalog.api import create_catalog_app
from services.catalog.store import apply_batch, sync_schema_set
from tests.support.credentials import issue_credential
from tests.support.stack import free_port, issue_admin_credential
from tests.support.wards import WARD_DIR

DEMO_PER_DATASET = 25
DEMO_SEED = 11
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
# The department whose internal dataset (copier-usage) its credential may read: the owner.
DEPARTMENT = "digital"
# Generous enough for a page that loads a dozen assets per test, several tests a second.
TEST_RATE_PER_MINUTE = 100_000


@dataclass(frozen=True)
class Portal:
    """A running publish server: where it is, its catalog, and a department's credential."""

    base_url: str
    db_url: str
    department_key: str
    log: Path

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)


@dataclass(frozen=True)
class CatalogAdmin:
    """A running catalog admin API over the same catalog, and an administrator's credential."""

    base_url: str
    admin_key: str
    log: Path

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)


def demo_validated_events(
    schema_set: SchemaSet,
    *,
    per_dataset: int,
    seed: int,
    datasets: Iterable[str] | None = None,
    id_prefix: str | None = None,
) -> list[ValidatedEvent]:
    """One upsert per demo record of every dataset (or of ``datasets``), as the catalog consumes them
    from Kafka; event ids ``<id_prefix>-<dataset>-<n>`` (``demo-<seed>`` by default)."""
    prefix = id_prefix if id_prefix is not None else f"demo-{seed}"
    events: list[ValidatedEvent] = []
    for dataset_id in sorted(schema_set.datasets if datasets is None else datasets):
        latest = schema_set.latest(dataset_id)
        key_field = schema_set.datasets[dataset_id].record_key
        records = demo_records(dataset_id, latest.document, count=per_dataset, seed=seed)
        for i, record in enumerate(records):
            events.append(
                ValidatedEvent(
                    dataset_id=dataset_id,
                    record_key=str(record[key_field]),
                    schema_version=latest.version,
                    source=f"/departments/demo/{dataset_id}",
                    id=f"{prefix}-{dataset_id}-{i}",
                    type=TYPE_UPSERTED,
                    time=T0 + timedelta(seconds=i),
                    data=record,
                    partition=0,
                    offset=len(events),
                )
            )
    return events


def fill_demo_catalog(database_url: str, schemas_dir: Path, *, per_dataset: int, seed: int) -> None:
    """Migrate the catalog at ``database_url`` and fill it with every dataset's demo records."""
    migrate(database_url)
    engine = make_engine(database_url)
    schema_set = load_schema_dir(schemas_dir)
    try:
        with session_factory(engine)() as session, session.begin():
            sync_schema_set(session, schema_set=schema_set, now=T0)
            events = demo_validated_events(schema_set, per_dataset=per_dataset, seed=seed)
            apply_batch(session, events=events, now=T0 + timedelta(hours=1))
    finally:
        engine.dispose()


def issue_department_key(database_url: str, department: str) -> str:
    """A department credential that only reads records (``records:read``); the secret."""
    return issue_credential(
        database_url,
        owner_kind=OwnerKind.department,
        owner_id=department,
        purpose="browser tests",
        actor="admin:cli",
        scopes=[SCOPE_READ],
    )


def load_ward_boundaries(env: Mapping[str, str], log: Path) -> None:
    """The wards' boundaries (the shared N03 files) loaded with ``cityos geo load-wards``, as an
    operator loads them: the map and the OGC pages draw and count by ward."""
    with log.open("ab") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "cityos", "geo", "load-wards", "--from", str(WARD_DIR)],
            env=dict(env),
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"cityos geo load-wards failed ({done.returncode}):\n{_tail(log)}")


def server_env(database_url: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CITYOS_DATABASE_URL": database_url,
            "CITYOS_PUBLISH_HOST": "127.0.0.1",
            "CITYOS_PUBLISH_PORT": str(port),
            # Empty: links point where each request came in, i.e. to this very server.
            "CITYOS_PUBLIC_BASE_URL": "",
            "CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE": str(TEST_RATE_PER_MINUTE),
            "CITYOS_PUBLISH_KEY_RATE_PER_MINUTE": str(TEST_RATE_PER_MINUTE),
            "CITYOS_CATALOG_RATE_PER_MINUTE": str(TEST_RATE_PER_MINUTE),
            "CITYOS_PUBLISH_USAGE_FLUSH_INTERVAL_S": "1",
        }
    )
    return env


@contextmanager
def running(args: list[str], env: Mapping[str, str], ready_url: str, log: Path) -> Iterator[None]:
    """The process ``args`` once ``ready_url`` answers 200; terminated (then killed) on the way out."""
    with log.open("ab") as sink:
        process = subprocess.Popen(args, env=dict(env), cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{args} exited with {process.returncode}:\n{_tail(log)}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} not ready within 60 s:\n{_tail(log)}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def prepare_catalog(folder: Path) -> tuple[str, str]:
    """(database URL, department credential) of a demo catalog in ``folder``, wards included."""
    folder.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{folder / 'catalog.db'}"
    fill_demo_catalog(database_url, Settings().schemas_dir, per_dataset=DEMO_PER_DATASET, seed=DEMO_SEED)
    load_ward_boundaries(server_env(database_url, 0), folder / "load-wards.log")
    return database_url, issue_department_key(database_url, DEPARTMENT)


@contextmanager
def publish_portal(folder: Path) -> Iterator[Portal]:
    """``cityos serve publish`` over a fresh demo catalog in ``folder``."""
    database_url, department_key = prepare_catalog(folder)
    port = free_port()
    log = folder / "publish.log"
    base = f"http://127.0.0.1:{port}"
    with running(
        [sys.executable, "-m", "cityos", "serve", "publish"],
        server_env(database_url, port),
        f"{base}/readyz",
        log,
    ):
        yield Portal(base_url=base, db_url=database_url, department_key=department_key, log=log)


def catalog_app_from_environment() -> object:
    """The catalog's admin app alone (no Kafka consumer) over ``CITYOS_DATABASE_URL``: what a browser
    reaches of the catalog service is this app; the consumer beside it serves no page."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    return create_catalog_app(session_factory(engine), CollectorRegistry(), settings)


@contextmanager
def catalog_admin(database_url: str, folder: Path) -> Iterator[CatalogAdmin]:
    """The catalog's admin API under uvicorn over ``database_url``, with an administrator's credential."""
    port = free_port()
    log = folder / "catalog.log"
    base = f"http://127.0.0.1:{port}"
    args = [
        sys.executable, "-m", "uvicorn", "--factory", f"{__name__}:catalog_app_from_environment",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    admin_key = issue_admin_credential(database_url, "browser-tests")
    with running(args, server_env(database_url, port), f"{base}/readyz", log):
        yield CatalogAdmin(base_url=base, admin_key=admin_key, log=log)


def sign_in(page: Page, portal: Portal, *, lang: str = "ja") -> None:
    """Sign ``page`` in as the portal's department through the login form, as a person does."""
    page.goto(portal.url("/login" if lang == "ja" else "/en/login"))
    field = page.locator("form input[name='key']")
    field.fill(portal.department_key)
    field.press("Enter")
    page.wait_for_url(portal.url("/" if lang == "ja" else "/en/"))


SCREENSHOTS = REPO_ROOT / "var" / "test-artifacts" / "screenshots"


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot at ``var/test-artifacts/screenshots/<name>.png``; its path is printed."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
