"""The import contracts of ``pyproject.toml`` hold on this tree, and a wrong import breaks them by name.

The check runs the real ``lint-imports`` on a copy of the packages, so a sideways import added on
purpose proves the contract is enforced rather than merely declared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_tree(target: Path) -> Path:
    for package in ("cityos", "services"):
        shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", target / "pyproject.toml")
    return target


@pytest.fixture(scope="module")
def lint_available() -> None:
    if not LINT_IMPORTS.exists():
        pytest.skip(f"lint-imports not installed beside {sys.executable}")


@pytest.mark.usefixtures("lint_available")
def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.usefixtures("lint_available")
def test_a_service_importing_another_breaks_the_independence_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    module = tree / "services" / "publish" / "app.py"
    module.write_text(module.read_text(encoding="utf-8") + "\nimport services.catalog.store  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Services are independent: no service imports another BROKEN" in result.stdout
    assert "services.publish.app -> services.catalog.store" in result.stdout


@pytest.mark.usefixtures("lint_available")
def test_the_kernel_importing_the_domain_breaks_the_floors_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    module = tree / "cityos" / "kernel" / "settings.py"
    module.write_text(module.read_text(encoding="utf-8") + "\nimport cityos.domain.access  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Floors point down: cli -> services | department -> domain -> kernel BROKEN" in result.stdout
    assert "cityos.kernel.settings -> cityos.domain.access" in result.stdout
