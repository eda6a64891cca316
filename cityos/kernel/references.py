"""Offline ``$ref`` resolution: registered schema versions and bundled shared definitions, never the network.

Both validators get the same resources: ``referencing.Registry`` for ``jsonschema`` (registration-time
checks, rich messages, compatibility) and ``jsonschema_rs.Registry`` for the hot path. A reference to
anything else fails at compile time, not at the first event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jsonschema_rs
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

from cityos.kernel.patterns import RUST_PATTERN_OPTIONS, linear_document

Document = dict[str, Any]

# Smart Data Models' shared documents are published under these URIs; the files themselves are
# bundled (tests read them from the shared fixtures), so resolving them needs no network.
SMART_DATA_MODELS_COMMON = "https://smart-data-models.github.io/data-models/common-schema.json"
SMART_DATA_MODELS_ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/Environment-schema.json"
)


def _refuse(uri: str) -> Resource[Any]:
    # Anything not registered is unresolvable: a schema must never depend on a reachable web site.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs class, untyped constructor


def offline_registry(resources: Mapping[str, Any]) -> Registry[Any]:
    """A ``referencing`` registry of ``uri -> document`` that retrieves nothing else."""
    registry: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]  # attrs class
    return registry.with_resources(
        (uri, Resource.from_contents(document, default_specification=DRAFT202012))
        for uri, document in resources.items()
    )


def _retrieve_nothing(uri: str) -> Any:
    raise ValueError(f"{uri} is not registered and the network is never used")


def rust_registry(resources: Mapping[str, Any]) -> jsonschema_rs.Registry | None:
    """The same resources for jsonschema-rs, or None when there are none."""
    if not resources:
        return None
    return jsonschema_rs.Registry(list(resources.items()), retriever=_retrieve_nothing)


def rust_validator(document: Any, resources: Mapping[str, Any] | None = None) -> Any:
    """A jsonschema-rs validator with format assertions, resolving ``$ref`` offline only, whose
    patterns run on a linear-time engine (``cityos.kernel.patterns``): a pattern it cannot run
    (backreference, lookaround) fails here with ``ValueError``, never at an event."""
    linear = {uri: linear_document(resource) for uri, resource in (resources or {}).items()}
    registry = rust_registry(linear)
    if registry is None:
        return jsonschema_rs.validator_for(
            linear_document(document),
            validate_formats=True,
            retriever=_retrieve_nothing,
            pattern_options=RUST_PATTERN_OPTIONS,
        )
    return jsonschema_rs.validator_for(
        linear_document(document),
        validate_formats=True,
        registry=registry,
        retriever=_retrieve_nothing,
        pattern_options=RUST_PATTERN_OPTIONS,
    )


def load_bundle(folder: Path) -> dict[str, Document]:
    """Every ``*.json`` under ``folder`` (recursively) that has an ``$id``, by that ``$id``."""
    bundle: dict[str, Document] = {}
    for file in sorted(folder.rglob("*.json")):
        document = json.loads(file.read_text(encoding="utf-8"))
        if isinstance(document, dict) and isinstance(document.get("$id"), str):
            bundle[document["$id"]] = document
    return bundle


def external_refs(node: Any, base: str = "") -> Iterator[str]:
    """Every ``$ref`` that leaves its own document (absolute, without the fragment)."""
    for ref in _refs(node):
        if ref.startswith("#"):
            continue
        target = ref.split("#", 1)[0]
        if target and target != base:
            yield target


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            elif key not in ("const", "enum", "default", "examples"):
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def missing_refs(document: Document, resources: Mapping[str, Any]) -> list[str]:
    """External references of ``document`` that ``resources`` cannot satisfy."""
    base = str(document.get("$id", ""))
    return sorted({ref for ref in external_refs(document, base) if ref not in resources})


def absolutize(document: Any, base: str) -> Any:
    """A copy whose relative ``$ref`` (``#...``, ``other.json#...``) are absolute against ``base``, so a node can be
    resolved with one registry wherever it came from (the compatibility checker walks across
    documents)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and value.startswith("#"):
                    out[key] = base + value
                elif key == "$ref" and isinstance(value, str) and ":" not in value.split("#", 1)[0]:
                    out[key] = urljoin(base, value)  # relative to the document, e.g. "common.json#/x"
                elif key in ("const", "enum", "default", "examples"):
                    out[key] = value  # data, not schema
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(document)
