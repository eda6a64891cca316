"""Where the shared, read-only fixtures live: ``../shared/fixtures`` beside the repo, or ``$CITYOS_FIXTURES``.

Fixtures are never copied into the repository; tests read them in place.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[1]

FIXTURES: Path = Path(os.environ.get("CITYOS_FIXTURES") or _REPO_ROOT.parent / "shared" / "fixtures")
OPENDATA_SAMPLES: Path = FIXTURES / "opendata-jp" / "samples"
