"""Where the shared, read-only fixtures live: ``$CITYOS_FIXTURES``, else ``../shared/fixtures``
beside the repository, else beside the repository this one was cloned from (a clone made into a
temporary folder). Fixtures are never copied into the repository; tests read them in place.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _locate() -> Path:
    configured = os.environ.get("CITYOS_FIXTURES")
    if configured:
        return Path(configured)
    beside = _REPO_ROOT.parent / "shared" / "fixtures"
    if beside.is_dir():
        return beside
    origin = subprocess.run(
        ["git", "-C", str(_REPO_ROOT), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        cloned_from = Path(origin).resolve().parent / "shared" / "fixtures"
        if cloned_from.is_dir():
            return cloned_from
    return beside  # missing: tests that read fixtures fail naming this path


FIXTURES: Path = _locate()
OPENDATA_SAMPLES: Path = FIXTURES / "opendata-jp" / "samples"

if __name__ == "__main__":  # `python -m tests.support.fixtures_path`: used by deploy/local/test.sh
    print(FIXTURES)
    raise SystemExit(0 if FIXTURES.is_dir() else 1)
