"""No single request stalls the open-data API: each request that once held it for seconds (or took
its memory past a gigabyte) is now refused at once with a clear error, while /healthz keeps answering.

Against the real publish service (its own process, uvicorn, SQLite catalog with the Yaizu AED file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.attacks import chunked, fill_and_start, probe_while, raw_post, rss_bytes
from tests.support.stack import Stack

CKAN = "/api/3/action/"
MiB = 1024 * 1024
# Far above what any of these requests now costs (a few ms), far below the seconds they once took.
QUICK_S = 0.5
HEALTHZ_WORST_S = 0.25


@pytest.fixture
def publish(sqlite_stack: Stack) -> Iterator[Stack]:
    fill_and_start(sqlite_stack, "publish")
    yield sqlite_stack


def _timed(stack: Stack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The request, sent while /healthz is probed; asserts both answered quickly."""

    def send() -> httpx.Response:
        return httpx.request(method, stack.url("publish", path), timeout=30, **kwargs)

    answer, healthz = probe_while(send, stack.url("publish", "/healthz"))
    print(f"{method} {path[:40]}: {answer.status_code} in {answer.elapsed.total_seconds() * 1000:.1f} ms; "
          + healthz.line("/healthz meanwhile"))  # fmt: skip
    assert answer.elapsed.total_seconds() < QUICK_S
    assert healthz.worst < HEALTHZ_WORST_S
    return answer


def _ckan_error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text[:300]
    envelope = answer.json()
    assert envelope["success"] is False
    error: dict[str, Any] = envelope["error"]
    return error


def test_a_huge_body_is_refused_before_it_is_read(publish: Stack) -> None:
    port, pid = publish.ports["publish"], publish.processes["publish"].pid
    before = rss_bytes(pid)
    # A 500 MB promise: answered from the headers alone, after at most what the socket buffered.
    declared = raw_post(
        port, CKAN + "package_search",
        {"Content-Type": "application/json", "Content-Length": str(500 * 1000 * 1000)},
        (b"x" * (64 * 1024) for _ in range(32)),
    )  # fmt: skip
    # No length at all: counted as it streams, cut off at the cap.
    streamed = raw_post(
        port, CKAN + "datastore_search",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, chunked(3 * MiB),
    )  # fmt: skip
    grown = rss_bytes(pid) - before
    print(f"413 after {declared.seconds * 1000:.1f} ms (declared), {streamed.seconds * 1000:.1f} ms "
          f"(chunked); RSS {before / MiB:.0f} MiB, grew {grown / MiB:.1f} MiB")  # fmt: skip
    for answer in (declared, streamed):
        assert answer.status == 413
        refusal = json.loads(answer.body)
        assert refusal["error"] == "request_too_large" and refusal["max_body_bytes"] == MiB
        assert answer.seconds < QUICK_S
    assert grown < 32 * MiB
    # A body within the cap is still served.
    assert httpx.post(publish.url("publish", CKAN + "package_list"), json={"limit": 1}).status_code == 200


def test_a_crafted_fq_is_refused_and_one_within_the_cap_parses_at_once(publish: Stack) -> None:
    crafted = 'tags:"' + "a:" * 12_000  # 24,006 characters that once took 6 s to parse
    error = _ckan_error(_timed(publish, "GET", CKAN + "package_search", params={"fq": crafted}), 409)
    assert error["fq"] == ["fq is too long: at most 1000 characters / fq は 1000 文字まで"]
    # The same shape within the cap: an unclosed quote is read as the rest of its word.
    within = 'tags:"' + "a:" * 497
    answer = _timed(publish, "GET", CKAN + "package_search", params={"fq": within})
    assert answer.json()["result"]["count"] == 0
    many = " ".join(["organization:fire"] * 55)
    found = _timed(publish, "GET", CKAN + "package_search", params={"fq": many})
    assert found.json()["result"]["count"] == 1


def test_filters_with_thousands_of_values_are_refused_before_the_query(publish: Stack) -> None:
    body = {"resource_id": "aed", "filters": {"名称": [f"施設{i}" for i in range(5_000)]}}
    error = _ckan_error(_timed(publish, "POST", CKAN + "datastore_search", json=body), 409)
    assert error["filters"] == ["filters has too many values: at most 100 / filters の値は 100 個まで"]
    body["filters"] = {f"f{i}": "x" for i in range(25)}
    error = _ckan_error(_timed(publish, "POST", CKAN + "datastore_search", json=body), 409)
    assert "at most 20" in error["filters"][0]
    body["filters"] = {field: [f"施設{i}" for i in range(100)] for field in ("名称", "住所", "設置位置")}
    error = _ckan_error(_timed(publish, "POST", CKAN + "datastore_search", json=body), 409)
    assert "at most 100 in all" in error["filters"][0]
    body["filters"] = {"名称": [f"施設{i}" for i in range(100)]}
    assert _timed(publish, "POST", CKAN + "datastore_search", json=body).json()["success"] is True


def test_integers_of_thousands_of_digits_are_validation_errors(publish: Stack) -> None:
    huge = "1" * 4_301
    filters = json.dumps({"男性トイレ総数": huge[:1_999]}, ensure_ascii=False)

    def search(name: str, value: str) -> dict[str, Any]:
        params = {"resource_id": "public-toilet", name: value}
        return _ckan_error(_timed(publish, "GET", CKAN + "datastore_search", params=params), 409)

    assert "64-bit" in search("filters", filters)["filters"][0]
    for name in ("filters", "limit", "offset"):
        error = search(name, json.dumps({"男性トイレ総数": huge}) if name == "filters" else huge)
        assert "at most" in error[name][0]
    for name in ("男性トイレ総数", "男性トイレ総数[gte]", "limit", "offset"):
        answer = _timed(publish, "GET", "/api/v1/datasets/public-toilet/records", params={name: huge})
        assert answer.status_code == 400 and answer.json()["parameter"] == name


def test_a_body_that_is_not_json_is_a_bad_request_and_a_form_works(publish: Stack) -> None:
    for content, kind in ((b"limit=1", "text/plain"), (b"{not json", "application/json")):
        answer = _timed(
            publish, "POST", CKAN + "package_list", content=content, headers={"Content-Type": kind}
        )
        error = _ckan_error(answer, 400)
        assert error["__type"] == "Bad request" and "JSON" in error["message"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    shown = _timed(publish, "POST", CKAN + "package_show", content=b"id=aed", headers=form)
    assert shown.json()["result"]["name"] == "aed"


def test_rest_text_and_list_parameters_have_caps(publish: Stack) -> None:
    records = "/api/v1/datasets/aed/records"
    for params, parameter in (
        ({"q": "小倉" * 101}, "q"),
        ({"fields": ",".join(["名称"] * 101)}, "fields"),
        ({"名称": "x" * 2_001}, "名称"),
        ({f"p{i}": "1" for i in range(51)}, "request"),
    ):
        answer = _timed(publish, "GET", records, params=params)
        assert answer.status_code == 400, params
        assert answer.json()["parameter"] == parameter
