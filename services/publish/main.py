"""Entry point of the publish service: migrate, build the app, serve it. Wiring only."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from cityos.kernel.db.engine import migrate
from cityos.kernel.settings import Settings, get_settings
from cityos.kernel.tcp_listener import tcp_listener
from services.publish.app import create_app


def serve(settings: Settings) -> None:
    """Run the open-data API until interrupted."""
    # Migrating first lets the API start on an empty database (fresh install, local runs) instead of
    # failing on its first query.
    migrate(settings.database_url)
    # uvicorn's own proxy handling stays off: which forwarded headers to believe for links is decided
    # by services.publish.public_base, from the configured trusted proxies only. No access log: it
    # would write every caller's address, which the API never logs (services.publish.callers), and
    # /metrics already counts each request by route, status and format.
    host, port = settings.publish_host, settings.publish_port
    if settings.publish_workers > 1:
        # Each worker process builds its own app (engine, caches, limiter) from the environment:
        # uvicorn starts workers from an import string, never from an app object. The shared socket
        # is made here rather than by uvicorn so that its connections send without Nagle's delay
        # (cityos.kernel.tcp_listener).
        config = uvicorn.Config(
            f"{__name__}:app_from_environment", factory=True, workers=settings.publish_workers,
            host=host, port=port, proxy_headers=False, access_log=False,
        )  # fmt: skip
        server = uvicorn.Server(config)
        Multiprocess(config, target=server.run, sockets=[tcp_listener(host, port)]).run()
    else:
        uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=False, access_log=False)


def app_from_environment() -> FastAPI:
    """The app of one worker process, configured like the parent from ``CITYOS_*`` variables."""
    return create_app(get_settings())
