"""Entry point of the publish service: migrate, build the app, serve it. Wiring only."""

from __future__ import annotations

import uvicorn

from cityos.kernel.db.engine import migrate
from cityos.kernel.settings import Settings
from services.publish.app import create_app


def serve(settings: Settings) -> None:
    """Run the open-data API until interrupted."""
    # Migrating first lets the API start on an empty database (fresh install, local runs) instead of
    # failing on its first query.
    migrate(settings.database_url)
    app = create_app(settings)
    # uvicorn's own proxy handling stays off: which forwarded headers to believe for links is decided
    # by services.publish.public_base, from the configured trusted proxies only.
    uvicorn.run(app, host=settings.publish_host, port=settings.publish_port, proxy_headers=False)
