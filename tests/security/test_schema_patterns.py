"""A schema's regular expressions cannot stall the catalog: against the real service, a candidate whose
``patternProperties`` would take minutes on a backtracking engine is checked and registered in well
under a second while ``/healthz`` keeps answering, and a pattern no linear-time engine runs (a
backreference) is refused with the place and the reason in English and Japanese."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import httpx

from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from tests.support.stack import Stack

# Four alternatives that all match "a": a backtracking engine tries 4^n ways before failing on "!".
EVIL = "^(a|a|a|a)*$"
LONG_NAME = "a" * 10_000 + "!"


def aed_v1() -> dict[str, Any]:
    document = copy.deepcopy(load_schema_dir(REPO_ROOT / "schemas").latest("aed").document)
    document.pop("$id")
    return document


def with_property(document: dict[str, Any], name: str, schema: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["properties"][name] = schema
    return changed


class HealthWatch:
    """Asks ``/healthz`` every 50 ms in the background and keeps the slowest answer."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self.slowest = 0.0
        self.failures = 0
        self.answers = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(self._url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.slowest = max(self.slowest, time.perf_counter() - started)
                self.answers += 1
                self.failures += 0 if ok else 1
                self._stop.wait(0.05)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(15)


def timed_post(url: str, document: dict[str, Any], headers: dict[str, str]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = httpx.post(url, json=document, headers=headers, timeout=60)
    return response, time.perf_counter() - started


def test_catastrophic_patterns_neither_stall_check_nor_registration(sqlite_stack: Stack) -> None:
    sqlite_stack.start("catalog")
    auth = {"Authorization": f"Bearer {sqlite_stack.admin_token}"}
    schemas = sqlite_stack.url("catalog", "/api/v1/admin/schemas/aed")
    # v2: the catastrophic pattern alone is harmless on a linear engine, so it is a valid schema.
    v2 = aed_v1()
    v2["patternProperties"] = {EVIL: {"type": "integer"}}
    # v3 adds a property whose name the compatibility check runs v2's pattern against.
    v3 = with_property(v2, LONG_NAME, {"type": "string", "maxLength": 10})
    with HealthWatch(sqlite_stack.url("catalog", "/healthz")) as health:
        checked, check_s = timed_post(f"{schemas}/check", v2, auth)
        registered, register_s = timed_post(schemas, v2, auth)
        evil_check, evil_check_s = timed_post(f"{schemas}/check", v3, auth)
        evil_register, evil_register_s = timed_post(schemas, v3, auth)
        time.sleep(0.3)  # a few more health answers after the last request
    assert checked.status_code == 200 and checked.json()["acceptable"] is True, checked.text
    assert registered.status_code == 201, registered.text
    assert evil_check.status_code == 200, evil_check.text
    # The long name is no integer-valued pattern property of v2, and v2 is closed: v3 is compatible.
    assert evil_check.json()["acceptable"] is True, evil_check.text
    assert evil_register.status_code == 201, evil_register.text
    assert max(check_s, register_s, evil_check_s, evil_register_s) < 1.0, (
        check_s,
        register_s,
        evil_check_s,
        evil_register_s,
    )
    assert health.answers >= 3 and health.failures == 0
    assert health.slowest < 1.0, health.slowest


def test_a_backreference_is_refused_with_place_and_reason(sqlite_stack: Stack) -> None:
    sqlite_stack.start("catalog")
    auth = {"Authorization": f"Bearer {sqlite_stack.admin_token}"}
    schemas = sqlite_stack.url("catalog", "/api/v1/admin/schemas/aed")
    candidate = with_property(aed_v1(), "点検者", {"type": "string", "maxLength": 20, "pattern": "^(.+)\\1$"})

    checked, check_s = timed_post(f"{schemas}/check", candidate, auth)
    assert check_s < 1.0
    assert checked.status_code == 200
    verdict = checked.json()
    assert verdict["acceptable"] is False
    [issue] = verdict["lint"]
    assert (issue["pointer"], issue["rule"]) == ("/properties/点検者/pattern", "pattern_supported")
    assert "backreferences" in issue["message"]["en"] and "\\1" in issue["message"]["en"]
    assert "後方参照" in issue["message"]["ja"]

    refused, _ = timed_post(schemas, candidate, auth)
    assert refused.status_code == 422
    assert refused.json()["lint"] == verdict["lint"]
    listing = httpx.get(schemas, headers=auth).json()
    assert [v["version"] for v in listing["versions"]] == [1]


def test_the_bundled_end_anchor_idiom_is_still_accepted(sqlite_stack: Stack) -> None:
    # Bundled schemas end patterns with $(?!\n) (a look-ahead); on the linear engines it means $.
    sqlite_stack.start("catalog")
    auth = {"Authorization": f"Bearer {sqlite_stack.admin_token}"}
    schemas = sqlite_stack.url("catalog", "/api/v1/admin/schemas/aed")
    candidate = with_property(
        aed_v1(), "点検番号", {"type": "string", "maxLength": 3, "pattern": "^[0-9]{3}$(?!\\n)"}
    )
    checked, _ = timed_post(f"{schemas}/check", candidate, auth)
    assert checked.status_code == 200 and checked.json()["acceptable"] is True, checked.text
