"""OGC API - Features (Part 1: Core) documents: landing page, conformance, collections, features. Pure.

The routes in ``ogc_api`` read the catalog and decide access; everything they answer is built here
from plain values, so the standard's rules (links and their media types, ``limit`` bounds,
``bbox`` and ``datetime`` syntax, which query parameters exist) are tested without HTTP or a
database. A collection is a located dataset; a feature is one of its records, identified by its
record key; coordinates are CRS84 (longitude, latitude), as in every GeoJSON answer of the API.

Query parameters a request does not define are refused (400 naming the parameter) rather than
ignored, as the standard permits: a misspelt filter silently ignored would return the whole
collection to a client that believes it filtered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode

import orjson

from cityos.domain.readmodel.filters import ParamProblem, parse_media_range
from cityos.domain.readmodel.query import RESERVED

PREFIX: Final = "/ogc"
CRS84: Final = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GREGORIAN: Final = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
_CONF: Final = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf"
CONFORMANCE: Final = (f"{_CONF}/core", f"{_CONF}/geojson", f"{_CONF}/html", f"{_CONF}/oas30")

JSON: Final = "application/json"
GEOJSON: Final = "application/geo+json"
HTML: Final = "text/html"
OPENAPI_JSON: Final = "application/vnd.oai.openapi+json;version=3.0"

DEFAULT_LIMIT: Final = 10
MAX_LIMIT: Final = 10_000
# The items page's own parameters; anything else must be a declared property of the collection.
ITEMS_PARAMETERS: Final = frozenset({"limit", "offset", "bbox", "datetime", "f", "lang"})
# Parameters of the other resources (landing page, conformance, collections, one feature).
PAGE_PARAMETERS: Final = frozenset({"f", "lang"})

Representation = Literal["json", "html"]
Lang = Literal["ja", "en"]

_JSON_TYPES = (JSON, GEOJSON, "application/vnd.geo+json", "application/schema+json", "application/*")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# RFC 3339 date-time: seconds and a zone are required, the fraction is not.
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_OPEN = ("", "..")


# --- negotiation ----------------------------------------------------------------------------------


def representation(f: str | None, accept: str | None) -> Representation | ParamProblem:
    """JSON or HTML: ``f`` wins, then the ``Accept`` header; JSON when neither says.

    HTML only when the client ranks ``text/html`` above every JSON type: GIS clients send JSON
    types or ``*/*``, browsers send ``text/html`` first and ``*/*`` at a lower quality.
    """
    if f is not None:
        if f not in ("json", "html"):
            return ParamProblem("f", "expected json or html")
        return "html" if f == "html" else "json"
    html_q, json_q = -1.0, -1.0
    for position, media_range in enumerate((accept or "").split(",")):
        media, quality = parse_media_range(media_range)
        # Between equal qualities the client's own order decides: earlier ranks a little higher.
        rank = quality - position * 1e-6
        if media in (HTML, "application/xhtml+xml"):
            html_q = max(html_q, rank)
        elif media in _JSON_TYPES or media == "*/*":
            json_q = max(json_q, rank if media != "*/*" else rank - 0.5)
    return "html" if html_q > 0 and html_q > json_q else "json"


def language(raw: str | None) -> Lang | ParamProblem:
    if raw is None or raw == "ja":
        return "ja"
    if raw == "en":
        return "en"
    return ParamProblem("lang", "expected ja or en")


def unknown_parameter(names: Iterable[str], known: Iterable[str]) -> ParamProblem | None:
    """The first query parameter not in ``known``, as the 400 that names it."""
    allowed = set(known)
    for name in names:
        if name not in allowed:
            return ParamProblem(name, "not a parameter of this resource (OGC API - Features answers 400)")
    return None


# --- links ----------------------------------------------------------------------------------------


def href(base_url: str, path: str, params: Sequence[tuple[str, str]] = ()) -> str:
    url = f"{base_url.rstrip('/')}{path}"
    return f"{url}?{urlencode(list(params), quote_via=quote)}" if params else url


def link(url: str, rel: str, media_type: str, title: str) -> dict[str, str]:
    return {"href": url, "rel": rel, "type": media_type, "title": title}


def _with(params: Sequence[tuple[str, str]], **replace: str | None) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in params if k not in replace]
    return kept + [(k, v) for k, v in replace.items() if v is not None]


def self_and_alternate(
    base_url: str,
    path: str,
    params: Sequence[tuple[str, str]],
    chosen: Representation,
    json_type: str = JSON,
) -> list[dict[str, str]]:
    """``self`` in the representation answered, ``alternate`` in the other one."""
    as_json = (href(base_url, path, _with(params, f="json")), json_type, "This document as JSON")
    as_html = (href(base_url, path, _with(params, f="html")), HTML, "This document as HTML")
    mine, other = (as_json, as_html) if chosen == "json" else (as_html, as_json)
    return [link(mine[0], "self", mine[1], mine[2]), link(other[0], "alternate", other[1], other[2])]


def collections_path(collection_id: str | None = None) -> str:
    if collection_id is None:
        return f"{PREFIX}/collections"
    return f"{PREFIX}/collections/{quote(collection_id, safe='')}"


def landing(base_url: str, chosen: Representation, lang: Lang) -> dict[str, Any]:
    """The landing page: what the API is and where its parts are."""
    params = [("lang", "en")] if lang == "en" else []
    return {
        "title": "CityOS オープンデータ OGC API - Features"
        if lang == "ja"
        else "CityOS Open Data OGC API - Features",
        "description": "市が公開する位置情報付きデータセットを、OGC API - Features で提供します。"
        if lang == "ja"
        else "The city's located open datasets, served as OGC API - Features.",
        "links": [
            *self_and_alternate(base_url, PREFIX, params, chosen),
            link(f"{base_url}{PREFIX}/api", "service-desc", OPENAPI_JSON, "The API definition (OpenAPI 3.0)"),
            link(f"{base_url}/docs", "service-doc", HTML, "The API documentation"),
            link(f"{base_url}{PREFIX}/conformance", "conformance", JSON, "Conformance classes"),
            link(f"{base_url}{PREFIX}/collections", "data", JSON, "The feature collections"),
        ],
    }


def conformance() -> dict[str, Any]:
    return {"conformsTo": list(CONFORMANCE)}


# --- collections ----------------------------------------------------------------------------------


def text_of(value: Any, lang: Lang, fallback: str) -> str:
    """The ``lang`` text of a ja/en pair, else the other language's, else ``fallback``."""
    if isinstance(value, Mapping):
        other: Lang = "en" if lang == "ja" else "ja"
        for candidate in (value.get(lang), value.get(other)):
            if isinstance(candidate, str) and candidate:
                return candidate
    return value if isinstance(value, str) and value else fallback


@dataclass(frozen=True, slots=True)
class CollectionFacts:
    """What a collection document says of one dataset, read by the route."""

    id: str
    meta: Mapping[str, Any]
    # (min lon, min lat, max lon, max lat) of the live located records; None when none is located.
    bbox: tuple[float, float, float, float] | None
    # (first, last) value of the dataset's date/time property; None when it has none.
    interval: tuple[str | None, str | None] | None
    # The property ``datetime`` filters on, when the dataset has one.
    temporal_property: str | None


def collection(facts: CollectionFacts, base_url: str, chosen: Representation, lang: Lang) -> dict[str, Any]:
    """One collection's description (``/collections/{id}`` and an entry of ``/collections``)."""
    path = collections_path(facts.id)
    params = [("lang", "en")] if lang == "en" else []
    items = f"{path}/items"
    body: dict[str, Any] = {
        "id": facts.id,
        "title": text_of(facts.meta.get("title"), lang, facts.id),
        "description": text_of(facts.meta.get("description"), lang, ""),
        "links": [
            *self_and_alternate(base_url, path, params, chosen),
            link(href(base_url, items, params), "items", GEOJSON, "The features as GeoJSON"),
            link(href(base_url, items, [*params, ("f", "html")]), "items", HTML, "The features as HTML"),
            # "related", not "describedby": GIS clients read a describedby link as the features' schema.
            link(
                f"{base_url}/api/v1/datasets/{quote(facts.id, safe='')}",
                "related",
                JSON,
                "The dataset in the open-data API (schema, licence, quality)",
            ),
            link(
                f"{base_url}{'' if lang == 'ja' else '/en'}/datasets/{quote(facts.id, safe='')}",
                "related",
                HTML,
                "The dataset's page on the portal",
            ),
        ],
        "itemType": "feature",
        "crs": [CRS84],
    }
    license_id = facts.meta.get("license")
    if isinstance(license_id, str) and license_id:
        body["links"].append(link(_license_url(license_id), "license", HTML, license_id))
    extent: dict[str, Any] = {}
    if facts.bbox is not None:
        extent["spatial"] = {"bbox": [list(facts.bbox)], "crs": CRS84}
    if facts.interval is not None:
        extent["temporal"] = {"interval": [list(facts.interval)], "trs": GREGORIAN}
    if extent:
        body["extent"] = extent
    keywords = facts.meta.get("keywords")
    if isinstance(keywords, list):
        body["keywords"] = [k for k in keywords if isinstance(k, str)]
    return body


def _license_url(license_id: str) -> str:
    if license_id.upper() == "CC-BY-4.0":
        return "https://creativecommons.org/licenses/by/4.0/"
    return f"https://spdx.org/licenses/{quote(license_id, safe='')}.html"


def collections(
    entries: Iterable[CollectionFacts], base_url: str, chosen: Representation, lang: Lang
) -> dict[str, Any]:
    params = [("lang", "en")] if lang == "en" else []
    return {
        "links": self_and_alternate(base_url, collections_path(), params, chosen),
        "collections": [collection(facts, base_url, chosen, lang) for facts in entries],
    }


# --- the temporal property and ``datetime`` -------------------------------------------------------


def temporal_property(schema: Mapping[str, Any] | None, readable: frozenset[str] | None) -> str | None:
    """The first declared string property with a ``date`` or ``date-time`` format the caller may
    read: what ``datetime`` filters on and the temporal extent spans."""
    properties = schema.get("properties") if schema is not None else None
    if not isinstance(properties, Mapping):
        return None
    for name, rule in properties.items():
        if not isinstance(rule, Mapping) or rule.get("format") not in ("date", "date-time"):
            continue
        types = rule.get("type")
        if (types == "string" or (isinstance(types, list) and "string" in types)) and (
            readable is None or name in readable
        ):
            return str(name)
    return None


def property_format(schema: Mapping[str, Any] | None, name: str) -> str:
    properties = schema.get("properties") if schema is not None else None
    rule = properties.get(name) if isinstance(properties, Mapping) else None
    return str(rule.get("format")) if isinstance(rule, Mapping) else ""


@dataclass(frozen=True, slots=True)
class TimeFilter:
    """A parsed ``datetime``: an instant (``start == end``, ``instant``), or an interval whose
    open ends are None."""

    start: str | None
    end: str | None
    instant: bool = False


def _moment(text: str) -> str | ParamProblem:
    if _DATE.fullmatch(text):
        try:
            date.fromisoformat(text)
        except ValueError:
            return ParamProblem("datetime", f"{text!r} is not a calendar date")
        return text
    if _DATE_TIME.fullmatch(text):
        try:
            datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        except ValueError:
            return ParamProblem("datetime", f"{text!r} is not a valid date-time")
        return text.upper()
    return ParamProblem(
        "datetime", f"{text!r}: expected an RFC 3339 date-time (2025-04-01T09:00:00Z) or a date (2025-04-01)"
    )


def parse_datetime(raw: str) -> TimeFilter | ParamProblem:
    """``datetime``: an instant, a closed interval ``a/b``, or a half-open one (``../b``, ``a/..``)."""
    if "/" not in raw:
        instant = _moment(raw.strip())
        return instant if isinstance(instant, ParamProblem) else TimeFilter(instant, instant, instant=True)
    first, _, second = raw.partition("/")
    if "/" in second:
        return ParamProblem("datetime", "an interval has one '/'")
    if first.strip() in _OPEN and second.strip() in _OPEN:
        return ParamProblem("datetime", "an interval needs at least one end")
    ends: list[str | None] = []
    for part in (first.strip(), second.strip()):
        if part in _OPEN:
            ends.append(None)
            continue
        moment = _moment(part)
        if isinstance(moment, ParamProblem):
            return moment
        ends.append(moment)
    start, end = ends
    if start is not None and end is not None and _instant_of(start) > _instant_of(end):
        return ParamProblem("datetime", "the interval ends before it starts")
    return TimeFilter(start, end)


def _instant_of(moment: str) -> datetime:
    if _DATE.fullmatch(moment):
        return datetime.fromisoformat(moment).replace(tzinfo=UTC)
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


_ZONE = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


def zone_of(example: str | None) -> str | None:
    """The time zone a date-time is written in (``Z`` or ``+09:00``), None when it names none."""
    found = _ZONE.search(example.upper()) if example is not None else None
    return found.group(1) if found else None


def _in_zone(moment: str, zone: str | None) -> str:
    """A date-time bound written in ``zone``, so that it compares as text with records written there."""
    if zone is None:
        return moment
    offset = timedelta(0) if zone == "Z" else datetime.strptime(zone[1:], "%H:%M") - datetime(1900, 1, 1)
    target = timezone(-offset if zone.startswith("-") else offset)
    text = _instant_of(moment).astimezone(target).isoformat()
    return text[:-6] + "Z" if zone == "Z" else text


def time_conditions(name: str, fmt: str, when: TimeFilter, zone: str | None = None) -> list[tuple[str, str]]:
    """``when`` on the property ``name`` as records-query parameters (``name=``, ``name[gte]=`` …),
    so the one records query parser and builder serve it.

    Values are compared as the ISO text the records carry: a ``date`` property by its day (a
    date-time bound counts by its date); a ``date-time`` property with each date-time bound first
    written in ``zone``, the time zone the collection's records are written in, and a bare date
    bound covering that whole day on the records' own clock.
    """
    if fmt == "date":
        start = None if when.start is None else when.start[:10]
        end = None if when.end is None else when.end[:10]
        if when.instant:
            return [(name, str(start))]
        return [
            *([(f"{name}[gte]", start)] if start is not None else []),
            *([(f"{name}[lte]", end)] if end is not None else []),
        ]
    conditions: list[tuple[str, str]] = []
    if when.instant and when.start is not None and not _DATE.fullmatch(when.start):
        return [(name, _in_zone(when.start, zone))]
    if when.start is not None:
        start_text = f"{when.start}T00:00" if _DATE.fullmatch(when.start) else _in_zone(when.start, zone)
        conditions.append((f"{name}[gte]", start_text))
    if when.end is not None:
        if _DATE.fullmatch(when.end):
            following = date.fromisoformat(when.end) + timedelta(days=1)
            conditions.append((f"{name}[lt]", f"{following.isoformat()}T00:00"))
        else:
            conditions.append((f"{name}[lte]", _in_zone(when.end, zone)))
    return conditions


# --- items ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemsRequest:
    """An items request's own parameters, checked; ``filters`` go to the records query parser."""

    limit: int
    offset: int
    filters: list[tuple[str, str]]
    time: TimeFilter | None


def _integer(raw: str, name: str, low: int) -> int | ParamProblem:
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        return ParamProblem(name, f"expected an integer ≥ {low}, got {raw[:40]!r}")
    value = int(raw)
    return value if value >= low else ParamProblem(name, f"must be at least {low}")


def items_request(
    params: Sequence[tuple[str, str]], properties: Iterable[str], *, has_time: bool
) -> ItemsRequest | ParamProblem:
    """The parameters of ``/collections/{id}/items``: paging, ``bbox``, ``datetime`` and equality on
    ``properties`` (the declared properties the caller may read). ``limit`` above the maximum is
    answered with the maximum, as the standard asks."""
    declared = {name for name in properties if name not in RESERVED}
    problem = unknown_parameter((name for name, _ in params), ITEMS_PARAMETERS | declared)
    if problem is not None:
        return problem
    seen: set[str] = set()
    for name, _ in params:
        if name in seen:
            return ParamProblem(name, "given more than once")
        seen.add(name)
    values = dict(params)
    limit = _integer(values["limit"], "limit", 1) if "limit" in values else DEFAULT_LIMIT
    if isinstance(limit, ParamProblem):
        return limit
    offset = _integer(values["offset"], "offset", 0) if "offset" in values else 0
    if isinstance(offset, ParamProblem):
        return offset
    filters = [(name, value) for name, value in params if name in declared]
    if "bbox" in values:
        count = len(values["bbox"].split(","))
        if count == 6:
            return ParamProblem(
                "bbox", "only two-dimensional boxes (4 numbers): the collections have no height"
            )
        filters.append(("bbox", values["bbox"]))
    time: TimeFilter | None = None
    if "datetime" in values:
        if not has_time:
            return ParamProblem("datetime", "this collection has no date or time property to filter on")
        parsed = parse_datetime(values["datetime"])
        if isinstance(parsed, ParamProblem):
            return parsed
        time = parsed
    return ItemsRequest(min(limit, MAX_LIMIT), offset, filters, time)


def items_links(
    base_url: str,
    collection_id: str,
    params: Sequence[tuple[str, str]],
    chosen: Representation,
    *,
    limit: int,
    offset: int,
    returned: int,
    matched: int,
) -> list[dict[str, str]]:
    """``self``/``alternate``, ``next`` and ``prev`` by offset (every other parameter kept), and the
    ``collection``."""
    path = f"{collections_path(collection_id)}/items"
    links = self_and_alternate(base_url, path, params, chosen, json_type=GEOJSON)
    media = GEOJSON if chosen == "json" else HTML
    kept = [(k, v) for k, v in params if k not in ("limit", "offset")]
    if offset > 0:
        previous = [*kept, ("limit", str(limit)), ("offset", str(max(0, offset - limit)))]
        links.append(link(href(base_url, path, previous), "prev", media, "Previous page"))
    if returned and offset + returned < matched:
        following = [*kept, ("limit", str(limit)), ("offset", str(offset + returned))]
        links.append(link(href(base_url, path, following), "next", media, "Next page"))
    lang = [("lang", v) for k, v in params if k == "lang"]
    links.append(
        link(href(base_url, collections_path(collection_id), lang), "collection", JSON, "The collection")
    )
    return links


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


_COLLECTION_HEAD: Final = b'{"type":"FeatureCollection","features":['


def feature_collection(
    features: bytes, *, matched: int, returned: int, stamp: str, links: list[dict[str, str]]
) -> bytes:
    """The items document around ``features`` (comma-separated Feature objects, already encoded)."""
    tail = orjson.dumps(
        {"numberMatched": matched, "numberReturned": returned, "timeStamp": stamp, "links": links}
    )
    return _COLLECTION_HEAD + features + b"]," + tail[1:]


def feature_links(
    base_url: str, collection_id: str, feature_id: str, chosen: Representation, lang: Lang
) -> list[dict[str, str]]:
    params = [("lang", "en")] if lang == "en" else []
    path = f"{collections_path(collection_id)}/items/{quote(feature_id, safe='')}"
    return [
        *self_and_alternate(base_url, path, params, chosen, json_type=GEOJSON),
        link(href(base_url, collections_path(collection_id), params), "collection", JSON, "The collection"),
    ]


# --- the API definition ---------------------------------------------------------------------------


def _parameter(
    name: str, where: str, description: str, schema: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "description": description,
            "schema": schema, **extra}  # fmt: skip


def _ok(description: str, *media_types: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {m: {"schema": {"type": "object"}} for m in media_types},
        },
        "400": {"$ref": "#/components/responses/BadRequest"},
    }


def openapi_document(base_url: str) -> dict[str, Any]:
    """The OGC part of the API as an OpenAPI 3.0 document (the ``service-desc`` of the landing page).

    Written out rather than derived from the service's own OpenAPI 3.1 document: GIS clients read
    3.0, and the ``limit`` maximum and parameter styles they look for are stated here as such.
    """
    ref = "#/components/parameters/"
    common = [{"$ref": f"{ref}f"}, {"$ref": f"{ref}lang"}]
    collection_id = {"$ref": f"{ref}collectionId"}
    not_found = {"404": {"$ref": "#/components/responses/NotFound"}}

    def get(
        summary: str, operation: str, parameters: list[dict[str, Any]], responses: dict[str, Any]
    ) -> dict[str, Any]:
        return {"get": {"summary": summary, "operationId": operation, "tags": ["OGC API - Features"],
                        "parameters": parameters, "responses": responses}}  # fmt: skip

    return {
        "openapi": "3.0.3",
        "info": {
            "title": "CityOS Open Data - OGC API - Features",
            "version": "1.0.0",
            "description": "The city's located open datasets as OGC API - Features (Part 1: Core). "
            "Filter items by bbox, datetime (collections with a date or time property) and equality on "
            "any declared property (?名称=...). Unknown parameters are answered with 400.",
            "license": {
                "name": "CC BY 4.0 unless a dataset says otherwise",
                "url": "https://creativecommons.org/licenses/by/4.0/",
            },
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "paths": {
            PREFIX: get("Landing page", "getLandingPage", common, _ok("The landing page", JSON, HTML)),
            f"{PREFIX}/conformance": get(
                "Conformance classes", "getConformanceDeclaration", common, _ok("Conformance", JSON, HTML)
            ),
            f"{PREFIX}/collections": get(
                "Feature collections", "getCollections", common, _ok("The collections", JSON, HTML)
            ),
            f"{PREFIX}/collections/{{collectionId}}": get(
                "One collection",
                "describeCollection",
                [collection_id, *common],
                _ok("The collection", JSON, HTML) | not_found,
            ),
            f"{PREFIX}/collections/{{collectionId}}/items": get(
                "Features of a collection",
                "getFeatures",
                [
                    collection_id,
                    *({"$ref": f"{ref}{n}"} for n in ("limit", "offset", "bbox", "datetime")),
                    *common,
                ],
                _ok("A GeoJSON FeatureCollection", GEOJSON, HTML) | not_found,
            ),
            f"{PREFIX}/collections/{{collectionId}}/items/{{featureId}}": get(
                "One feature",
                "getFeature",
                [collection_id, {"$ref": f"{ref}featureId"}, *common],
                _ok("A GeoJSON Feature", GEOJSON, HTML) | not_found,
            ),
        },
        "components": {
            "parameters": {
                "collectionId": _parameter("collectionId", "path", "A dataset id", {"type": "string"}),
                "featureId": _parameter("featureId", "path", "A record key", {"type": "string"}),
                "limit": _parameter(
                    "limit",
                    "query",
                    "Features per page; above the maximum, the maximum",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                    style="form",
                    explode=False,
                ),
                "offset": _parameter(
                    "offset", "query", "Features to skip", {"type": "integer", "minimum": 0, "default": 0}
                ),
                "bbox": _parameter(
                    "bbox",
                    "query",
                    "minLon,minLat,maxLon,maxLat in CRS84",
                    {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
                    style="form",
                    explode=False,
                ),
                "datetime": _parameter(
                    "datetime",
                    "query",
                    "An instant or an interval (a/b, '..' for an open end)",
                    {"type": "string"},
                    style="form",
                    explode=False,
                ),
                "f": _parameter("f", "query", "json or html", {"type": "string", "enum": ["json", "html"]}),
                "lang": _parameter("lang", "query", "ja or en", {"type": "string", "enum": ["ja", "en"]}),
            },
            "responses": {
                "BadRequest": {"description": "An unknown or malformed parameter; the body names it"},
                "NotFound": {"description": "No such collection or feature"},
            },
        },
    }
