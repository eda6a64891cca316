"""Third-party browser assets served from the service's own origin: a city network without a public
CDN still gets its map and its API docs.

The files come from npm at the versions pinned in ``web/package-lock.json`` (``make env`` runs
``npm ci``). Only each package's distribution folder is exposed, never its sources or manifests.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

VENDOR_PREFIX = "/static/vendor"

# URL name -> folder inside node_modules that holds what a browser loads.
VENDOR_FOLDERS: dict[str, str] = {
    "leaflet": "leaflet/dist",
    "swagger-ui": "swagger-ui-dist",
}


class MissingWebAssets(RuntimeError):
    """The npm assets were never fetched: say how to fetch them instead of serving 404s."""


def vendor_folder(assets_dir: Path, name: str) -> Path:
    folder = assets_dir / VENDOR_FOLDERS[name]
    if not folder.is_dir():
        raise MissingWebAssets(
            f"browser assets not found at {folder}: run `make env` (npm ci --prefix web) or set "
            "CITYOS_WEB_ASSETS_DIR to a node_modules folder holding web/package.json's packages"
        )
    return folder


def mount_vendor_assets(app: Starlette, assets_dir: Path, names: tuple[str, ...]) -> None:
    """Serve each named package's files under ``/static/vendor/<name>/``."""
    for name in names:
        app.mount(
            f"{VENDOR_PREFIX}/{name}", StaticFiles(directory=vendor_folder(assets_dir, name)), name=name
        )
