"""CKAN action API (``/api/3/action/<action>``, also ``/api/action/``, GET or POST) over the catalog.

Every dataset read goes through ``read_access``; an invisible dataset is CKAN's "Not found", the
same as a missing one. Answers use CKAN's envelope: ``help``, ``success``, ``result`` or ``error``.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityos.domain.access import Caller, ReadAccess, read_access
from cityos.domain.readmodel import queries
from cityos.domain.readmodel.filters import FilterValue, Invalid, convert, declared_types
from cityos.domain.readmodel.query import Condition, RecordQuery, SortKey, parse_query
from cityos.kernel.db.models import Dataset, Department
from services.publish import ckan, param_caps
from services.publish.context import (
    COMMON_RESPONSES,
    ContextDep,
    PublishContext,
    caller_of,
    departments,
    visible_datasets,
)
from services.publish.records_api import quality_of
from services.publish.responses import CKAN_RESULTS, CkanErrorResponse
from services.publish.usage import open_tally

CKAN_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMON_RESPONSES,
    404: {"description": "CKAN envelope with a Not Found Error", "model": CkanErrorResponse},
    409: {"description": "CKAN envelope with a Validation Error", "model": CkanErrorResponse},
}
DATASTORE_DEFAULT_LIMIT = 100
DATASTORE_MAX_LIMIT = 32_000

Params = dict[str, Any]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FORM = "application/x-www-form-urlencoded"
Action = Callable[[Session, Caller, Params, Any], Any]


def _int(params: Params, name: str, default: int) -> int:
    value = params.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ckan.invalid(name, "Invalid integer") from None


def _str(params: Params, name: str, default: str = "") -> str:
    value = params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str | int | float):
        raise ckan.invalid(name, "expected a string")
    return str(value)


def _bool(params: Params, name: str, default: bool) -> bool:
    value = params.get(name, default)
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes", "on")


def _json_param(params: Params, name: str) -> Any:
    # GET clients send dicts and lists as JSON text; POST clients as JSON values.
    value = params.get(name)
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ckan.invalid(name, "not valid JSON") from None
        ckan.check_value(name, decoded)
        return decoded
    return value


def _datastore_filters(params: Params, schema: dict[str, Any], visible_fields: list[str]) -> list[Condition]:
    """``filters``: field -> value or list of values (any of them), typed by the schema."""
    raw_filters = _json_param(params, "filters") or {}
    if not isinstance(raw_filters, dict):
        raise ckan.invalid("filters", "expected an object of field: value")
    total = sum(len(value) if isinstance(value, list) else 1 for value in raw_filters.values())
    over = param_caps.filter_values_over_cap("filters", total)
    if over is not None:
        raise ckan.invalid(over.parameter, over.problem)
    properties: dict[str, Any] = schema.get("properties", {})
    conditions: list[Condition] = []
    for name, value in raw_filters.items():
        if name not in visible_fields:
            raise ckan.invalid("filters", f"field {name!r} not in the resource")
        types = declared_types(schema, properties[name])
        typed = [_filter_value(name, item, types) for item in (value if isinstance(value, list) else [value])]
        conditions.append(Condition(name, "in" if len(typed) > 1 else "eq", tuple(typed)))
    return conditions


def _filter_value(name: str, item: Any, types: tuple[str, ...]) -> FilterValue:
    # POST clients send JSON numbers and booleans as such; GET clients send text to convert.
    if isinstance(item, bool | float):
        return item
    if isinstance(item, int):
        # The catalog compares integers as 64-bit; a larger one would fail in the database driver.
        if not _INT64_MIN <= item <= _INT64_MAX:
            raise ckan.invalid("filters", f"{name}: {item} is out of the supported integer range (64-bit)")
        return item
    converted = convert(str(item), types)
    if isinstance(converted, Invalid):
        raise ckan.invalid("filters", f"{name}: {converted.reason}")
    return converted.value


def _datastore_text(params: Params, text_fields: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """``q``: text in any text field, or ``{field: text}`` in one."""
    q = _json_param(params, "q")
    if isinstance(q, dict):
        if len(q) != 1:
            raise ckan.invalid("q", "one field: text pair is supported")
        (field, text_value), = q.items()  # fmt: skip
        if field not in text_fields:
            raise ckan.invalid("q", f"field {field!r} is not a text field of the resource")
        return str(text_value), (field,)
    return (str(q) if q else None), text_fields


def _datastore_sort(params: Params, visible_fields: list[str]) -> list[SortKey]:
    sort_keys: list[SortKey] = []
    for name, descending in ckan.parse_datastore_sort(_str(params, "sort")):
        if name == "_id":
            if descending:
                raise ckan.invalid("sort", "_id sorts ascending only")
            continue
        if name not in visible_fields:
            raise ckan.invalid("sort", f"field {name!r} not in the resource")
        sort_keys.append(SortKey(name, descending))
    return sort_keys


def _datastore_fields(params: Params, visible_fields: list[str]) -> list[str]:
    """``fields``: a list or comma-separated names; ``_id`` is always returned anyway."""
    raw_fields = _json_param(params, "fields")
    if isinstance(raw_fields, str):
        raw_fields = [f.strip() for f in raw_fields.split(",") if f.strip()]
    if not raw_fields:
        return visible_fields
    unknown = [f for f in raw_fields if f != "_id" and f not in visible_fields]
    if unknown:
        raise ckan.invalid("fields", f"fields {unknown} not in the resource")
    return [f for f in raw_fields if f != "_id"]


def _datastore_paging(params: Params) -> tuple[int, int]:
    limit = _int(params, "limit", DATASTORE_DEFAULT_LIMIT)
    offset = _int(params, "offset", 0)
    if not 0 <= limit <= DATASTORE_MAX_LIMIT:
        raise ckan.invalid("limit", f"must be between 0 and {DATASTORE_MAX_LIMIT}")
    if offset < 0:
        raise ckan.invalid("offset", "must be a natural number")
    return limit, offset


# The actions served, each a method of ``CkanActions`` by the same name.
ACTION_NAMES = tuple(CKAN_RESULTS)


class CkanActions:
    def __init__(self, ctx: PublishContext, base_url: str) -> None:
        self.ctx = ctx
        # Where this answer's links point (``PublishContext.base_url`` of the request).
        self.base_url = base_url

    def action(self, name: str) -> Action | None:
        """The action called ``name``, or None for a name CKAN would not know."""
        method: Action | None = getattr(self, name) if name in ACTION_NAMES else None
        return method

    # -- helpers ----------------------------------------------------------------------------------

    def _package(self, session: Session, dataset: Dataset, depts: dict[str, Department]) -> dict[str, Any]:
        department = depts.get(dataset.department_id)
        schema = queries.latest_schema(session, dataset_id=dataset.id)
        return ckan.package_dict(
            dataset, department, schema, quality_of(dataset, department, schema),
            base_url=self.base_url, contact_email=self.ctx.settings.open_data_contact_email,
        )  # fmt: skip

    def _visible(self, session: Session, caller: Caller, dataset_id: str) -> tuple[Dataset, ReadAccess]:
        dataset = queries.get_dataset(session, dataset_id=dataset_id) if dataset_id else None
        access = read_access(session, caller, dataset) if dataset is not None else None
        if dataset is None or access is None:
            raise ckan.not_found("Dataset")
        return dataset, access

    # -- actions ----------------------------------------------------------------------------------

    def status_show(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        return {
            "ckan_version": ckan.CKAN_VERSION,
            "site_url": self.base_url,
            "site_title": "CityOS Open Data",
            "extensions": ["datastore", "dcat"],
        }

    def package_list(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        names = [d.id for d, _ in visible_datasets(session, caller)]
        offset = _int(params, "offset", 0)
        limit = _int(params, "limit", len(names))
        return names[offset : offset + limit]

    def current_package_list_with_resources(
        self, session: Session, caller: Caller, params: Params, state: Any
    ) -> Any:
        depts = departments(session)
        packages = [self._package(session, d, depts) for d, _ in visible_datasets(session, caller)]
        offset = _int(params, "offset", 0)
        return packages[offset : offset + _int(params, "limit", len(packages))]

    def package_show(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        dataset, _ = self._visible(session, caller, _str(params, "id") or _str(params, "name_or_id"))
        return self._package(session, dataset, departments(session))

    def package_search(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        depts = departments(session)
        packages = [self._package(session, d, depts) for d, _ in visible_datasets(session, caller)]
        return ckan.search_packages(
            packages,
            q=_str(params, "q"),
            fq=_str(params, "fq"),
            sort=_str(params, "sort", "score desc, metadata_modified desc"),
            rows=_int(params, "rows", 10),
            start=_int(params, "start", 0),
        )

    def _org_counts(self, session: Session, caller: Caller) -> dict[str, int]:
        counts: dict[str, int] = {}
        for dataset, _ in visible_datasets(session, caller):
            counts[dataset.department_id] = counts.get(dataset.department_id, 0) + 1
        return counts

    def organization_list(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        counts = self._org_counts(session, caller)
        depts = sorted(departments(session).values(), key=lambda d: d.id)
        if _bool(params, "all_fields", False):
            return [ckan.organization_dict(d, counts.get(d.id, 0)) for d in depts]
        return [d.id for d in depts]

    def organization_show(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        depts = departments(session)
        department = depts.get(_str(params, "id"))
        if department is None:
            raise ckan.not_found("Organization")
        mine = [d for d, _ in visible_datasets(session, caller) if d.department_id == department.id]
        body = ckan.organization_dict(department, len(mine))
        if _bool(params, "include_datasets", False):
            body["packages"] = [self._package(session, d, depts) for d in mine]
        return body

    def resource_show(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        parts = ckan.split_resource_id(_str(params, "id"))
        if parts is None:
            raise ckan.not_found("Resource")
        try:
            dataset, _ = self._visible(session, caller, parts[0])
        except ckan.ActionError:
            raise ckan.not_found("Resource") from None
        if parts[1] not in ckan.dataset_formats(dataset):
            raise ckan.not_found("Resource")
        return ckan.resource_dict(dataset, parts[1], self.base_url)

    def help_show(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        return ckan.action_help(_str(params, "name"))

    def datastore_search(self, session: Session, caller: Caller, params: Params, state: Any) -> Any:
        rid = _str(params, "resource_id") or _str(params, "id")
        try:
            dataset, access = self._visible(session, caller, ckan.datastore_dataset_id(rid))
        except ckan.ActionError:
            raise ckan.not_found("Resource") from None
        schema_row = queries.latest_schema(session, dataset_id=dataset.id)
        schema = schema_row.document if schema_row is not None else {}
        properties: dict[str, Any] = schema.get("properties", {})
        visible_fields = [n for n in properties if access.fields is None or n in access.fields]
        base = parse_query([], schema, allowed_fields=access.fields)
        assert isinstance(base, RecordQuery)  # no parameters cannot be malformed

        # Checked in this order, so a request with several problems always names the same one.
        conditions = _datastore_filters(params, schema, visible_fields)
        text, text_fields = _datastore_text(params, base.text_fields)
        sort_keys = _datastore_sort(params, visible_fields)
        shown = _datastore_fields(params, visible_fields)
        limit, offset = _datastore_paging(params)
        query = RecordQuery(
            conditions=tuple(conditions), text=text, text_fields=text_fields, sort=tuple(sort_keys)
        )
        total = queries.count_records(session, dataset_id=dataset.id, query=query)
        rows = queries.query_records(session, dataset_id=dataset.id, query=query, limit=limit, offset=offset)
        open_tally(state, dataset.id, "ckan").rows = len(rows)
        records = [{"_id": r.record_key, **{f: r.data[f] for f in shown if f in r.data}} for r in rows]
        fields = [{"id": "_id", "type": "text"}] + [
            {"id": f, "type": ckan.ckan_field_type(declared_types(schema, properties[f]))} for f in shown
        ]
        path = "/api/3/action/datastore_search"
        return {
            "resource_id": rid,
            "fields": fields,
            "records": records,
            "records_format": "objects",
            "total": total,
            "total_was_estimated": False,
            "limit": limit,
            "offset": offset,
            "include_total": True,
            "_links": {
                "start": f"{path}?{urlencode({'resource_id': rid})}",
                "next": f"{path}?{urlencode({'resource_id': rid, 'offset': offset + limit})}",
            },
        }


router = APIRouter(tags=["CKAN action API"], responses=CKAN_RESPONSES)


def _run(
    ctx: PublishContext, base_url: str, action_name: str, caller: Caller, params: Params, state: Any
) -> Any:
    action = CkanActions(ctx, base_url).action(action_name)
    if action is None:
        raise ckan.ActionError("Bad request", f"Action name not known: {action_name}")
    with ctx.sessions() as session:
        return action(session, caller, params, state)


async def ckan_action(request: Request, ctx: ContextDep) -> Response:
    # Every action's handler (a comment, not a docstring: FastAPI would publish it as each
    # operation's description). The named routes end with the action; the catch-all's last
    # segment is its {action_name}. CKAN's envelope answers whatever the outcome.
    action_name: str = request.path_params.get("action_name") or request.scope["path"].rsplit("/", 1)[1]
    request.state.response_format = "ckan"
    base_url = ctx.base_url(request)
    # As CKAN does: every answer links to the action's documentation, which help_show serves.
    help_url = f"{base_url}/api/3/action/help_show?{urlencode({'name': action_name})}"
    params: Params = dict(request.query_params)
    status, envelope = 200, {"help": help_url, "success": True}
    try:
        if request.method == "POST":
            params.update(await _posted(request))
        ckan.check_params(params)
        envelope["result"] = await run_in_threadpool(
            _run, ctx, base_url, action_name, caller_of(request), params, request.state
        )
    except ckan.ActionError as error:
        status, envelope = error.status, {"help": help_url, "success": False, "error": error.body()}
    return Response(orjson.dumps(envelope), status_code=status, media_type="application/json")


async def _posted(request: Request) -> Params:
    """Parameters of a POST: a JSON object, or a URL-encoded form; an empty body is no parameters.

    The body is at most the service's body cap (``BodyLimitMiddleware``) by the time it is read.
    """
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
            # CKAN's own answer to a body it cannot read.
            raise ckan.ActionError(
                "Bad request", f"JSON Error: {error}; send a JSON object or a URL-encoded form"
            ) from None
        body = _form(raw)
    if not isinstance(body, dict):
        raise ckan.invalid("body", "expected a JSON object")
    return body


def _form(raw: bytes) -> Params:
    """A URL-encoded form (what ``curl -d`` sends), the last value of a repeated name winning as in
    a query string."""
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
            max_num_fields=param_caps.MAX_PARAMETERS,
        )  # fmt: skip
    except UnicodeDecodeError:
        raise ckan.ActionError("Bad request", "the form is not UTF-8 text") from None
    except ValueError as error:
        raise ckan.ActionError("Bad request", f"cannot read the form: {error}") from None
    return dict(pairs)


def _documented(action_name: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": CKAN_RESULTS[action_name], "content": {"application/json": {}}}}


# GET and POST (JSON body) per action, each its own operation; unknown names get CKAN's own 400.
for _prefix in ("/api/3/action", "/api/action"):
    for _name in ACTION_NAMES:
        _shown = _prefix == "/api/3/action"
        router.add_api_route(
            f"{_prefix}/{_name}", ckan_action, methods=["GET"], operation_id=f"ckan_{_name}",
            summary=f"CKAN {_name}", include_in_schema=_shown, response_class=Response,
            responses=_documented(_name),
        )  # fmt: skip
        router.add_api_route(
            f"{_prefix}/{_name}", ckan_action, methods=["POST"], operation_id=f"ckan_{_name}_post",
            summary=f"CKAN {_name} (parameters as a JSON body)", include_in_schema=_shown,
            response_class=Response, responses=_documented(_name),
        )  # fmt: skip
    router.add_api_route(
        _prefix + "/{action_name}", ckan_action, methods=["GET", "POST"], include_in_schema=False
    )
