"""The catalog's route table: every route has a decided rule, and the rules admit whom they say."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from cityos.domain.access import Caller, CallerKind
from cityos.domain.apikeys import DEPARTMENT_SCOPES, SCOPE_MANAGE, SCOPE_READ, Credential
from cityos.kernel.db.engine import session_factory
from cityos.kernel.settings import Settings
from services.catalog.api import create_catalog_app
from services.catalog.route_policy import ADMIN_ONLY, OPEN_PATHS, POLICY, refusal, rule_for


def _credential(kind: CallerKind, *scopes: str) -> Credential:
    return Credential(Caller(kind, principal="fire", key_id="cos_00000000"), frozenset(scopes))


ADMIN = Credential(Caller(CallerKind.admin, principal="alice"), frozenset({"admin"}))
DEPARTMENT = _credential(CallerKind.department, *DEPARTMENT_SCOPES)
SUBSCRIBE_ONLY = _credential(CallerKind.department, "feeds:subscribe")
APPLICANT = _credential(CallerKind.applicant, SCOPE_READ)
DEVELOPER = _credential(CallerKind.developer, SCOPE_READ)


def test_every_route_of_the_app_has_a_decided_rule_and_every_rule_a_route(engine: Engine) -> None:
    app = create_catalog_app(session_factory(engine), CollectorRegistry(), Settings())
    routes = {
        # A mounted folder of static files has no methods: it is read with GET.
        ("GET" if "GET" in methods or not methods else sorted(methods)[0], path)
        for route in app.router.routes
        if (path := getattr(route, "path", None)) and path not in OPEN_PATHS
        for methods in [set(getattr(route, "methods", None) or ())]
    }
    assert routes - set(POLICY) == set(), "routes without a rule (closed to all but administrators)"
    assert set(POLICY) - routes == set(), "rules naming no route"


def test_a_route_missing_from_the_table_is_for_administrators_only() -> None:
    assert rule_for("POST", "/api/v1/admin/something-new") is ADMIN_ONLY
    assert refusal(rule_for("POST", "/api/v1/admin/something-new"), DEPARTMENT) is not None
    assert refusal(rule_for("POST", "/api/v1/admin/something-new"), ADMIN) is None
    assert rule_for("HEAD", "/openapi.json") is POLICY[("GET", "/openapi.json")]


@pytest.mark.parametrize(
    ("method", "route", "credential", "allowed"),
    [
        ("GET", "/api/v1/admin/datasets", ADMIN, True),
        ("GET", "/api/v1/admin/datasets", DEPARTMENT, False),
        ("POST", "/api/v1/admin/schemas/{dataset_id}/check", DEPARTMENT, False),
        ("GET", "/schemas/{dataset_id}/{version}", DEPARTMENT, True),
        ("GET", "/schemas/{dataset_id}/{version}", SUBSCRIBE_ONLY, False),
        ("GET", "/schemas/{dataset_id}/{version}", DEVELOPER, False),
        ("POST", "/api/v1/datasets/{dataset_id}/grants", SUBSCRIBE_ONLY, False),
        ("POST", "/api/v1/subscriptions", SUBSCRIBE_ONLY, True),
        ("GET", "/api/v1/admin/proposal-calls", APPLICANT, True),
        ("GET", "/api/v1/admin/proposals", APPLICANT, True),
        ("POST", "/api/v1/admin/proposals", APPLICANT, True),
        ("POST", "/api/v1/admin/proposals", DEPARTMENT, False),
        ("POST", "/api/v1/admin/releases", APPLICANT, False),
        ("GET", "/openapi.json", DEVELOPER, False),
        ("GET", "/openapi.json", APPLICANT, True),
    ],
)
def test_rules_admit_by_kind_and_scope(
    method: str, route: str, credential: Credential, allowed: bool
) -> None:
    assert (refusal(rule_for(method, route), credential) is None) is allowed


def test_refusals_say_what_is_missing_in_both_languages() -> None:
    missing = refusal(rule_for("POST", "/api/v1/datasets/{dataset_id}/grants"), SUBSCRIBE_ONLY)
    assert missing is not None and SCOPE_MANAGE in missing and "権限" in missing
    assert refusal(ADMIN_ONLY, DEPARTMENT) == "administrators only / 管理者のみ"
    # An unmatched path: any catalog credential gets its 404; a developer key is not one.
    assert refusal(None, DEPARTMENT) is None
    assert refusal(None, DEVELOPER) is not None
