"""Caps on what one request may ask of the open-data APIs, and parsing that costs in proportion to it."""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from services.publish import ckan, param_caps
from tests.support.publish_catalog import RECORDS, Catalog

CKAN = "/api/3/action/"


# --- fq: one pass, whatever the text ------------------------------------------------------------


@pytest.mark.parametrize(
    "crafted",
    [
        'tags:"' + "a:" * 12_000,  # an unclosed quote: every position once looked ahead to the end
        "organization:fire " * 1_400,  # many clauses: each was once cut out of the whole text again
        "x" * 24_000,
    ],
)
def test_parse_fq_takes_time_in_proportion_to_the_text(crafted: str) -> None:
    started = time.perf_counter()
    with contextlib.suppress(ckan.ActionError):
        ckan.parse_fq(crafted)
    assert time.perf_counter() - started < 0.2


def test_parse_fq_reads_quotes_escapes_signs_and_match_all() -> None:
    assert ckan.parse_fq('-tags:"say \\"hi\\"" +name:aed *:*') == [
        ckan.FqClause("tags", 'say "hi"', True),
        ckan.FqClause("name", "aed", False),
    ]
    assert ckan.parse_fq('tags:"AED') == [ckan.FqClause("tags", "AED", False)]
    assert ckan.parse_fq("  ") == []
    with pytest.raises(ckan.ActionError, match="cannot parse 'AND'"):
        ckan.parse_fq("organization:fire AND tags:AED")
    with pytest.raises(ckan.ActionError, match="cannot parse"):
        ckan.parse_fq("organization: fire")


# --- caps as values -----------------------------------------------------------------------------


def _refusal(params: dict[str, object]) -> tuple[str | None, str]:
    with pytest.raises(ckan.ActionError) as caught:
        ckan.check_params(params)
    assert caught.value.status == 409
    return caught.value.field, caught.value.message


def test_ckan_caps_name_the_parameter_and_the_cap() -> None:
    assert _refusal({"fq": "x" * (ckan.MAX_FQ_LENGTH + 1)}) == (
        "fq",
        "fq is too long: at most 1000 characters / fq は 1000 文字まで",
    )
    field, message = _refusal({"q": "小倉" * 101})
    assert field == "q" and "200" in message
    field, message = _refusal({"filters": {"NO": list(range(param_caps.MAX_LIST_ITEMS + 1))}})
    assert field == "filters" and "at most 100" in message and "100 個まで" in message
    field, message = _refusal({"filters": {f"f{i}": 1 for i in range(ckan.MAX_FILTERS + 1)}})
    assert field == "filters" and "fields: at most 20" in message
    field, message = _refusal({"filters": {"NO": [["1"]]}})
    assert field == "filters" and "nested too deeply" in message
    field, message = _refusal({f"p{i}": "1" for i in range(param_caps.MAX_PARAMETERS + 1)})
    assert field == "request" and "50" in message
    field, message = _refusal({"id": "a" * (param_caps.MAX_TEXT_LENGTH + 1)})
    assert field == "id"


def test_ckan_caps_let_ordinary_requests_through() -> None:
    ckan.check_params(
        {
            "resource_id": "aed.csv",
            "filters": json.dumps({"名称": ["a", "b"], "NO": "001"}, ensure_ascii=False),
            "fields": ["NO", "名称"],
            "q": {"名称": "小倉"},
            "limit": 100,
            "fq": 'organization:fire tags:"AED"',
        }
    )


def test_rest_query_caps() -> None:
    assert param_caps.query_over_cap([("limit", "10"), ("名称", "小倉北区役所")]) is None
    over = param_caps.query_over_cap([("fields", ",".join(["名称"] * 101))])
    assert over is not None and over.parameter == "fields" and "100" in over.problem
    over = param_caps.query_over_cap([("名" * 201, "x")])
    assert over is not None and over.parameter.endswith("…") and "200" in over.problem
    over = param_caps.query_over_cap([("q", "x" * 2_001)])
    assert over is not None and over.parameter == "q"
    over = param_caps.query_over_cap([(f"p{i}", "") for i in range(51)])
    assert over is not None and over.parameter == "request"
    in_values = ",".join(str(i) for i in range(60))
    assert param_caps.query_over_cap([("NO[in]", in_values), ("名称[in]", "a,b")]) is None
    over = param_caps.query_over_cap([("NO[in]", in_values), ("名称[in]", in_values)])
    assert over is not None and over.parameter == "名称[in]" and "100 in all" in over.problem


# --- through the app ----------------------------------------------------------------------------

HUGE = "1" * 4_301  # Python refuses to read an int of more than 4,300 digits


def test_integers_of_any_length_are_refused_as_the_client_s_mistake(catalog: Catalog) -> None:
    client = catalog.client
    for name in ("男性トイレ総数", "男性トイレ総数[gte]", "男性トイレ総数[in]"):
        for value in (HUGE[:2_000], HUGE):
            answer = client.get(RECORDS.format("public-toilet"), params={name: value})
            assert answer.status_code == 400, (name, len(value))
            assert answer.json()["parameter"] == name
    for name in ("limit", "offset"):
        assert client.get(RECORDS.format("public-toilet"), params={name: HUGE}).status_code == 400

    for filters in ({"男性トイレ総数": HUGE[:2_000]}, {"男性トイレ総数": HUGE}):
        answer = client.get(
            CKAN + "datastore_search",
            params={"resource_id": "public-toilet", "filters": json.dumps(filters, ensure_ascii=False)},
        )
        assert answer.status_code == 409
        assert "filters" in answer.json()["error"]
    for name in ("limit", "offset"):
        answer = client.get(CKAN + "datastore_search", params={"resource_id": "public-toilet", name: HUGE})
        assert answer.status_code == 409 and name in answer.json()["error"]
    posted = '{"resource_id": "public-toilet", "filters": {"男性トイレ総数": 18446744073709551615}}'
    answer = client.post(CKAN + "datastore_search", content=posted.encode())
    assert answer.status_code == 409
    assert "64-bit" in answer.json()["error"]["filters"][0]


def test_filters_with_too_many_values_are_refused_before_the_query(catalog: Catalog) -> None:
    body = {"resource_id": "public-toilet", "filters": {"男性トイレ総数": list(range(5_000))}}
    answer = catalog.client.post(CKAN + "datastore_search", json=body)
    assert answer.status_code == 409
    assert answer.json()["error"] == {
        "__type": "Validation Error",
        "filters": ["filters has too many values: at most 100 / filters の値は 100 個まで"],
    }
    body["filters"] = {"男性トイレ総数": list(range(100))}
    assert catalog.client.post(CKAN + "datastore_search", json=body).status_code == 200
    body["filters"] = {"男性トイレ総数": list(range(60)), "名称": [f"{i}" for i in range(60)]}
    answer = catalog.client.post(CKAN + "datastore_search", json=body)
    assert answer.status_code == 409 and "100 in all" in answer.json()["error"]["filters"][0]


def test_a_post_body_is_json_or_a_form_and_anything_else_is_a_bad_request(catalog: Catalog) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    answer = catalog.client.post(CKAN + "package_show", content=b"id=aed", headers=form)
    assert answer.status_code == 200 and answer.json()["result"]["name"] == "aed"
    for body, headers in (
        (b"id=aed", {"content-type": "text/plain"}),
        (b'{"limit": 1e400}', {"content-type": "application/json"}),
        (b"\xff\xfe=1", form),
    ):
        answer = catalog.client.post(CKAN + "package_list", content=body, headers=headers)
        assert answer.status_code == 400, body
        error = answer.json()["error"]
        assert error["__type"] == "Bad request" and error["message"].startswith("Bad request: ")
    multipart = catalog.client.post(CKAN + "package_list", files={"id": ("a.txt", b"aed")})
    assert multipart.status_code == 400


def test_any_of_keeps_json_types_apart_and_costs_one_comparison_per_type(catalog: Catalog) -> None:
    def ids(**params: str) -> list[str]:
        answer = catalog.client.get(RECORDS.format("public-toilet"), params={**params, "sort": "ID"})
        assert answer.status_code == 200, answer.text
        return [r["ID"] for r in answer.json()["records"]]

    assert ids(**{"男性トイレ総数[in]": "3,5"}) == ["T01", "T02", "T03"]
    assert ids(**{"男性トイレ総数[in]": "5,99"}) == ["T02"]
    many = ",".join(str(n) for n in range(10, 109)) + ",3"  # 100 values, one of them matching
    started = time.perf_counter()
    assert ids(**{"男性トイレ総数[in]": many}) == ["T01", "T03"]
    assert time.perf_counter() - started < 0.5
    # Text and number values together, over two fields: each field keeps its own JSON type.
    body = {"resource_id": "public-toilet", "filters": {"設置位置": ["屋外", "3"], "男性トイレ総数": [3, 5]}}
    answer = catalog.client.post(CKAN + "datastore_search", json={**body, "sort": "ID"})
    assert [r["_id"] for r in answer.json()["result"]["records"]] == ["T01", "T02"]
