"""Helpers shared by the feeds and access integration tests: the access API as an administrator
or a department, validated-topic events, and reading a feed as its department would."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from confluent_kafka import Message, Producer

from cityos.department.outbox import record_event
from cityos.kernel.deadletter import DEPARTMENT
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import Settings
from tests.support.stack import Stack, header


def admin(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.admin_token}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def catalog(stack: Stack, method: str, path: str, *, auth: dict[str, str], **kwargs: Any) -> httpx.Response:
    return httpx.request(method, stack.url("catalog", path), headers=auth, timeout=30, **kwargs)


def credential(stack: Stack, department: str) -> str:
    response = catalog(
        stack, "POST", f"/api/v1/departments/{department}/credentials", auth=admin(stack), json={}
    )
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


def grant(stack: Stack, dataset: str, grantee: str, fields: list[str] | None = None) -> dict[str, Any]:
    response = catalog(
        stack,
        "POST",
        f"/api/v1/datasets/{dataset}/grants",
        auth=admin(stack),
        json={"grantee": grantee, "fields": fields},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def subscribe(
    stack: Stack,
    department: str,
    dataset: str,
    *,
    filter: dict[str, Any] | None = None,
    fields: list[str] | None = None,
    start: str = "snapshot",
) -> dict[str, Any]:
    response = catalog(
        stack,
        "POST",
        "/api/v1/subscriptions",
        auth=admin(stack),
        json={
            "dataset": dataset,
            "department": department,
            "filter": filter or {},
            "fields": fields,
            "start": start,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def validated_event(
    dataset: str, record: dict[str, Any], key_field: str, event_id: str
) -> tuple[bytes, bytes]:
    """(key, value) as ingest writes them to the validated topic."""
    value = record_event(
        record=record, dataschema=schema_uri(dataset, 1), source=f"/tests/feeds/{dataset}", event_id=event_id
    )
    return f"{dataset}/{record[key_field]}".encode(), value


@functools.cache
def _owners() -> dict[str, str]:
    return {d.id: d.department for d in load_schema_dir(Settings().schemas_dir).datasets.values()}


def as_ingest(key: bytes, department: str | None = None) -> list[tuple[str, str | bytes]]:
    """The headers ingest puts on a validated event keyed ``<dataset>/<record>``: the department it
    read the event from (``department``, else the bundled dataset's owner), which the catalog checks."""
    dataset = key.decode().partition("/")[0]
    return [(DEPARTMENT, (department or _owners()[dataset]).encode())]


def produce(
    producer: Producer, topic: str, key: bytes, value: bytes, *, department: str | None = None
) -> None:
    """Produce as ingest would to the validated topic (with its headers), waiting while the queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, headers=as_ingest(key, department))
            return
        except BufferError:
            producer.poll(0.05)


def aed(number: int, version: int) -> dict[str, Any]:
    return {
        "NO": f"F{number:05d}",
        "名称": f"試験施設{number}-v{version}",
        "名称_カナ": "シケンシセツ",
        "住所": "福岡県北九州市小倉北区城内1-1",
        "設置位置": ("1階", "2階", "玄関")[number % 3],
        "緯度": 33.88,
        "経度": 130.87,
    }


def copier(number: int, version: int) -> dict[str, Any]:
    department = ("digital", "fire", "construction", "citizens")[number % 4]
    month = number % 12 + 1
    return {
        "ID": f"{department}-{2000 + number // 12}-{month:02d}",
        "全国地方公共団体コード": "401005",
        "部局コード": department,
        "部局名": "試験部局",
        "年月": f"{2000 + number // 12}-{month:02d}",
        "枚数_モノクロ": version,
        "枚数_カラー": number,
        "用紙削減目標枚数": 1000,
        "備考": "機密の備考",
    }


def bodies(messages: list[Message]) -> list[dict[str, Any]]:
    return [orjson.loads(m.value() or b"") for m in messages]


def read_feed(
    stack: Stack, topic: str, until: Callable[[list[Message]], bool], timeout_s: float = 60
) -> list[Message]:
    return stack.read(topic, until=until, timeout_s=timeout_s)


def phase(message: Message) -> str | None:
    return header(message, "cityos_feed_phase")


def read_settled(
    stack: Stack,
    topic: str,
    count: int,
    *,
    timeout_s: float = 180,
    settle_s: float = 2.0,
    watch_services: bool = False,
) -> list[Message]:
    """Read ``topic`` until it holds ``count`` messages, then ``settle_s`` longer: anything
    lost shows as fewer, anything doubled arrives in the settling time and shows as more.
    With ``watch_services``, a stack service that exits meanwhile fails the read at once."""
    reached: list[float] = []

    def done(messages: list[Message]) -> bool:
        if watch_services:
            stack.assert_running()
        if len(messages) < count:
            return False
        if not reached:
            reached.append(time.monotonic())
        return time.monotonic() - reached[0] >= settle_s

    return stack.read(topic, until=done, timeout_s=timeout_s)
