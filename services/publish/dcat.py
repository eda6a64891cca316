"""DCAT-AP 3 description of the catalog and its datasets, built with rdflib. Pure (no I/O).

URIs are the API's own URLs under the public base URL, so every node dereferences. Controlled
vocabularies are the EU Publications Office authority tables DCAT-AP asks for (frequency, file
type, data theme). The 5-star rating and the metadata-quality score are DQV quality measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from cityos.kernel.db.models import Dataset, Department, SchemaVersionRow
from services.publish import ckan
from services.publish.quality import QualityScore, Rating, themes
from services.publish.render import dataset_path

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
DQV = Namespace("http://www.w3.org/ns/dqv#")
LOCN = Namespace("http://www.w3.org/ns/locn#")
GSP = Namespace("http://www.opengis.net/ont/geosparql#")
EU_FREQUENCY = Namespace("http://publications.europa.eu/resource/authority/frequency/")
EU_FILE_TYPE = Namespace("http://publications.europa.eu/resource/authority/file-type/")
EU_THEME = Namespace("http://publications.europa.eu/resource/authority/data-theme/")
EU_LANGUAGE = Namespace("http://publications.europa.eu/resource/authority/language/")

FREQUENCIES = {
    "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY", "quarterly": "QUARTERLY",
    "annual": "ANNUAL", "irregular": "IRREG", "continuous": "CONT", "realtime": "UPDATE_CONT",
}  # fmt: skip
FILE_TYPES = {"csv": "CSV", "json": "JSON", "geojson": "GEOJSON", "ndjson": "JSON", "parquet": "PARQUET"}
# Formats the paged records API does not serve (a Parquet file is whole, its footer last): their
# access URL is the download itself.
EXPORT_ONLY = frozenset({"parquet"})
THEME_LABELS = {
    "HEAL": "Health", "JUST": "Justice, legal system and public safety", "EDUC": "Education, culture and sport",
    "REGI": "Regions and cities", "TRAN": "Transport", "ENVI": "Environment", "GOVE": "Government and public sector",
    "SOCI": "Population and society",
}  # fmt: skip
LICENSE_URIS = {k: v[1] for k, v in ckan.LICENSES.items()}


@dataclass(frozen=True)
class DatasetEntry:
    """Everything the DCAT description of one dataset needs, read by the router."""

    dataset: Dataset
    department: Department | None
    schema: SchemaVersionRow | None
    extent: tuple[float, float, float, float] | None
    rating: Rating
    quality: QualityScore


def new_graph() -> Graph:
    graph = Graph()
    for prefix, namespace in (
        ("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("vcard", VCARD), ("dqv", DQV),
        ("locn", LOCN), ("gsp", GSP), ("xsd", XSD), ("rdfs", RDFS),
    ):  # fmt: skip
        graph.bind(prefix, namespace)
    return graph


def _texts(graph: Graph, node: URIRef | BNode, predicate: URIRef, value: Any, fallback: str) -> None:
    pairs = value if isinstance(value, Mapping) else {}
    added = False
    for language in ("ja", "en"):
        text = str(pairs.get(language, "")).strip()
        if text:
            graph.add((node, predicate, Literal(text, lang=language)))
            added = True
    if not added:
        graph.add((node, predicate, Literal(fallback)))


def _datetime(moment: datetime) -> Literal:
    return Literal(moment.astimezone(UTC).replace(microsecond=0).isoformat(), datatype=XSD.dateTime)


def dataset_uri(base_url: str, dataset_id: str) -> URIRef:
    return URIRef(base_url + dataset_path(dataset_id))


def _agent(graph: Graph, base_url: str, department_id: str, department: Department | None) -> URIRef:
    agent = URIRef(f"{base_url}/api/3/action/organization_show?id={department_id}")
    graph.add((agent, RDF.type, FOAF.Agent))
    graph.add((agent, RDF.type, FOAF.Organization))
    if department is not None:
        graph.add((agent, FOAF.name, Literal(department.name_ja, lang="ja")))
        graph.add((agent, FOAF.name, Literal(department.name_en, lang="en")))
    else:
        graph.add((agent, FOAF.name, Literal(department_id)))
    return agent


def _japanese(graph: Graph, node: URIRef) -> None:
    graph.add((node, DCTERMS.language, EU_LANGUAGE.JPN))
    graph.add((EU_LANGUAGE.JPN, RDF.type, DCTERMS.LinguisticSystem))


def _measurement(graph: Graph, dataset: URIRef, metric: URIRef, value: int, note: str) -> None:
    measurement = BNode()
    graph.add((dataset, DQV.hasQualityMeasurement, measurement))
    graph.add((measurement, RDF.type, DQV.QualityMeasurement))
    graph.add((measurement, DQV.isMeasurementOf, metric))
    graph.add((measurement, DQV.value, Literal(value, datatype=XSD.integer)))
    graph.add((measurement, RDFS.comment, Literal(note, lang="en")))


def add_dataset(graph: Graph, entry: DatasetEntry, *, base_url: str, contact_email: str) -> URIRef:
    dataset = entry.dataset
    meta = dataset.meta
    node = dataset_uri(base_url, dataset.id)
    graph.add((node, RDF.type, DCAT.Dataset))
    graph.add((node, DCTERMS.identifier, Literal(dataset.id)))
    _texts(graph, node, DCTERMS.title, meta.get("title"), dataset.title_ja)
    _texts(graph, node, DCTERMS.description, meta.get("description"), dataset.title_ja)
    graph.add((node, DCTERMS.publisher, _agent(graph, base_url, dataset.department_id, entry.department)))
    landing = URIRef(f"{base_url}/api/3/action/package_show?id={dataset.id}")
    graph.add((node, DCAT.landingPage, landing))
    graph.add((landing, RDF.type, FOAF.Document))
    _japanese(graph, node)
    _add_contact(graph, node, entry, base_url=base_url, contact_email=contact_email)

    for keyword in meta.get("keywords", []):
        graph.add((node, DCAT.keyword, Literal(str(keyword), lang="ja")))
    for theme in themes(list(meta.get("keywords", []))):
        graph.add((node, DCAT.theme, EU_THEME[theme]))
        graph.add((EU_THEME[theme], RDF.type, SKOS.Concept))
        graph.add((EU_THEME[theme], SKOS.prefLabel, Literal(THEME_LABELS.get(theme, theme), lang="en")))
    frequency = FREQUENCIES.get(str(meta.get("update_frequency")))
    if frequency is not None:
        graph.add((node, DCTERMS.accrualPeriodicity, EU_FREQUENCY[frequency]))
        graph.add((EU_FREQUENCY[frequency], RDF.type, DCTERMS.Frequency))
    if dataset.last_record_at is not None:
        graph.add((node, DCTERMS.modified, _datetime(dataset.last_record_at)))
    if entry.schema is not None:
        standard = URIRef(entry.schema.uri)
        graph.add((node, DCTERMS.conformsTo, standard))
        graph.add((standard, RDF.type, DCTERMS.Standard))
    _add_coverage(graph, node, entry)

    license_uri = URIRef(
        LICENSE_URIS.get(dataset.license, f"https://spdx.org/licenses/{dataset.license}.html")
    )
    graph.add((license_uri, RDF.type, DCTERMS.LicenseDocument))
    for fmt in ckan.dataset_formats(dataset):
        _add_distribution(graph, node, dataset, fmt, license_uri, base_url)

    _add_quality(graph, node, entry, base_url)
    return node


def _add_contact(
    graph: Graph, node: URIRef, entry: DatasetEntry, *, base_url: str, contact_email: str
) -> None:
    contact = _contact(graph, base_url, entry.dataset.department_id, entry.department, contact_email)
    graph.add((node, DCAT.contactPoint, contact))


def _contact(
    graph: Graph, base_url: str, department_id: str, department: Department | None, contact_email: str
) -> URIRef:
    contact = URIRef(f"{base_url}/catalog/contact/{department_id}")
    graph.add((contact, RDF.type, VCARD.Kind))
    name = department.name_ja if department is not None else department_id
    graph.add((contact, VCARD.fn, Literal(name, lang="ja")))
    graph.add((contact, VCARD.hasEmail, URIRef(f"mailto:{contact_email}")))
    return contact


def contact_graph(base_url: str, department: Department, contact_email: str) -> Graph:
    """What a department's contact-point URI answers: the same vCard the datasets point to."""
    graph = new_graph()
    _contact(graph, base_url, department.id, department, contact_email)
    return graph


# The quality metrics every dataset is measured by: (labels, definitions), ja and en.
METRICS: Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]] = {
    "five-star": (
        {"ja": "5つ星オープンデータ", "en": "5-star open data"},
        {
            "ja": "Tim Berners-Lee の 5 段階（1〜5）。公開ライセンス、機械可読、非独占形式、URI、リンクの順に累積。",
            "en": "Tim Berners-Lee's scale (1-5): open licence, machine-readable, non-proprietary "
            "format, URIs, links; each level requires the ones before it.",
        },
    ),
    "metadata-quality": (
        {"ja": "メタデータ品質", "en": "Metadata quality"},
        {
            "ja": "DCAT-AP の推奨項目のうち記入済みのものの割合（0〜100）。",
            "en": "Share of the DCAT-AP recommended fields that are filled (0-100).",
        },
    ),
}


def metric_uri(base_url: str, name: str) -> URIRef:
    return URIRef(f"{base_url}/catalog/metrics#{name}")


def metrics_graph(base_url: str) -> Graph:
    """What the metrics URI answers: each DQV metric the quality measurements refer to."""
    graph = new_graph()
    graph.bind("skos", SKOS)
    for name, (labels, definitions) in METRICS.items():
        metric = metric_uri(base_url, name)
        graph.add((metric, RDF.type, DQV.Metric))
        graph.add((metric, DQV.expectedDataType, XSD.integer))
        _texts(graph, metric, SKOS.prefLabel, labels, name)
        _texts(graph, metric, SKOS.definition, definitions, name)
    return graph


def _add_coverage(graph: Graph, node: URIRef, entry: DatasetEntry) -> None:
    """Spatial coverage (the records' bounding box) and the declared temporal coverage."""
    if entry.extent is not None:
        min_lon, min_lat, max_lon, max_lat = entry.extent
        location = BNode()
        graph.add((node, DCTERMS.spatial, location))
        graph.add((location, RDF.type, DCTERMS.Location))
        wkt = (
            f"POLYGON(({min_lon} {min_lat},{max_lon} {min_lat},{max_lon} {max_lat},"
            f"{min_lon} {max_lat},{min_lon} {min_lat}))"
        )
        graph.add((location, DCAT.bbox, Literal(wkt, datatype=GSP.wktLiteral)))
    temporal = entry.dataset.meta.get("temporal")
    if isinstance(temporal, Mapping):
        period = BNode()
        graph.add((node, DCTERMS.temporal, period))
        graph.add((period, RDF.type, DCTERMS.PeriodOfTime))
        for key, predicate in (("start", DCAT.startDate), ("end", DCAT.endDate)):
            if temporal.get(key):
                graph.add((period, predicate, Literal(str(temporal[key]), datatype=XSD.date)))


def _add_quality(graph: Graph, node: URIRef, entry: DatasetEntry, base_url: str) -> None:
    stars_note = "; ".join(
        f"{s.level}★ {'yes' if s.met else 'no'}: {s.reason}" for s in entry.rating.criteria
    )
    _measurement(graph, node, metric_uri(base_url, "five-star"), entry.rating.stars, stars_note)
    missing = ", ".join(entry.quality.missing) or "none"
    _measurement(
        graph, node, metric_uri(base_url, "metadata-quality"), entry.quality.score,
        f"share of DCAT-AP fields filled (0-100); missing: {missing}",
    )  # fmt: skip


def _add_distribution(
    graph: Graph, dataset_node: URIRef, dataset: Dataset, fmt: str, license_uri: URIRef, base_url: str
) -> None:
    base = base_url + dataset_path(dataset.id)
    distribution = URIRef(f"{base}/export?format={fmt}#distribution")
    graph.add((dataset_node, DCAT.distribution, distribution))
    graph.add((distribution, RDF.type, DCAT.Distribution))
    graph.add((distribution, DCTERMS.title, Literal(f"{dataset.id} ({ckan.FORMATS[fmt]})")))
    access = f"{base}/export?format={fmt}" if fmt in EXPORT_ONLY else f"{base}/records?format={fmt}"
    graph.add((distribution, DCAT.accessURL, URIRef(access)))
    graph.add((distribution, DCAT.downloadURL, URIRef(f"{base}/export?format={fmt}")))
    file_type = EU_FILE_TYPE[FILE_TYPES[fmt]]
    graph.add((distribution, DCTERMS.format, file_type))
    graph.add((file_type, RDF.type, DCTERMS.MediaTypeOrExtent))
    media = URIRef(f"https://www.iana.org/assignments/media-types/{ckan.MIMETYPES[fmt]}")
    graph.add((distribution, DCAT.mediaType, media))
    graph.add((media, RDF.type, DCTERMS.MediaType))
    graph.add((distribution, DCTERMS.license, license_uri))
    if dataset.last_record_at is not None:
        graph.add((distribution, DCTERMS.modified, _datetime(dataset.last_record_at)))


def catalog_graph(
    entries: Sequence[DatasetEntry], *, base_url: str, contact_email: str, title: Mapping[str, str]
) -> Graph:
    graph = new_graph()
    catalog = URIRef(f"{base_url}/catalog")
    graph.add((catalog, RDF.type, DCAT.Catalog))
    _texts(graph, catalog, DCTERMS.title, title, "Open data catalog")
    _texts(
        graph, catalog, DCTERMS.description,
        {"ja": "市の各部局が公開するオープンデータ（API・CSV・GeoJSON）の目録。",
         "en": "Catalog of the open data published by the city's departments (API, CSV, GeoJSON)."},
        "Open data catalog",
    )  # fmt: skip
    publisher = URIRef(f"{base_url}/catalog#publisher")
    graph.add((catalog, DCTERMS.publisher, publisher))
    graph.add((publisher, RDF.type, FOAF.Agent))
    _texts(graph, publisher, FOAF.name, title, "City")
    graph.add((catalog, FOAF.homepage, URIRef(f"{base_url}/docs")))
    graph.add((URIRef(f"{base_url}/docs"), RDF.type, FOAF.Document))
    _japanese(graph, catalog)
    modified = [e.dataset.last_record_at for e in entries if e.dataset.last_record_at is not None]
    if modified:
        graph.add((catalog, DCTERMS.modified, _datetime(max(modified))))

    service = URIRef(f"{base_url}/api/v1")
    graph.add((catalog, DCAT.service, service))
    graph.add((service, RDF.type, DCAT.DataService))
    graph.add((service, DCTERMS.title, Literal("CityOS Open Data API", lang="en")))
    graph.add((service, DCAT.endpointURL, service))
    graph.add((service, DCAT.endpointDescription, URIRef(f"{base_url}/openapi.json")))
    for entry in entries:
        node = add_dataset(graph, entry, base_url=base_url, contact_email=contact_email)
        graph.add((catalog, DCAT.dataset, node))
        graph.add((service, DCAT.servesDataset, node))
    return graph


def dataset_graph(entry: DatasetEntry, *, base_url: str, contact_email: str) -> Graph:
    graph = new_graph()
    add_dataset(graph, entry, base_url=base_url, contact_email=contact_email)
    return graph


RDF_FORMATS = {
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "jsonld": ("json-ld", "application/ld+json"),
    "rdf": ("xml", "application/rdf+xml"),
}
_ACCEPT = {"text/turtle": "ttl", "application/ld+json": "jsonld", "application/rdf+xml": "rdf"}


def negotiate_rdf(accept: str | None) -> str:
    """Turtle unless the Accept header prefers JSON-LD or RDF/XML (by q, then order)."""
    best: tuple[float, int, str] | None = None
    for position, item in enumerate((accept or "").split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        chosen = _ACCEPT.get(media.lower())
        if chosen is None:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or (quality, -position) > best[:2]):
            best = (quality, -position, chosen)
    return best[2] if best is not None else "ttl"


def serialize(graph: Graph, suffix: str) -> tuple[bytes, str]:
    rdflib_format, media_type = RDF_FORMATS[suffix]
    return graph.serialize(format=rdflib_format, encoding="utf-8"), media_type
