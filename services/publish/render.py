"""Representations served by the publish API: JSON bodies, CSV, GeoJSON, links. Pure, no I/O.

The functions read ORM objects only as plain attribute holders (nothing here touches a session), so
tests can build ``Dataset``/``Record`` instances in memory.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import orjson

from cityos.domain.access import FULL, ReadAccess
from cityos.kernel.db.models import Dataset, Department, SchemaVersionRow
from cityos.kernel.schemas import location_fields
from cityos.kernel.spreadsheet import formula_safe
from cityos.kernel.timeutil import assume_utc


class RecordLike(Protocol):
    """What renderers read of a record: an ORM ``Record`` or a row of ``queries.RECORD_COLUMNS``."""

    @property
    def record_key(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def latitude(self) -> float | None: ...
    @property
    def longitude(self) -> float | None: ...


API_PREFIX = "/api/v1"

# Excel decides a CSV's encoding from its first bytes: without the BOM it reads CP932 and garbles
# Japanese; with it, UTF-8 is recognised. Other consumers (pandas, csv module) are better without it.
UTF8_BOM = "\ufeff".encode()


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite returns naive datetimes, which the catalog writes in UTC."""
    if moment is None:
        return None
    return assume_utc(moment).isoformat().replace("+00:00", "Z")


def dataset_path(dataset_id: str) -> str:
    # Ids are slugs today, but quoting keeps links valid whatever a schema folder is called.
    return f"{API_PREFIX}/datasets/{quote(dataset_id, safe='')}"


def dataset_links(base_url: str, dataset: Dataset, access: ReadAccess = FULL) -> dict[str, str]:
    """Absolute links a client can follow without building URLs itself (a map only for a caller
    who may read the location fields)."""
    base = base_url.rstrip("/") + dataset_path(dataset.id)
    links = {
        "self": base,
        "records": f"{base}/records",
        "csv": f"{base}/records?format=csv",
    }
    if access.location(location_fields(dataset.meta)) is not None:
        links["geojson"] = f"{base}/records?format=geojson"
    return links


def _text_pair(value: Any, *, fallback_ja: str = "", fallback_en: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        return {"ja": str(value.get("ja", fallback_ja)), "en": str(value.get("en", fallback_en))}
    return {"ja": fallback_ja, "en": fallback_en}


def _department(dataset: Dataset, department: Department | None) -> dict[str, Any]:
    if department is None:
        return {"id": dataset.department_id, "name": None}
    return {"id": department.id, "name": {"ja": department.name_ja, "en": department.name_en}}


def dataset_summary(
    dataset: Dataset, department: Department | None, base_url: str, access: ReadAccess = FULL
) -> dict[str, Any]:
    """One entry of ``GET /api/v1/datasets``."""
    meta = dataset.meta
    return {
        "id": dataset.id,
        "title": _text_pair(meta.get("title"), fallback_ja=dataset.title_ja, fallback_en=dataset.title_en),
        "description": _text_pair(meta.get("description")),
        "department": _department(dataset, department),
        "license": dataset.license,
        "classification": dataset.classification,
        "keywords": meta.get("keywords", []),
        "update_frequency": meta.get("update_frequency"),
        "record_count": dataset.record_count,
        "last_updated": iso_utc(dataset.last_record_at),
        "links": dataset_links(base_url, dataset, access),
    }


def dataset_detail(
    dataset: Dataset,
    department: Department | None,
    schema: SchemaVersionRow | None,
    base_url: str,
    *,
    access: ReadAccess = FULL,
) -> dict[str, Any]:
    """Body of ``GET /api/v1/datasets/{id}``: the summary plus record key, location and schema,
    as far as ``access`` reads them (a grantee sees its granted fields only)."""
    fields = access.location(location_fields(dataset.meta))
    body = dataset_summary(dataset, department, base_url, access)
    body["record_key"] = dataset.record_key
    body["location"] = {"latitude": fields[0], "longitude": fields[1]} if fields else None
    body["schema"] = (
        None
        if schema is None
        else {"uri": schema.uri, "version": schema.version, "document": access.schema(schema.document)}
    )
    return body


def records_page(
    *,
    dataset_id: str,
    total: int,
    limit: int,
    offset: int,
    rows: Sequence[Mapping[str, Any]],
    next_url: str | None,
) -> dict[str, Any]:
    """JSON body of the records endpoint."""
    return {
        "dataset": dataset_id,
        "total": total,
        "limit": limit,
        "offset": offset,
        "records": list(rows),
        "next": next_url,
    }


def next_page_url(
    *,
    base_url: str,
    path: str,
    params: Iterable[tuple[str, str]],
    limit: int,
    offset: int,
    returned: int,
    total: int,
) -> str | None:
    """Absolute URL of the following page with every other parameter kept, or None on the last page.

    ``base_url`` is the answer's public base (``services.publish.public_base``): the configured
    public URL, or where the request came in when none is configured.
    """
    following = offset + returned
    if returned == 0 or following >= total:
        return None
    kept = [(name, value) for name, value in params if name not in ("limit", "offset")]
    query = urlencode([*kept, ("limit", str(limit)), ("offset", str(following))], quote_via=quote)
    return f"{base_url.rstrip('/')}{path}?{query}"


def link_with(base_url: str, path: str, params: Iterable[tuple[str, str]]) -> str:
    """Absolute URL of ``path`` under the public base URL with the given query parameters."""
    return f"{base_url.rstrip('/')}{path}?{urlencode(list(params), quote_via=quote)}"


def csv_columns(schema: Mapping[str, Any] | None, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Columns in the schema's property order; fields the schema does not declare come last.

    Records written under an older schema version may carry a field the current one dropped; it
    stays visible rather than silently disappearing from the export.
    """
    properties = schema.get("properties") if schema is not None else None
    columns: dict[str, None] = dict.fromkeys(properties) if isinstance(properties, Mapping) else {}
    for row in rows:
        for name in row:
            columns.setdefault(name, None)
    return list(columns)


def cell_text(value: Any) -> str:
    """A value as one plain CSV cell (and one cell of the site's preview): text as is, numbers as
    JSON writes them, nested values as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    # Nested values keep their JSON form so that they round-trip losslessly.
    return orjson.dumps(value).decode()


def spreadsheet_cell(value: Any) -> str:
    """A cell of a CSV meant for a spreadsheet: formula-like text is neutralised (``formula_safe``)."""
    return formula_safe(cell_text(value))


def cell_writer(*, excel: bool) -> Callable[[Any], str]:
    """How cells are written: exactly as published, or neutralised for a spreadsheet.

    A plain CSV is a data interface, and a value such as "=" or "-3" reaches the consumer as is;
    a CSV for Excel (``bom=true`` or ``excel=true``) is opened by people, so formula-like text is
    prefixed with a quote.
    """
    return spreadsheet_cell if excel else cell_text


def header_row(columns: Sequence[str], *, excel: bool) -> list[str]:
    return [formula_safe(name) for name in columns] if excel else list(columns)


def render_csv(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], *, bom: bool, excel: bool = False
) -> bytes:
    """RFC 4180 CSV (CRLF, quoted when needed), UTF-8, optional BOM for Excel.

    With the BOM (Excel) or ``excel``, formula-like cells are neutralised (``cell_writer``).
    """
    safe = bom or excel
    cell = cell_writer(excel=safe)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header_row(columns, excel=safe))
    for row in rows:
        writer.writerow([cell(row.get(column)) for column in columns])
    body = buffer.getvalue().encode("utf-8")
    return UTF8_BOM + body if bom else body


def _coordinate(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def record_point(record: RecordLike, fields: tuple[str, str]) -> list[float] | None:
    """[longitude, latitude] (RFC 7946 order) of a record, or None when absent or out of range.

    The catalog's denormalised columns are preferred; the data fields are the fallback for rows
    stored before the columns were filled. Municipal CSVs often carry coordinates as text, hence
    the string parsing.
    """
    latitude = record.latitude if record.latitude is not None else _coordinate(record.data.get(fields[0]))
    longitude = record.longitude if record.longitude is not None else _coordinate(record.data.get(fields[1]))
    if latitude is None or longitude is None:
        return None
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        return None
    return [longitude, latitude]


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name in RFC 6266/5987 ``filename*``."""
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
