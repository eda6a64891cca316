"""Interactive API documentation (Swagger UI) that works on a network without the public internet.

FastAPI's own ``/docs`` and ``/redoc`` pages load their scripts and styles from a public CDN, so on a
closed city network they stay blank. This page loads Swagger UI from the service's own
``/static/vendor/swagger-ui/`` (npm-pinned, see ``web_assets``), the description from the app's own
``/openapi.json``, and nothing else: its content security policy allows this origin only, plus the
one inline initializer by its hash. Swagger UI's online spec validator is switched off (it would
send the description to validator.swagger.io), and so is reading a description URL from the query
string (a link could otherwise make the page render someone else's description).

The page has a Japanese and an English version (title, introduction, the way back to the portal);
the operations themselves are described in the API's own words.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Final, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse

from cityos.kernel.web_assets import VENDOR_PREFIX

DocsLang = Literal["ja", "en"]
SWAGGER_UI: Final = f"{VENDOR_PREFIX}/swagger-ui"

# Reads its settings from the page (no templating inside a script), so its hash never changes.
INITIALIZER: Final = """
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    validatorUrl: null,
    queryConfigEnabled: false
  });
})();
"""
_INITIALIZER_HASH: Final = base64.b64encode(hashlib.sha256(INITIALIZER.encode()).digest()).decode()

# Swagger UI sets element styles from script and draws its icons as data: images.
CONTENT_SECURITY_POLICY: Final = (
    f"default-src 'self'; script-src 'self' 'sha256-{_INITIALIZER_HASH}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_STYLE: Final = """
body { margin: 0; font-family: system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif; color: #1a1a1a; }
.docs-intro { max-width: 1460px; margin: 0 auto; padding: 16px 20px 0; }
.docs-intro h1 { font-size: 1.6rem; margin: 0 0 8px; }
.docs-intro p { margin: 0 0 8px; line-height: 1.6; }
.docs-intro nav ul { list-style: none; display: flex; gap: 1.5em; margin: 0 0 8px; padding: 0; }
.docs-intro a { color: #0b57d0; }
"""

_UI_TEXT: Final[dict[str, dict[DocsLang, str]]] = {
    "home": {"ja": "ポータルのトップへ戻る", "en": "Back to the portal"},
    "nav": {"ja": "API ドキュメントのナビゲーション", "en": "API documentation navigation"},
    "other": {"ja": "English", "en": "日本語"},
    "other_label": {"ja": "English version of this page", "en": "このページの日本語版"},
    "raw": {"ja": "OpenAPI 記述（JSON）", "en": "OpenAPI description (JSON)"},
    "noscript": {
        "ja": "対話式のドキュメントには JavaScript が必要です。API の記述は次の JSON で読めます:",
        "en": "The interactive documentation needs JavaScript. The API description is available as JSON:",
    },
}


@dataclass(frozen=True)
class DocsText:
    """A service's own words on its documentation page, in both languages."""

    title: Mapping[DocsLang, str]
    intro: Mapping[DocsLang, str]


@dataclass(frozen=True)
class DocsLinks:
    """Where the page points: the description, the other language's page, the portal (if any)."""

    openapi_url: str
    other_lang_url: str
    home_url: str | None = None


def docs_language(path: str, lang_parameter: str | None) -> DocsLang:
    """English under ``/en/`` or with ``?lang=en``; Japanese, the portal's default, otherwise."""
    if path == "/en" or path.startswith("/en/") or lang_parameter == "en":
        return "en"
    return "ja"


def docs_html(text: DocsText, links: DocsLinks, lang: DocsLang) -> str:
    """The documentation page in ``lang``; every value is escaped."""
    other: DocsLang = "en" if lang == "ja" else "ja"

    def ui(key: str) -> str:
        return escape(_UI_TEXT[key][lang])

    title = escape(text.title[lang])
    openapi = escape(links.openapi_url)
    home = f'<li><a href="{escape(links.home_url)}">{ui("home")}</a></li>' if links.home_url else ""
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css">
<link rel="alternate" hreflang="{other}" href="{escape(links.other_lang_url)}">
<style>{_STYLE}</style>
</head>
<body>
<header class="docs-intro">
<nav aria-label="{ui("nav")}"><ul>
{home}<li><a href="{escape(links.other_lang_url)}" hreflang="{other}" lang="{other}" aria-label="{ui("other_label")}">{ui("other")}</a></li>
<li><a href="{openapi}">{ui("raw")}</a></li>
</ul></nav>
<h1>{title}</h1>
<p>{escape(text.intro[lang])}</p>
</header>
<main>
<noscript><p>{ui("noscript")} <a href="{openapi}">{openapi}</a></p></noscript>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
</main>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script>{INITIALIZER}</script>
</body>
</html>
"""


def docs_headers(lang: DocsLang) -> dict[str, str]:
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Content-Language": lang,
    }


def install_api_docs(
    app: Starlette,
    text: DocsText,
    *,
    openapi_url: str,
    paths: Mapping[DocsLang, str],
    home_urls: Mapping[DocsLang, str] | None = None,
) -> None:
    """Serve the documentation page at ``paths`` (``/docs`` in Japanese and, with ``?lang=en``, in
    English; an ``en`` path serves English too). ``home_urls`` links each language back to the portal.
    The app's vendor assets must include ``swagger-ui`` (``web_assets.mount_vendor_assets``)."""
    ja_path = paths["ja"]
    en_path = paths.get("en", f"{ja_path}?lang=en")

    async def page(request: Request) -> HTMLResponse:
        lang = docs_language(request.url.path, request.query_params.get("lang"))
        root = request.scope.get("root_path", "")
        links = DocsLinks(
            openapi_url=root + openapi_url,
            other_lang_url=root + (en_path if lang == "ja" else ja_path),
            home_url=None if home_urls is None else home_urls.get(lang),
        )
        return HTMLResponse(docs_html(text, links, lang), headers=docs_headers(lang))

    for path in dict.fromkeys(paths.values()):
        app.add_route(path, page, methods=["GET"], include_in_schema=False)
