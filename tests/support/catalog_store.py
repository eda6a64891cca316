"""The catalog persistence tests' world: a small schema set (a public facility list and internal copier
usage), events against it, and throw-away PostgreSQL schemas. Shared by the tests that run on both
backends and the PostgreSQL-only ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cityos.kernel.db.engine import make_engine, normalize_url
from cityos.kernel.events import TYPE_DELETED, TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import (
    DatasetMeta,
    LocalizedText,
    LocationFields,
    SchemaSet,
    SchemaVersion,
    schema_uri,
)
from cityos.kernel.schemas import Department as DepartmentMeta
from tests.support import needs

PG_URL_ENV = "CITYOS_TEST_PG_URL"

JST = timezone(timedelta(hours=9))
T0 = datetime(2025, 4, 1, 9, 0, tzinfo=JST)
NOW = datetime(2025, 4, 2, 12, 0, tzinfo=UTC)
FACILITY = "public-facility"
COPIER = "copier-usage"
SOURCE = "urn:cityos:dept:planning:facility-db"


def pg_base_url() -> str:
    """The PostgreSQL admin URL, or skip (fail in CI, where a missing server is a broken set-up)."""
    return needs.env(
        PG_URL_ENV,
        "PostgreSQL variants need a server "
        "(`make test` starts one; or export e.g. postgresql+psycopg://user@127.0.0.1:5432/db)",
    )


def pg_schema_url(base_url: str) -> Iterator[str]:
    """A URL whose connections work in a new, empty schema; the schema is dropped afterwards.

    A schema rather than a database: it needs no CREATEDB right and is created in milliseconds.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = normalize_url(base_url)
        existing = url.query.get("options", ())
        options = " ".join(
            [*([existing] if isinstance(existing, str) else existing), f"-csearch_path={schema}"]
        )
        yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


def facility_schema(version: int = 1, *, extra: dict[str, Any] | None = None) -> SchemaVersion:
    document: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(FACILITY, version),
        "type": "object",
        "required": ["NO", "名称"],
        "properties": {
            "NO": {"type": "string"},
            "名称": {"type": "string"},
            "階数": {"type": "integer", "minimum": 1, "maximum": 99.0},
            "面積": {"type": "number"},
            "バリアフリー": {"type": "boolean"},
            "緯度": {"type": "number"},
            "経度": {"type": "number"},
        },
        **(extra or {}),
    }
    return SchemaVersion(
        dataset_id=FACILITY, version=version, uri=schema_uri(FACILITY, version), document=document
    )


def make_schema_set(
    *, facility_title: str = "公共施設一覧", versions: Sequence[SchemaVersion] = ()
) -> SchemaSet:
    departments = {
        "planning": DepartmentMeta(
            id="planning",
            name=LocalizedText(ja="企画調整局", en="Planning and Coordination Bureau"),
            kafka_principal="User:dept-planning",
        ),
        "citizens": DepartmentMeta(
            id="citizens",
            name=LocalizedText(ja="市民文化スポーツ局", en="Citizens, Culture and Sports Bureau"),
            kafka_principal="User:dept-citizens",
        ),
    }
    datasets = {
        FACILITY: DatasetMeta(
            id=FACILITY,
            title=LocalizedText(ja=facility_title, en="Public facilities"),
            description=LocalizedText(ja="市の公共施設。", en="The city's public facilities."),
            department="planning",
            classification="public",
            record_key="NO",
            location=LocationFields(latitude="緯度", longitude="経度"),
            update_frequency="annual",
            keywords=["公共施設"],
        ),
        COPIER: DatasetMeta(
            id=COPIER,
            title=LocalizedText(ja="複合機利用実績", en="Copier usage"),
            description=LocalizedText(ja="庁内向け。", en="Internal."),
            department="citizens",
            classification="internal",
            record_key="id",
            update_frequency="monthly",
        ),
    }
    copier = SchemaVersion(
        dataset_id=COPIER,
        version=1,
        uri=schema_uri(COPIER, 1),
        document={"type": "object", "properties": {"id": {"type": "string"}, "枚数": {"type": "integer"}}},
    )
    all_versions = [facility_schema(1), copier, *versions]
    return SchemaSet(datasets=datasets, departments=departments, versions={v.uri: v for v in all_versions})


def upsert(
    key: str,
    data: dict[str, Any] | None = None,
    *,
    at: datetime = T0,
    offset: int = 0,
    partition: int = 0,
    dataset: str = FACILITY,
    event_id: str | None = None,
) -> ValidatedEvent:
    return ValidatedEvent(
        dataset_id=dataset,
        record_key=key,
        schema_version=1,
        source=SOURCE,
        id=event_id or f"{dataset}/{key}/{partition}/{offset}",
        type=TYPE_UPSERTED,
        time=at,
        data={"NO": key, "名称": f"施設{key}"} if data is None else data,
        partition=partition,
        offset=offset,
    )


def deletion(
    key: str, *, at: datetime = T0, offset: int = 0, partition: int = 0, dataset: str = FACILITY
) -> ValidatedEvent:
    return ValidatedEvent(
        dataset_id=dataset,
        record_key=key,
        schema_version=1,
        source=SOURCE,
        id=f"{dataset}/{key}/{partition}/{offset}/deleted",
        type=TYPE_DELETED,
        time=at,
        data=None,
        partition=partition,
        offset=offset,
    )
