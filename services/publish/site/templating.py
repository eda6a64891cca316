"""The site's frame: one Jinja2 environment over ``site/templates`` and ``render`` for every page.

Pages are server-rendered and read without JavaScript. Each page exists in Japanese at ``/...`` and
in English at ``/en/...``; ``site_path`` builds either, and every page links to its twin in the
other language. Templates get the language, the message lookup ``t`` (see ``messages``), ``tr`` for
a page's own pair of texts, ``url`` for a site path in the page's language, and the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from cityos.domain.access import Caller, CallerKind
from services.publish.callers import SESSION_COOKIE
from services.publish.context import caller_of
from services.publish.site.messages import LANGS, Lang, message

__all__ = ["LANGS", "Lang", "language_of", "page_headers", "render", "site_path", "switch_language_url"]

TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC_PREFIX: Final = "/static/site"
EN_PREFIX: Final = "/en"

# Pages load only what this origin serves: no CDN, no inline script. Inline styles are allowed
# because the vendored map library positions its tiles and markers through them.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)

environment: Final = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    # A misspelt variable is an error in tests, not an empty spot on a live page.
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)


def site_path(lang: Lang, path: str) -> str:
    """The site path of ``path`` (written as the Japanese one, ``/search``) in ``lang``:
    ``/search`` in Japanese, ``/en/search`` in English; the home page is ``/`` and ``/en/``."""
    if not path.startswith("/"):
        raise ValueError(f"site paths start with '/': {path!r}")
    if lang == "ja":
        return path
    return EN_PREFIX + path


def language_of(path: str) -> Lang:
    """Which language a request path is in (English under ``/en``, Japanese elsewhere)."""
    return "en" if path == EN_PREFIX or path.startswith(EN_PREFIX + "/") else "ja"


def _japanese_path(path: str) -> str:
    if language_of(path) == "en":
        return path[len(EN_PREFIX) :] or "/"
    return path


def switch_language_url(request: Request, lang: Lang) -> str:
    """The same page (query included) in the language other than ``lang``."""
    other: Lang = "en" if lang == "ja" else "ja"
    target = site_path(other, _japanese_path(request.url.path))
    query = request.url.query
    return f"{target}?{query}" if query else target


def static_url(path: str) -> str:
    return f"{STATIC_PREFIX}/{path.lstrip('/')}"


def _pick(lang: Lang, ja: str, en: str) -> str:
    return ja if lang == "ja" else en


def department_of(caller: Caller) -> str | None:
    """The department a caller acts for, when it is a department's credential."""
    return caller.principal if caller.kind is CallerKind.department else None


def page_context(request: Request, lang: Lang) -> dict[str, Any]:
    """What every template may use besides the page's own values."""
    caller = caller_of(request)
    other: Lang = "en" if lang == "ja" else "ja"
    return {
        "request": request,
        "lang": lang,
        "other_lang": other,
        "other_lang_url": switch_language_url(request, lang),
        "t": partial(message, lang=lang),
        "tr": partial(_pick, lang),
        "url": partial(site_path, lang),
        "static_url": static_url,
        "caller": caller,
        "department": department_of(caller),
        # Whether logging out would change anything: only a login cookie can be cleared.
        "session_cookie": SESSION_COOKIE in request.cookies,
        "current_path": request.url.path,
    }


def page_headers(request: Request) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Content-Language": language_of(request.url.path),
        "Vary": "Cookie, Authorization, X-API-Key",
    }
    # A page may list internal datasets to a logged-in department: never keep it in a shared cache.
    if caller_of(request).kind is not CallerKind.anonymous:
        headers["Cache-Control"] = "private, no-store"
    return headers


def render(
    request: Request,
    template_name: str,
    context: Mapping[str, Any],
    *,
    lang: Lang,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page ``template_name`` rendered with ``context`` in ``lang``, with the site's headers
    (content security policy, no sniffing; ``headers`` adds or overrides)."""
    template = environment.get_template(template_name)
    html = template.render({**page_context(request, lang), **context})
    return HTMLResponse(html, status_code=status_code, headers={**page_headers(request), **(headers or {})})
