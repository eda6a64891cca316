"""The DCAT-AP catalog served over HTTP validates against the DCAT-AP 3.0.0 SHACL shapes.

RDFS inference, no owl:imports. The shapes' own negative examples (and our catalog with a required
field removed) still fail with the same settings, so the check is shown to bite.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pyshacl import validate
from rdflib import Graph, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from tests.support.fixtures_path import FIXTURES
from tests.support.publish import (
    HIDDEN_IDS,
    events,
    hidden_rows,
    kitakyushu_site_rows,
    load,
    schemas_with_sites,
    serve,
    yaizu_aed_rows,
)

DCAT_AP = FIXTURES / "dcat-ap" / "releases"
SHAPES = DCAT_AP / "3.0.0" / "shacl" / "dcat-ap-SHACL.ttl"
DQV_MEASUREMENT = URIRef("http://www.w3.org/ns/dqv#hasQualityMeasurement")


@pytest.fixture(scope="module")
def shapes() -> Graph:
    return Graph().parse(SHAPES)


def _conforms(data: Graph, shapes: Graph) -> tuple[bool, str]:
    conforms, _, text = validate(
        data, shacl_graph=shapes, inference="rdfs", do_owl_imports=False, allow_warnings=True
    )
    return bool(conforms), str(text)


def test_catalog_conforms_and_negative_examples_fail(
    database_url: str, tmp_path: Path, shapes: Graph
) -> None:
    schemas_dir = schemas_with_sites(tmp_path)
    batch = events("aed", yaizu_aed_rows(schemas_dir)) + events("kitakyushu-evacuation-site",
            kitakyushu_site_rows(), start=10_000) + hidden_rows()  # fmt: skip
    engine = load(database_url, schemas_dir, batch)
    try:
        with serve(engine, database_url) as server:
            turtle = httpx.get(f"{server.url}/catalog.ttl")
            jsonld = httpx.get(f"{server.url}/catalog.jsonld")
            negotiated = httpx.get(f"{server.url}/catalog", headers={"Accept": "application/ld+json"})
            one = httpx.get(f"{server.url}/catalog/datasets/aed.ttl")
            hidden = [httpx.get(f"{server.url}/catalog/datasets/{h}.ttl").status_code for h in HIDDEN_IDS]
    finally:
        engine.dispose()
    assert turtle.status_code == 200 and turtle.headers["content-type"].startswith("text/turtle")
    assert negotiated.headers["content-type"].startswith("application/ld+json")
    assert hidden == [404, 404]

    graph = Graph().parse(data=turtle.text, format="turtle")
    from_jsonld = Graph().parse(data=jsonld.text, format="json-ld")
    assert len(from_jsonld) == len(graph)

    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    identifiers = {str(graph.value(d, DCTERMS.identifier)) for d in datasets}
    assert {"aed", "kitakyushu-evacuation-site"} <= identifiers
    assert not set(HIDDEN_IDS) & identifiers
    aed = next(d for d in datasets if str(graph.value(d, DCTERMS.identifier)) == "aed")
    assert str(graph.value(aed, DCTERMS.conformsTo)) == "https://cityos.example/schemas/aed/1"
    assert len(list(graph.objects(aed, DCAT.distribution))) == 5  # CSV, JSON, GeoJSON, NDJSON, Parquet
    assert len(list(graph.objects(aed, DQV_MEASUREMENT))) == 2  # 5-star and metadata quality
    assert graph.value(aed, DCTERMS.spatial) is not None  # bbox from the records

    conforms, report = _conforms(graph, shapes)
    assert conforms, report
    single, single_report = _conforms(Graph().parse(data=one.text, format="turtle"), shapes)
    assert single, single_report

    # The check bites: our own catalog without a dataset title, and the upstream negative examples.
    broken = Graph().parse(data=turtle.text, format="turtle")
    broken.remove((aed, DCTERMS.title, None))
    assert not _conforms(broken, shapes)[0]
    negative = Graph().parse(DCAT_AP / "2.1.1" / "examples" / "example2.nt", format="nt")
    assert not _conforms(negative, shapes)[0]
    fragment = Graph().parse(DCAT_AP / "3.0.1" / "html" / "examples" / "example-bee-population.ttl")
    assert not _conforms(fragment, shapes)[0]
    positive = Graph().parse(DCAT_AP / "2.1.1" / "examples" / "example1.nt", format="nt")
    assert _conforms(positive, shapes)[0]  # the same settings accept the upstream positive example
