"""Who may call which catalog route: one table, decided before any handler runs. Pure logic.

Every route of the catalog is named here with the credentials it admits; a route missing from the
table admits administrators only, so a new endpoint is closed until someone decides otherwise (a
unit test lists the routes without an entry). Administrators (personal ``admin`` credentials, or the
break-glass token) pass every rule: they administer, and the handlers' own checks keep them away from
raw data. A department credential passes where its kind is admitted and it carries the scope the rule
names; an applicant's key only where applicants are admitted. Developer keys are for the open-data
API: no catalog route admits them.

Handlers still make the finer decisions (a department sees its own credentials, manages only its own
datasets' grants); this table is the coarse gate that makes an unauthenticated or wrong-kind request
fail the same way on every route, the API documentation included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cityos.domain.access import CallerKind
from cityos.domain.apikeys import SCOPE_MANAGE, SCOPE_READ, SCOPE_SUBSCRIBE, Credential

# Paths that answer without a credential: probes, and metrics whose labels name nothing non-public
# (see cityos.domain.metric_labels), so Prometheus scrapes them as before.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True)
class Rule:
    """The kinds of credential a route admits besides administrators, each with the scope it needs
    (None: any credential of that kind)."""

    admits: Mapping[CallerKind, str | None] = field(default_factory=lambda: MappingProxyType({}))


ADMIN_ONLY = Rule()
# Any credential of the catalog's users: reading the API's own documentation, listing departments.
PLATFORM_USERS = Rule(MappingProxyType({CallerKind.department: None, CallerKind.applicant: None}))


def departments(scope: str | None) -> Rule:
    return Rule(MappingProxyType({CallerKind.department: scope}))


def departments_and_applicants(scope: str | None) -> Rule:
    return Rule(MappingProxyType({CallerKind.department: scope, CallerKind.applicant: None}))


_ADMIN = "/api/v1/admin"
POLICY: Mapping[tuple[str, str], Rule] = MappingProxyType(
    {
        # The API's description: every credential of the catalog, never anonymous.
        ("GET", "/openapi.json"): PLATFORM_USERS,
        ("GET", "/docs"): PLATFORM_USERS,
        # Swagger UI's files for that page, served from this origin (cityos.kernel.web_assets).
        ("GET", "/static/vendor/swagger-ui"): PLATFORM_USERS,
        # Operators' overview: every dataset of every classification with counts.
        ("GET", f"{_ADMIN}/datasets"): ADMIN_ONLY,
        # Schema documents: the handler shows a department the schemas of public and of its own datasets.
        ("GET", "/schemas/{dataset_id}/{version}"): departments(SCOPE_READ),
        # Departments and their credentials (the handlers restrict a department to its own).
        ("GET", "/api/v1/departments"): departments(None),
        ("POST", "/api/v1/departments/{department_id}/credentials"): ADMIN_ONLY,
        ("GET", "/api/v1/departments/{department_id}/credentials"): departments(None),
        ("DELETE", "/api/v1/credentials/{key_id}"): departments(None),
        # Grants of a department's datasets.
        ("GET", "/api/v1/datasets/{dataset_id}/grants"): departments(SCOPE_MANAGE),
        ("POST", "/api/v1/datasets/{dataset_id}/grants"): departments(SCOPE_MANAGE),
        ("DELETE", "/api/v1/datasets/{dataset_id}/grants/{grantee}"): departments(SCOPE_MANAGE),
        # Feed subscriptions.
        ("POST", "/api/v1/subscriptions"): departments(SCOPE_SUBSCRIBE),
        ("GET", "/api/v1/subscriptions"): departments(SCOPE_SUBSCRIBE),
        ("GET", "/api/v1/subscriptions/{subscription_id}"): departments(SCOPE_SUBSCRIBE),
        ("DELETE", "/api/v1/subscriptions/{subscription_id}"): departments(SCOPE_SUBSCRIBE),
        # Audit log and Kafka ACLs.
        ("GET", "/api/v1/audit"): ADMIN_ONLY,
        ("GET", "/api/v1/audit/export"): ADMIN_ONLY,
        ("GET", "/api/v1/feeds/acls"): ADMIN_ONLY,
        # Schema registry and dead letters: operators' work (a dry-run check too: it reads schemas).
        ("GET", f"{_ADMIN}/schemas/{{dataset_id}}"): ADMIN_ONLY,
        ("POST", f"{_ADMIN}/schemas/{{dataset_id}}/check"): ADMIN_ONLY,
        ("POST", f"{_ADMIN}/schemas/{{dataset_id}}"): ADMIN_ONLY,
        ("GET", f"{_ADMIN}/schemas/{{dataset_id}}/compatibility"): ADMIN_ONLY,
        ("PUT", f"{_ADMIN}/schemas/{{dataset_id}}/compatibility"): ADMIN_ONLY,
        ("GET", f"{_ADMIN}/dlq"): ADMIN_ONLY,
        ("GET", f"{_ADMIN}/dlq/{{letter_id}}"): ADMIN_ONLY,
        ("POST", f"{_ADMIN}/dlq/replay"): ADMIN_ONLY,
        # Anonymized releases: the owning department manages (its scope to manage access); an
        # applicant reads the open calls and submits and follows its own proposals.
        ("POST", f"{_ADMIN}/proposal-calls"): departments(SCOPE_MANAGE),
        ("GET", f"{_ADMIN}/proposal-calls"): departments_and_applicants(SCOPE_MANAGE),
        ("POST", f"{_ADMIN}/proposals"): Rule(MappingProxyType({CallerKind.applicant: None})),
        ("GET", f"{_ADMIN}/proposals"): departments_and_applicants(SCOPE_MANAGE),
        ("POST", f"{_ADMIN}/proposals/{{proposal_id}}/decision"): departments(SCOPE_MANAGE),
        ("POST", f"{_ADMIN}/proposals/{{proposal_id}}/contract"): departments(SCOPE_MANAGE),
        ("POST", f"{_ADMIN}/proposals/{{proposal_id}}/cancel"): departments(SCOPE_MANAGE),
        ("POST", f"{_ADMIN}/proposals/{{proposal_id}}/release"): departments(SCOPE_MANAGE),
        ("POST", f"{_ADMIN}/releases"): departments(SCOPE_MANAGE),
        ("GET", f"{_ADMIN}/releases"): departments(SCOPE_MANAGE),
        # API keys of developers, departments, applicants and administrators.
        ("POST", f"{_ADMIN}/keys"): ADMIN_ONLY,
        ("GET", f"{_ADMIN}/keys"): ADMIN_ONLY,
        ("DELETE", f"{_ADMIN}/keys/{{key_id}}"): ADMIN_ONLY,
    }
)


def rule_for(method: str, route: str | None) -> Rule | None:
    """The rule of a matched route (HEAD as GET); ``ADMIN_ONLY`` for a route the table does not
    name. None when no route matched: any valid credential then gets its 404 or 405."""
    if route is None:
        return None
    return POLICY.get(("GET" if method == "HEAD" else method, route), ADMIN_ONLY)


def refusal(rule: Rule | None, credential: Credential) -> str | None:
    """Why ``credential`` may not call a route with ``rule`` (None: it may), in en / ja."""
    kind = credential.caller.kind
    if kind is CallerKind.admin:
        return None
    if rule is None:
        return None if kind is not CallerKind.developer else _NOT_HERE
    if kind not in rule.admits:
        return "administrators only / 管理者のみ" if not rule.admits else _NOT_HERE
    scope = rule.admits[kind]
    if scope is not None and not credential.allows(scope):
        return f"this credential lacks the {scope} scope / この認証情報には {scope} の権限がありません"
    return None


_NOT_HERE = "this kind of credential is not valid here / この種類の認証情報はここでは使えません"
