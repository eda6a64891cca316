"""The portal's own pages: home, dataset search, and a department's login. Japanese at ``/...``,
English at ``/en/...``; each reads only the datasets the caller may read (``visible_datasets``).

Handlers wire: load what the caller may see, hand it to the pure search (``site.search``), render.
"""

# No ``from __future__ import annotations`` here: FastAPI reads handler annotations at runtime.

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityos.domain.access import CallerKind, ReadAccess
from cityos.domain.apikeys import SCOPE_READ, Credential, KeyRefusal, authenticate_credential
from cityos.kernel.db.models import Dataset, Department
from cityos.kernel.db.publish_models import UsageCounter
from cityos.kernel.ratelimit import Decision
from cityos.kernel.timeutil import assume_utc
from services.publish import render as api_render
from services.publish.callers import CLEAR_SESSION_COOKIE, REFUSAL_CHARGE_KEY, SESSION_COOKIE
from services.publish.ckan import FORMATS, LICENSES, dataset_formats
from services.publish.context import ContextDep, PublishContext, SessionDep, caller_of, visible_datasets
from services.publish.quality import listed_stars
from services.publish.site import search as site_search
from services.publish.site.messages import message
from services.publish.site.templating import Lang, render, site_path

router = APIRouter(include_in_schema=False)

NEWEST_COUNT = 5
MOST_USED_COUNT = 5
USAGE_WINDOW = timedelta(days=30)
# A login form holds one credential (tens of characters): anything longer is not one.
MAX_LOGIN_BODY = 4_096


# --- loading ------------------------------------------------------------------------------------


def entry_of(dataset: Dataset, access: ReadAccess, department: Department | None) -> site_search.Entry:
    """A dataset as the search reads it: the fields of the API's listing, so both always agree."""
    summary = api_render.dataset_summary(dataset, department, "", access)
    return site_search.Entry(
        id=dataset.id,
        title_ja=summary["title"]["ja"],
        title_en=summary["title"]["en"],
        description_ja=summary["description"]["ja"],
        description_en=summary["description"]["en"],
        keywords=tuple(str(k) for k in summary["keywords"] or ()),
        department=dataset.department_id,
        license=dataset.license,
        formats=tuple(FORMATS[f] for f in dataset_formats(dataset, access)),
        stars=listed_stars(dataset.meta, record_key=dataset.record_key),
        internal=dataset.classification != "public",
        last_updated=assume_utc(dataset.last_record_at) if dataset.last_record_at is not None else None,
        record_count=dataset.record_count,
    )


def load_entries(request: Request, session: Session) -> tuple[list[site_search.Entry], dict[str, Department]]:
    departments = {d.id: d for d in session.scalars(select(Department))}
    visible = visible_datasets(session, caller_of(request))
    entries = [entry_of(d, access, departments.get(d.department_id)) for d, access in visible]
    return entries, departments


def uses_since(session: Session, since: datetime, dataset_ids: Sequence[str]) -> dict[str, int]:
    """Requests per dataset since ``since`` (the counters flushed so far), for the given ids only."""
    if not dataset_ids:
        return {}
    statement = (
        select(UsageCounter.dataset_id, func.sum(UsageCounter.requests))
        .where(UsageCounter.hour >= since, UsageCounter.dataset_id.in_(list(dataset_ids)))
        .group_by(UsageCounter.dataset_id)
    )
    return {str(dataset_id): int(total or 0) for dataset_id, total in session.execute(statement)}


# --- what templates show ------------------------------------------------------------------------


def department_name(departments: Mapping[str, Department], department_id: str, lang: Lang) -> str:
    department = departments.get(department_id)
    if department is None:
        return department_id
    return department.name_ja if lang == "ja" else department.name_en


def facet_label(facet: str, value: str, departments: Mapping[str, Department], lang: Lang) -> str:
    if facet == "department":
        return department_name(departments, value, lang)
    if facet == "stars":
        return value + message("stars.suffix", lang)
    if facet == "license":
        return LICENSES.get(value, (value, ""))[0]
    return value


def dataset_view(
    entry: site_search.Entry, departments: Mapping[str, Department], lang: Lang
) -> dict[str, Any]:
    return {
        "id": entry.id,
        "href": site_path(lang, "/datasets/" + quote(entry.id, safe="")),
        "title": entry.title_ja if lang == "ja" else entry.title_en or entry.title_ja,
        "description": entry.description_ja if lang == "ja" else entry.description_en or entry.description_ja,
        "department": department_name(departments, entry.department, lang),
        "keywords": entry.keywords,
        "formats": entry.formats,
        "stars": entry.stars,
        "license": entry.license,
        "internal": entry.internal,
        "updated": entry.last_updated.astimezone(UTC).strftime("%Y-%m-%d") if entry.last_updated else None,
        "records": entry.record_count,
    }


# --- home ---------------------------------------------------------------------------------------


def _home(request: Request, ctx: ContextDep, session: Session, lang: Lang) -> Response:
    entries, departments = load_entries(request, session)
    since = datetime.now(UTC) - USAGE_WINDOW
    uses = uses_since(session, since, [e.id for e in entries])
    counts = site_search.department_counts(entries)
    listed = sorted(counts.items(), key=lambda item: (-item[1], department_name(departments, item[0], lang)))
    context = {
        "count": len(entries),
        "newest": [dataset_view(e, departments, lang) for e in site_search.newest(entries, NEWEST_COUNT)],
        "most_used": [
            {**dataset_view(e, departments, lang), "uses": n}
            for e, n in site_search.most_used(entries, uses, MOST_USED_COUNT)
        ],
        "departments": [
            {
                "name": department_name(departments, department_id, lang),
                "count": n,
                "href": site_search.SearchQuery()
                .adding("department", department_id)
                .href(site_path(lang, "/search")),
            }
            for department_id, n in listed
        ],
    }
    return render(request, "home.html", context, lang=lang)


@router.get("/")
def home_ja(request: Request, ctx: ContextDep, session: SessionDep) -> Response:
    return _home(request, ctx, session, "ja")


@router.get("/en/")
def home_en(request: Request, ctx: ContextDep, session: SessionDep) -> Response:
    return _home(request, ctx, session, "en")


@router.get("/en")
def home_en_bare() -> Response:
    return RedirectResponse("/en/", status_code=308)


# --- search -------------------------------------------------------------------------------------


def _search(request: Request, session: Session, lang: Lang) -> Response:
    path = site_path(lang, "/search")
    parsed = site_search.parse_query(request.query_params.multi_items())
    if isinstance(parsed, site_search.Refusal):
        problem = parsed.ja if lang == "ja" else parsed.en
        context: dict[str, Any] = {
            "error": problem,
            "q": "",
            "result": None,
            "facets": [],
            "selected": [],
            "pager": [],
        }
        return render(request, "search.html", context, lang=lang, status_code=400)
    entries, departments = load_entries(request, session)
    result = site_search.search(entries, parsed)
    facets = [
        {
            "name": facet,
            "values": [
                {
                    "value": v.value,
                    "label": facet_label(facet, v.value, departments, lang),
                    "count": v.count,
                    "selected": v.selected,
                    "href": (
                        parsed.removing(facet, v.value) if v.selected else parsed.adding(facet, v.value)
                    ).href(path),
                }
                for v in values
            ],
        }
        for facet, values in result.facets.items()
        if values
    ]
    selected = [
        {
            "facet": facet,
            "label": facet_label(facet, value, departments, lang),
            "href": parsed.removing(facet, value).href(path),
        }
        for facet, value in parsed.selected
    ]
    context = {
        "error": None,
        "q": parsed.q,
        "hidden": parsed.selected,
        "result": {
            "total": result.total,
            "page": result.page,
            "pages": result.pages,
            "datasets": [dataset_view(e, departments, lang) for e in result.entries],
        },
        "facets": facets,
        "selected": selected,
        "clear_href": parsed.without_filters().href(path),
        "pager": _pager(parsed, result.page, result.pages, path),
    }
    return render(request, "search.html", context, lang=lang)


def _pager(query: site_search.SearchQuery, page: int, pages: int, path: str) -> list[dict[str, Any]]:
    """Links to the first, last and nearby pages (a long result never lists a thousand links)."""
    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    return [{"number": n, "href": query.href(path, page=n), "current": n == page} for n in shown]


@router.get("/search")
def search_ja(request: Request, session: SessionDep) -> Response:
    return _search(request, session, "ja")


@router.get("/en/search")
def search_en(request: Request, session: SessionDep) -> Response:
    return _search(request, session, "en")


# --- login --------------------------------------------------------------------------------------


def same_origin(request: Request, public_base: str) -> bool:
    """Whether a form post comes from this site: its ``Origin`` (else its ``Referer``) names this
    origin or the public one. Browsers send ``Origin`` with every cross-site POST, so a post with
    neither comes from a program posting on its own behalf, which cannot log a visitor in to an
    account of its choosing (login CSRF) and passes."""
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        parts = urlsplit(referer)
        claimed = f"{parts.scheme}://{parts.netloc}"
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}".lower()}
    public = urlsplit(public_base)
    if public.scheme and public.netloc:
        own.add(f"{public.scheme}://{public.netloc}".lower())
    return claimed.lower() in own


def login_refusal(result: Credential | KeyRefusal) -> str | None:
    """The message key of why a credential may not log in to the site, or None when it may: only a
    department's credential that reads records (the site shows nothing more to anyone else)."""
    if isinstance(result, KeyRefusal):
        return "login.bad"
    if result.caller.kind is not CallerKind.department or not result.allows(SCOPE_READ):
        return "login.not_department"
    return None


def _login_page(request: Request, lang: Lang, *, error: str | None, status_code: int = 200) -> Response:
    return render(request, "login.html", {"error": error}, lang=lang, status_code=status_code)


async def _form_key(request: Request) -> str | None:
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY:
        return None
    try:
        fields = dict(parse_qsl(body.decode("utf-8", errors="replace"), max_num_fields=5))
    except ValueError:  # more fields than a login form has
        return None
    key = fields.get("key", "").strip()
    return key or None


def _authenticate(ctx: PublishContext, key: str) -> Credential | KeyRefusal:
    with ctx.sessions() as session:
        return authenticate_credential(session, key)


async def _login(request: Request, ctx: ContextDep, lang: Lang) -> Response:
    if not same_origin(request, ctx.base_url(request)):
        return _login_page(request, lang, error="login.cross_site", status_code=403)
    key = await _form_key(request)
    result: Credential | KeyRefusal = KeyRefusal.malformed
    if key is not None:
        result = await anyio.to_thread.run_sync(_authenticate, ctx, key)
    error = login_refusal(result)
    if error is not None:
        # Counted against the sender's address like a refused header key. An anonymous sender has
        # spent one request from that allowance already; a signed-in one spent it from its key's.
        if caller_of(request).kind is not CallerKind.anonymous:
            decision: Decision = request.scope["state"][REFUSAL_CHARGE_KEY]()
            if not decision.allowed:
                return _login_page(request, lang, error="login.too_many", status_code=429)
        return _login_page(request, lang, error=error, status_code=403)
    response = RedirectResponse(site_path(lang, "/"), status_code=303)
    secure = request.url.scheme == "https" or ctx.base_url(request).startswith("https://")
    # A browser-session cookie (no Max-Age): closing the browser logs out; the credential's own
    # expiry and revocation still apply on every request.
    response.set_cookie(SESSION_COOKIE, str(key), httponly=True, samesite="strict", path="/", secure=secure)
    return response


@router.get("/login")
def login_form_ja(request: Request) -> Response:
    return _login_page(request, "ja", error=None)


@router.get("/en/login")
def login_form_en(request: Request) -> Response:
    return _login_page(request, "en", error=None)


@router.post("/login")
async def login_ja(request: Request, ctx: ContextDep) -> Response:
    return await _login(request, ctx, "ja")


@router.post("/en/login")
async def login_en(request: Request, ctx: ContextDep) -> Response:
    return await _login(request, ctx, "en")


def _logout(request: Request, ctx: ContextDep, lang: Lang) -> Response:
    if not same_origin(request, ctx.base_url(request)):
        return _login_page(request, lang, error="login.cross_site", status_code=403)
    response = RedirectResponse(site_path(lang, "/"), status_code=303)
    response.headers.append("set-cookie", CLEAR_SESSION_COOKIE)
    return response


@router.post("/logout")
def logout_ja(request: Request, ctx: ContextDep) -> Response:
    return _logout(request, ctx, "ja")


@router.post("/en/logout")
def logout_en(request: Request, ctx: ContextDep) -> Response:
    return _logout(request, ctx, "en")
