"""What a publish process loads at start: not the analysis and anonymization libraries, which only a
few routes use and which would add ~100 MB to every worker process (the export bench's memory
target counts them)."""

from __future__ import annotations

import subprocess
import sys

from cityos.kernel.settings import REPO_ROOT

HEAVY = ("pandas", "pyarrow", "duckdb")


def _heavy_loaded_after(imports: str) -> set[str]:
    """Which of ``HEAVY`` a fresh interpreter holds after ``import <imports>``."""
    probe = f"import sys, {imports}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=True
    )
    return set(filter(None, done.stdout.strip().split(",")))


def test_the_publish_service_starts_without_the_analysis_libraries() -> None:
    assert _heavy_loaded_after("cityos.cli.main, services.publish.main, services.publish.app") == set()


def test_the_probe_sees_a_library_that_is_loaded() -> None:
    # The check above would pass on a probe that never saw anything: it must name what it finds.
    assert _heavy_loaded_after("pyarrow") == {"pyarrow"}
