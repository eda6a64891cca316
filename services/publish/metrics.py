"""Prometheus metrics of the publish API, declared in one place, on a registry the app owns.

Each ``create_app`` builds its own ``CollectorRegistry``: the global default registry would refuse
a second app's metrics (duplicate names) and mix counts between test apps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityos.domain.metric_labels import NON_PUBLIC

# Label values that are not a route template. Requests matching no route share one value so that
# scanners probing random paths cannot create new series.
UNMATCHED_ROUTE = "unmatched"
NO_FORMAT = "none"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Handlers set ``request.state.response_format`` to the representation they chose; Starlette keeps
# request.state in scope["state"], where this middleware reads it after the response.
FORMAT_STATE_KEY = "response_format"


def _fold_everything(_: str) -> str:
    return NON_PUBLIC


class Children:
    """A metric's labelled children, each looked up once: ``labels()`` costs a lock and a tuple
    per call, a visible share of answering a cached page. Label sets here are bounded, so is this.

    With an ``owner``, the first label is a dataset, passed through the owner's ``dataset_label``
    (a public dataset's id, anything else ``non-public``) before it becomes a label value."""

    def __init__(self, metric: Counter | Histogram, owner: PublishMetrics | None = None) -> None:
        self.metric = metric
        self._owner = owner
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        if self._owner is not None:
            values = (self._owner.dataset_label(values[0]), *values[1:])
        child = self._children.get(values)
        if child is None:
            # Two threads racing here get the same child: the metric keeps one per label set.
            child = self._children[values] = self.metric.labels(*values)
        return child


class PublishMetrics:
    """The publish service's collectors, bound to one registry.

    Every dataset label goes through ``dataset_label``: ``/metrics`` is open to monitoring, so it
    names public datasets only (see ``cityos.domain.metric_labels``). Until the app wires the
    catalog's classifications in (``label_datasets_with``), every dataset folds."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.dataset_label: Callable[[str], str] = _fold_everything
        self.requests = Counter(
            "cityos_publish_http_requests",
            "HTTP requests answered by the publish API.",
            ["route", "method", "status", "format"],
            registry=registry,
        )
        self.duration = Histogram(
            "cityos_publish_http_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response.",
            ["route"],
            registry=registry,
        )
        self.records_served = Counter(
            "cityos_publish_records_served",
            "Records returned to clients, by public dataset (non-public ones as one) and output format.",
            ["dataset", "format"],
            registry=registry,
        )

        # Per dataset, format and caller class (anonymous, developer, department, applicant): a
        # bounded label set. Individual keys are counted in the usage report, not as labels.
        usage_labels = ["dataset", "format", "key_class"]
        self.dataset_requests = Counter(
            "cityos_publish_dataset_requests",
            "Successful data requests per dataset, output format and caller class.",
            usage_labels,
            registry=registry,
        )
        self.rows_served = Counter(
            "cityos_publish_served_rows",
            "Records (rows) served per dataset, output format and caller class.",
            usage_labels,
            registry=registry,
        )
        self.bytes_served = Counter(
            "cityos_publish_served_bytes",
            "Response body bytes served per dataset, output format and caller class.",
            usage_labels,
            registry=registry,
        )
        self.rate_limited = Counter(
            "cityos_publish_rate_limited_requests",
            "Requests refused with 429, per caller class.",
            ["key_class"],
            registry=registry,
        )

        # Hot-path lookups of the per-request series.
        self.request_series = Children(self.requests)
        self.duration_series = Children(self.duration)
        self.records_served_series = Children(self.records_served, self)
        self.dataset_requests_series = Children(self.dataset_requests, self)
        self.rows_served_series = Children(self.rows_served, self)
        self.bytes_served_series = Children(self.bytes_served, self)

    def label_datasets_with(self, dataset_label: Callable[[str], str]) -> None:
        """Name datasets by ``dataset_label`` (e.g. ``PublicDatasetLabels`` over the catalog)."""
        self.dataset_label = dataset_label

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """Body and content type, honouring an OpenMetrics ``Accept`` from Prometheus."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def route_template(scope: Scope, routes: list[BaseRoute]) -> str:
    """The matched route's path template, e.g. ``/api/v1/datasets/{dataset_id}``.

    FastAPI records its own routes in ``scope["route"]``; the built-in docs and OpenAPI routes are
    plain Starlette routes, and a CORS preflight matches a GET route only partially, so those are
    found by matching again.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    partial: str | None = None
    for candidate in routes:
        match, _ = candidate.matches(scope)
        candidate_path = getattr(candidate, "path", None)
        if not isinstance(candidate_path, str):
            continue
        if match is Match.FULL:
            return candidate_path
        if match is Match.PARTIAL and partial is None:
            partial = candidate_path
    return partial if partial is not None else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by route template.

    Pure ASGI rather than ``BaseHTTPMiddleware`` so that streaming bodies are timed to the last byte
    and exceptions propagate unchanged.
    """

    def __init__(self, app: ASGIApp, *, metrics: PublishMetrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before starting a response

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope, self.routes)
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "other"
            state: MutableMapping[str, Any] = scope.get("state") or {}
            response_format = str(state.get(FORMAT_STATE_KEY, NO_FORMAT))
            self.metrics.request_series(route, method, str(status), response_format).inc()
            self.metrics.duration_series(route).observe(time.perf_counter() - started)
