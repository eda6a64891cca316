"""DCAT-AP 3 endpoints: the catalog and each dataset, as Turtle, JSON-LD or RDF/XML.

``/catalog.ttl`` and ``/catalog.jsonld`` name the format; ``/catalog`` and
``/catalog/datasets/{id}`` negotiate it from ``Accept``. Only datasets the caller may read appear.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from cityos.domain.access import ReadAccess
from cityos.domain.readmodel import queries
from cityos.kernel.db.models import Dataset
from cityos.kernel.schemas import location_fields
from services.publish import dcat
from services.publish.context import (
    COMMON_RESPONSES,
    NOT_FOUND,
    ContextDep,
    PublishContext,
    SessionDep,
    caller_of,
    departments,
    visible_dataset,
    visible_datasets,
)
from services.publish.quality import five_star, metadata_quality

CATALOG_TITLE = {"ja": "CityOS オープンデータカタログ", "en": "CityOS open data catalog"}
_RDF_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/turtle": {"schema": {"type": "string"}},
            "application/ld+json": {"schema": {"description": "JSON-LD document (expanded form)"}},
            "application/rdf+xml": {"schema": {"type": "string"}},
        },
        "description": "DCAT-AP 3 RDF",
    }
}


router = APIRouter(tags=["DCAT-AP catalog"], responses=COMMON_RESPONSES)


def _entry(session: Session, dataset: Dataset, access: ReadAccess) -> dcat.DatasetEntry:
    department = departments(session).get(dataset.department_id)
    schema = queries.latest_schema(session, dataset_id=dataset.id)
    # The extent is the records' positions in summary: only for a caller who may read them.
    located = access.location(location_fields(dataset.meta)) is not None
    extent = queries.dataset_extent(session, dataset_id=dataset.id) if located else None
    quality = metadata_quality(
        dataset.meta,
        has_publisher=department is not None,
        has_contact=department is not None,
        has_schema=schema is not None,
        has_spatial=extent is not None,
        has_modified=dataset.last_record_at is not None,
    )
    rating = five_star(dataset.meta, record_key=dataset.record_key, has_schema=schema is not None)
    return dcat.DatasetEntry(dataset, department, schema, extent, rating, quality)


def _catalog(ctx: PublishContext, request: Request, session: Session, suffix: str) -> Response:
    request.state.response_format = suffix
    entries = [_entry(session, d, access) for d, access in visible_datasets(session, caller_of(request))]
    graph = dcat.catalog_graph(
        entries,
        base_url=ctx.base_url(request),
        contact_email=ctx.settings.open_data_contact_email,
        title=CATALOG_TITLE,
    )
    body, media_type = dcat.serialize(graph, suffix)
    return Response(body, media_type=media_type, headers={"Vary": "Accept"})


@router.get(
    "/catalog.ttl",
    summary="The DCAT-AP 3 catalog as Turtle",
    response_class=Response,
    responses=_RDF_CONTENT,
)
def catalog_ttl(request: Request, ctx: ContextDep, session: SessionDep) -> Response:
    return _catalog(ctx, request, session, "ttl")


@router.get(
    "/catalog.jsonld",
    summary="The DCAT-AP 3 catalog as JSON-LD",
    response_class=Response,
    responses=_RDF_CONTENT,
)
def catalog_jsonld(request: Request, ctx: ContextDep, session: SessionDep) -> Response:
    return _catalog(ctx, request, session, "jsonld")


@router.get(
    "/catalog",
    summary="The DCAT-AP 3 catalog, format by Accept",
    response_class=Response,
    responses=_RDF_CONTENT,
)
def catalog_negotiated(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    return _catalog(ctx, request, session, dcat.negotiate_rdf(accept))


@router.get(
    "/catalog/datasets/{name}",
    summary="One dataset's DCAT-AP 3 description: {id}.ttl, {id}.jsonld, {id}.rdf, or {id} by Accept",
    response_class=Response,
    responses={**_RDF_CONTENT, 404: {"description": "No dataset with this id that you may read"}},
)
def dataset_document(
    request: Request,
    name: str,
    ctx: ContextDep,
    session: SessionDep,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    dataset_id, dot, suffix = name.rpartition(".")
    if not dot:
        dataset_id, suffix = name, dcat.negotiate_rdf(accept)
    if suffix not in dcat.RDF_FORMATS:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    request.state.response_format = suffix
    dataset, access = visible_dataset(session, caller_of(request), dataset_id)
    graph = dcat.dataset_graph(
        _entry(session, dataset, access),
        base_url=ctx.base_url(request),
        contact_email=ctx.settings.open_data_contact_email,
    )
    body, media_type = dcat.serialize(graph, suffix)
    return Response(body, media_type=media_type, headers={"Vary": "Accept"})


@router.get(
    "/catalog/contact/{department_id}",
    summary="A department's contact point (vCard), the node every one of its datasets points to",
    response_class=Response,
    responses={**_RDF_CONTENT, 404: {"description": "No department with this id"}},
)
def contact_point(
    request: Request,
    department_id: str,
    ctx: ContextDep,
    session: SessionDep,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    department = departments(session).get(department_id)
    if department is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    suffix = dcat.negotiate_rdf(accept)
    request.state.response_format = suffix
    graph = dcat.contact_graph(ctx.base_url(request), department, ctx.settings.open_data_contact_email)
    body, media_type = dcat.serialize(graph, suffix)
    return Response(body, media_type=media_type, headers={"Vary": "Accept"})


@router.get(
    "/catalog/metrics",
    summary="The quality metrics (DQV) the datasets' 5-star rating and metadata score refer to",
    response_class=Response,
    responses=_RDF_CONTENT,
)
def quality_metrics(
    request: Request,
    ctx: ContextDep,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    suffix = dcat.negotiate_rdf(accept)
    request.state.response_format = suffix
    body, media_type = dcat.serialize(dcat.metrics_graph(ctx.base_url(request)), suffix)
    return Response(body, media_type=media_type, headers={"Vary": "Accept"})
