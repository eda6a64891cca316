"""The small HTTP side door of the Kafka-fed services that have no web app of their own: ``/metrics``
(Prometheus), ``/healthz`` (the process answers) and ``/readyz`` (503 until the service says it is
ready). Standard library only, on a daemon thread, so it never competes with the service's work."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

__all__ = ["start_operations_server"]


def _handler(ready: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                status, body, kind = 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status, body, kind = 200, b'{"status":"ok"}', "application/json"
            elif self.path == "/readyz":
                status = 200 if ready.is_set() else 503
                body = b'{"status":"ready"}' if ready.is_set() else b'{"status":"starting"}'
                kind = "application/json"
            else:
                status, body, kind = 404, b'{"error":"not_found"}', "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes every few seconds would drown the log

    return Handler


def start_operations_server(
    host: str, port: int, ready: threading.Event, *, name: str
) -> ThreadingHTTPServer:
    """Serve the three operations routes on ``host:port`` until the caller's ``server.shutdown()``."""
    server = ThreadingHTTPServer((host, port), _handler(ready))
    threading.Thread(target=server.serve_forever, name=f"{name}-http", daemon=True).start()
    return server
