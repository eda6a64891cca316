"""CKAN action API shapes: package, organization and resource dicts, search parsing. Pure.

The dicts carry the fields CKAN 2.9/2.10 returns that clients and harvesters read (ckanapi, the
national portal's CKAN harvester): names are our dataset ids, organizations are departments, and
every dataset has one resource per distribution format.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cityos.domain.access import FULL, ReadAccess
from cityos.domain.analysis.formats import PARQUET_MEDIA_TYPE
from cityos.domain.readmodel.query import MAX_Q_LENGTH
from cityos.kernel.db.models import Dataset, Department, SchemaVersionRow
from cityos.kernel.schemas import location_fields
from services.publish import param_caps
from services.publish.render import dataset_path, iso_utc

CKAN_VERSION = "2.10.4"
FORMATS = {"csv": "CSV", "json": "JSON", "geojson": "GeoJSON", "ndjson": "NDJSON", "parquet": "Parquet"}
MIMETYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "geojson": "application/geo+json",
    "ndjson": "application/x-ndjson",
    "parquet": PARQUET_MEDIA_TYPE,  # typed columns for analysis tools (DuckDB, pandas)
}
LICENSES = {
    "CC-BY-4.0": ("Creative Commons Attribution 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    "CC0-1.0": ("Creative Commons CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    "CC-BY-SA-4.0": ("Creative Commons Attribution Share-Alike 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    "ODbL-1.0": ("Open Data Commons Open Database License 1.0", "https://opendatacommons.org/licenses/odbl/1-0/"),
}  # fmt: skip
MAX_ROWS = 1000


class ActionError(Exception):
    """An action refused; ``kind`` is CKAN's ``__type`` and decides the HTTP status."""

    STATUS: ClassVar[dict[str, int]] = {
        "Not Found Error": 404,
        "Validation Error": 409,
        "Bad request": 400,
        "Authorization Error": 403,
    }
    # CKAN opens each message with the error's own title, and clients (ckanapi) cut the text at the
    # first ": " to recover the message proper.
    TITLES: ClassVar[dict[str, str]] = {
        "Not Found Error": "Not found",
        "Bad request": "Bad request",
        "Authorization Error": "Access denied",
    }

    def __init__(self, kind: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field

    @property
    def status(self) -> int:
        return self.STATUS.get(self.kind, 400)

    def body(self) -> dict[str, Any]:
        if self.kind == "Validation Error":
            # CKAN reports validation errors per field, as lists of messages.
            return {"__type": self.kind, self.field or "message": [self.message]}
        title = self.TITLES.get(self.kind, self.kind)
        return {"__type": self.kind, "message": f"{title}: {self.message}"}


def not_found(what: str) -> ActionError:
    return ActionError("Not Found Error", f"{what} not found")


def invalid(field: str, message: str) -> ActionError:
    return ActionError("Validation Error", message, field)


# --- parameter caps -----------------------------------------------------------------------------
# Over a cap, an action is refused with a Validation Error naming the parameter and the cap, before
# any work: the caps are those of the REST API (``param_caps``), plus CKAN's own parameters.

MAX_FQ_LENGTH = 1_000
MAX_FILTERS = 20  # fields in one datastore_search ``filters`` (or ``q``) object
# ``filters``, ``fields`` and ``q`` may arrive as JSON text (GET); the text may be longer than one
# value, and what it decodes to is checked against the same caps as a POSTed value.
MAX_JSON_TEXT_LENGTH = 20_000
JSON_PARAMETERS = frozenset({"filters", "fields", "q"})
_TEXT_CAPS = {"q": MAX_Q_LENGTH, "fq": MAX_FQ_LENGTH}
# An object of lists (filters: field -> values) is as deep as any parameter goes.
_MAX_DEPTH = 2


def _over(over: param_caps.OverCap | None) -> None:
    if over is not None:
        raise invalid(over.parameter, over.problem)


def check_params(params: Mapping[str, Any]) -> None:
    """Refuses an action's parameters over a cap: their number, and every value in them."""
    _over(param_caps.too_many_parameters(len(params)))
    for name, value in params.items():
        check_value(name, value)


def check_value(name: str, value: Any) -> None:
    """Refuses one parameter's value (text, list or object, as sent or as decoded) over a cap."""
    _over(_value_over_cap(name, value, 0))


def _text_cap(name: str, text: str, depth: int) -> int:
    if depth == 0 and name in JSON_PARAMETERS and text.lstrip()[:1] in ("{", "["):
        return MAX_JSON_TEXT_LENGTH
    return _TEXT_CAPS.get(name, param_caps.MAX_TEXT_LENGTH)


def _value_over_cap(name: str, value: Any, depth: int) -> param_caps.OverCap | None:
    if isinstance(value, str):
        return param_caps.text_over_cap(name, value, _text_cap(name, value, depth))
    if not isinstance(value, list | dict):
        return None  # numbers and booleans: their range is each action's business
    if depth >= _MAX_DEPTH:
        return param_caps.OverCap(name, f"{name} is nested too deeply / {name} の入れ子が深すぎます")
    if isinstance(value, dict):
        items = [*value, *value.values()]
        over = param_caps.list_over_cap(name, len(value), MAX_FILTERS, what=("fields", "フィールド"))
    else:
        items = value
        over = param_caps.list_over_cap(name, len(value))
    for item in items:
        over = over or _value_over_cap(name, item, depth + 1)
    return over


def resource_id(dataset_id: str, fmt: str) -> str:
    return f"{dataset_id}.{fmt}"


def split_resource_id(value: str) -> tuple[str, str] | None:
    dataset_id, dot, fmt = value.rpartition(".")
    return (dataset_id, fmt) if dot and dataset_id and fmt in FORMATS else None


def datastore_dataset_id(value: str) -> str:
    """The dataset a ``datastore_search`` reads: from a resource id (``aed.csv``) or the dataset's
    own id (``aed``) -- every resource of a dataset holds the same records, and clients that know
    the package's name should not have to guess a format suffix first."""
    parts = split_resource_id(value)
    return parts[0] if parts is not None else value


# What ``help_show`` answers for each action, as CKAN answers with the action's documentation.
ACTION_HELP: Mapping[str, str] = {
    "status_show": "Return the site's CKAN version, URL, title and extensions.\n"
    "サイトの CKAN バージョン・URL・名称・拡張機能を返す。",
    "package_list": "Return the names of the datasets you may read.\n\n"
    ":param limit: at most this many names\n:param offset: skip this many\n"
    "閲覧できるデータセット名の一覧を返す。",
    "current_package_list_with_resources": "Return the datasets you may read, with their resources.\n\n"
    ":param limit: at most this many\n:param offset: skip this many\n"
    "閲覧できるデータセットをリソース付きで返す。",
    "package_show": "Return one dataset (package) with its resources.\n\n"
    ":param id: the dataset's id or name\nデータセット 1 件をリソース付きで返す。",
    "package_search": "Search the datasets you may read.\n\n"
    ":param q: text in the name, titles, notes, tags or organization\n"
    ":param fq: filters such as organization:fire or res_format:CSV\n"
    ":param sort: e.g. metadata_modified desc\n:param rows: page size (max 1000)\n"
    ":param start: offset\nデータセットを検索する。",
    "organization_list": "Return the organizations (departments).\n\n"
    ":param all_fields: whole organizations instead of names\n組織（部局）の一覧を返す。",
    "organization_show": "Return one organization (department).\n\n"
    ":param id: the organization's id\n:param include_datasets: add its datasets\n組織 1 件を返す。",
    "resource_show": "Return one resource (a dataset in one format).\n\n"
    ":param id: the resource id, e.g. aed.csv\nリソース 1 件を返す。",
    "datastore_search": "Return the records of a resource.\n\n"
    ":param resource_id: the resource id (aed.csv) or the dataset's id (aed)\n"
    ":param filters: {field: value or [values]}\n:param q: text, or {field: text}\n"
    ":param fields: names to return\n:param sort: e.g. 名称 desc\n"
    ":param limit: page size (max 32000)\n:param offset: skip this many\nレコードを返す。",
    "help_show": "Return the documentation of an action.\n\n"
    ":param name: the action's name\nアクションの説明を返す。",
}


def action_help(name: str) -> str:
    """``help_show``'s answer; an action this API does not serve is CKAN's Not Found."""
    text = ACTION_HELP.get(name)
    if text is None:
        raise not_found("Action function")
    return text


def dataset_formats(dataset: Dataset, access: ReadAccess = FULL) -> list[str]:
    """The formats a caller with ``access`` gets the dataset in: GeoJSON only where it has a
    location the caller may read."""
    located = access.location(location_fields(dataset.meta)) is not None
    return [f for f in FORMATS if f != "geojson" or located]


def organization_dict(department: Department, package_count: int) -> dict[str, Any]:
    return {
        "id": department.id,
        "name": department.id,
        "title": department.name_ja,
        "display_name": department.name_ja,
        "title_translated": {"ja": department.name_ja, "en": department.name_en},
        "description": department.name_en,
        "type": "organization",
        "is_organization": True,
        "state": "active",
        "approval_status": "approved",
        "image_url": "",
        "package_count": package_count,
    }


def resource_dict(dataset: Dataset, fmt: str, base_url: str) -> dict[str, Any]:
    base = base_url + dataset_path(dataset.id)
    title = str(dataset.meta.get("title", {}).get("ja", dataset.title_ja))
    modified = iso_utc(dataset.last_record_at)
    return {
        "id": resource_id(dataset.id, fmt),
        "package_id": dataset.id,
        "name": f"{title} ({FORMATS[fmt]})",
        "description": f"All records of {dataset.id} as {FORMATS[fmt]}, always current.",
        "format": FORMATS[fmt],
        "mimetype": MIMETYPES[fmt],
        "url": f"{base}/export?format={fmt}",
        "url_type": "",
        "datastore_active": True,
        "state": "active",
        "position": list(FORMATS).index(fmt),
        "last_modified": modified.removesuffix("Z") if modified else None,
        "created": None,
        "resource_type": "api",
    }


def _text(meta: Mapping[str, Any], field: str, language: str, fallback: str = "") -> str:
    value = meta.get(field)
    return str(value.get(language, fallback)) if isinstance(value, Mapping) else fallback


def package_dict(
    dataset: Dataset,
    department: Department | None,
    schema: SchemaVersionRow | None,
    quality: Mapping[str, Any],
    *,
    base_url: str,
    contact_email: str,
) -> dict[str, Any]:
    meta = dataset.meta
    license_title, license_url = LICENSES.get(dataset.license, (dataset.license, ""))
    modified = iso_utc(dataset.last_record_at)
    keywords = [str(k) for k in meta.get("keywords", [])]
    resources = [resource_dict(dataset, f, base_url) for f in dataset_formats(dataset)]
    five_star = quality.get("five_star", {})
    extras = {
        "update_frequency": meta.get("update_frequency"),
        "conforms_to": schema.uri if schema is not None else None,
        "five_star": five_star.get("stars"),
        "metadata_quality": quality.get("metadata_quality", {}).get("score"),
        "standard": meta.get("standard"),
    }
    return {
        "id": dataset.id,
        "name": dataset.id,
        "title": _text(meta, "title", "ja", dataset.title_ja),
        "title_translated": {
            "ja": _text(meta, "title", "ja", dataset.title_ja),
            "en": _text(meta, "title", "en", dataset.title_en),
        },
        "notes": _text(meta, "description", "ja"),
        "notes_translated": {"ja": _text(meta, "description", "ja"), "en": _text(meta, "description", "en")},
        "type": "dataset",
        "state": "active",
        "private": False,
        "license_id": dataset.license,
        "license_title": license_title,
        "license_url": license_url,
        "isopen": five_star.get("stars", 0) >= 1,
        "url": base_url + dataset_path(dataset.id),
        "version": str(schema.version) if schema is not None else None,
        "author": department.name_ja if department is not None else dataset.department_id,
        "maintainer": department.name_ja if department is not None else dataset.department_id,
        "maintainer_email": contact_email,
        "owner_org": dataset.department_id,
        "organization": organization_dict(department, 0) if department is not None else None,
        "metadata_created": modified.removesuffix("Z") if modified else None,
        "metadata_modified": modified.removesuffix("Z") if modified else None,
        "tags": [{"name": k, "display_name": k, "state": "active"} for k in keywords],
        "num_tags": len(keywords),
        "groups": [],
        "resources": resources,
        "num_resources": len(resources),
        "extras": [{"key": k, "value": str(v)} for k, v in extras.items() if v is not None],
    }


# --- package_search -----------------------------------------------------------------------------

_FQ_FIELDS = {
    "organization": lambda p: [p["owner_org"]],
    "owner_org": lambda p: [p["owner_org"]],
    "tags": lambda p: [t["name"] for t in p["tags"]],
    "res_format": lambda p: [r["format"] for r in p["resources"]],
    "license_id": lambda p: [p["license_id"]],
    "name": lambda p: [p["name"]],
    "id": lambda p: [p["id"]],
    "dataset_type": lambda p: [p["type"]],
    "type": lambda p: [p["type"]],
}
_SORT_FIELDS = {
    "name": lambda p: p["name"],
    "title_string": lambda p: p["title"],
    "metadata_modified": lambda p: p["metadata_modified"] or "",
    "metadata_created": lambda p: p["metadata_created"] or "",
}


@dataclass(frozen=True)
class FqClause:
    field: str
    value: str
    negated: bool


def parse_fq(fq: str) -> list[FqClause]:
    """Solr filter queries as CKAN clients send them: ``organization:fire +tags:"AED" -res_format:CSV``.

    Read in one pass, left to right: a regular expression over the whole text took seconds on a long
    crafted ``fq``, and the parse must cost in proportion to the text however it is written.
    """
    clauses: list[FqClause] = []
    unparsed: list[str] = []
    position = _skip_spaces(fq, 0)
    while position < len(fq):
        clause, end = _fq_clause(fq, position)
        if clause is None:
            unparsed.append(fq[position:end])
        elif clause.field not in _FQ_FIELDS:
            raise invalid(
                "fq", f"unsupported filter field {clause.field!r}; use one of {', '.join(sorted(_FQ_FIELDS))}"
            )
        else:
            clauses.append(clause)
        position = _skip_spaces(fq, end)
    rest = " ".join(unparsed)
    if rest and rest != "*:*":
        raise invalid("fq", f"cannot parse {rest!r}; expected field:value clauses")
    return clauses


_FIELD_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _token_end(text: str, position: int) -> int:
    while position < len(text) and not text[position].isspace():
        position += 1
    return position


def _quoted_end(text: str, position: int) -> int | None:
    """Just past the closing quote of the quoted value opening at ``position``; None if unclosed."""
    position += 1
    while position < len(text):
        if text[position] == "\\":
            position += 2
        elif text[position] == '"':
            return position + 1
        else:
            position += 1
    return None


def _fq_clause(fq: str, start: int) -> tuple[FqClause | None, int]:
    """The clause ``[+-]field:value`` at ``start`` and where it ends, or None and the end of the
    token that is not one. A value is a quoted text (``\\"`` inside) or runs to the next space."""
    position = start + 1 if fq[start] in "+-" else start
    field_start = position
    while position < len(fq) and fq[position] in _FIELD_CHARACTERS:
        position += 1
    if position == field_start or position >= len(fq) - 1 or fq[position] != ":":
        return None, _token_end(fq, start)
    value_start = position + 1
    if fq[value_start].isspace():
        return None, _token_end(fq, start)
    end = _quoted_end(fq, value_start) if fq[value_start] == '"' else None
    if end is not None:
        value = fq[value_start + 1 : end - 1].replace('\\"', '"')
    else:  # unquoted, or a quote never closed: the rest of the token
        end = _token_end(fq, value_start)
        value = fq[value_start:end].strip('"')
    return FqClause(fq[field_start:position], value, fq[start] == "-"), end


def folded(text: str) -> str:
    """Text as searches compare it: NFKC (full-width ``ＡＥＤ`` is ``AED``, half-width kana are
    full-width) then case-folded. Japanese has no word breaks, so matching is by substring."""
    return unicodedata.normalize("NFKC", text).casefold()


def matches_text(parts: Iterable[str], q: str) -> bool:
    """Whether every term of ``q`` occurs in one of ``parts`` (Solr's ``AND``/``OR`` words and
    ``field:`` colons are ignored, quotes stripped): the portal's search and ``package_search``."""
    if not q or q == "*:*":
        return True
    haystack = folded("\n".join(parts))
    terms = [t for t in q.replace(":", " ").split() if t.upper() not in ("AND", "OR")]
    return all(folded(term.strip('"')) in haystack for term in terms)


def _matches_text(package: Mapping[str, Any], q: str) -> bool:
    parts = [
        package["name"],
        *package["title_translated"].values(),
        *package["notes_translated"].values(),
        *(t["name"] for t in package["tags"]),
        (package.get("organization") or {}).get("title", ""),
    ]
    return matches_text(parts, q)


def search_packages(
    packages: Sequence[Mapping[str, Any]], *, q: str, fq: str, sort: str, rows: int, start: int
) -> dict[str, Any]:
    if not 0 <= rows <= MAX_ROWS:
        raise invalid("rows", f"must be between 0 and {MAX_ROWS}")
    if start < 0:
        raise invalid("start", "must be a natural number")
    clauses = parse_fq(fq)
    found = [
        p
        for p in packages
        if _matches_text(p, q) and all((c.value in _FQ_FIELDS[c.field](p)) != c.negated for c in clauses)
    ]
    for part in reversed([s.strip() for s in sort.split(",") if s.strip()]):
        field, _, direction = part.partition(" ")
        if field == "score":
            continue  # every match scores the same here
        key = _SORT_FIELDS.get(field)
        if key is None:
            raise invalid("sort", f"cannot sort by {field!r}; use one of {', '.join(sorted(_SORT_FIELDS))}")
        found.sort(key=key, reverse=direction.strip().lower() == "desc")
    return {
        "count": len(found),
        "results": found[start : start + rows],
        "sort": sort,
        "facets": {},
        "search_facets": {},
    }


def parse_datastore_sort(sort: str) -> list[tuple[str, bool]]:
    """``"名称 desc, NO"`` -> [("名称", True), ("NO", False)]."""
    keys = []
    for part in (p.strip() for p in sort.split(",")):
        if not part:
            continue
        field, _, direction = (
            part.rpartition(" ") if part.lower().endswith((" asc", " desc")) else (part, "", "asc")
        )
        keys.append((field.strip().strip('"'), direction.lower() == "desc"))
    return keys


def ckan_field_type(types: Sequence[str]) -> str:
    if "integer" in types:
        return "int"
    if "number" in types:
        return "numeric"
    if "boolean" in types:
        return "bool"
    return "text"
