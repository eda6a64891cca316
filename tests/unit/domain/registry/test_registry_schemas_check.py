"""``cityos schemas check`` on a temporary git repository holding a copy of some of our datasets:
incompatible edits fail with their reasons, compatible ones pass, and so do new datasets and a
repository without any commit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cityos.domain.registry.ci import check_schema_tree
from cityos.kernel.settings import REPO_ROOT

DATASETS = ("aed", "public-toilet")


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@city.example.jp", "-c", "user.name=CI", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose only commit holds schemas/ with two datasets."""
    schemas = tmp_path / "repo" / "schemas"
    schemas.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "schemas" / "departments.json", schemas / "departments.json")
    for dataset in DATASETS:
        shutil.copytree(REPO_ROOT / "schemas" / dataset, schemas / dataset)
    git(tmp_path / "repo", "init", "-q")
    git(tmp_path / "repo", "add", "schemas")
    git(tmp_path / "repo", "commit", "-q", "-m", "schemas")
    return tmp_path / "repo"


def edit(file: Path, change: Any) -> None:
    document = json.loads(file.read_text(encoding="utf-8"))
    change(document)
    file.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")


def run_check(repo: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cityos", "schemas", "check", "--schemas-dir", str(repo / "schemas"), *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unchanged_tree_passes(repo: Path) -> None:
    result = run_check(repo)
    assert result.returncode == 0, result.stderr
    assert "schemas check passed" in result.stderr


def test_incompatible_edit_fails_with_reasons(repo: Path) -> None:
    def drop_kana(document: dict[str, Any]) -> None:
        del document["properties"]["名称_カナ"]
        document["required"].remove("名称_カナ")

    edit(repo / "schemas" / "aed" / "v1.schema.json", drop_kana)
    result = run_check(repo)
    assert result.returncode == 1
    assert (
        "aed/v1.schema.json#/properties/名称_カナ: PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
        in result.stderr
    )
    assert "閉じたスキーマ" in result.stderr


def test_compatible_edit_passes(repo: Path) -> None:
    def add_optional(document: dict[str, Any]) -> None:
        document["properties"]["備考2"] = {"type": "string", "title": "備考2", "maxLength": 200}

    edit(repo / "schemas" / "aed" / "v1.schema.json", add_optional)
    result = run_check(repo)
    assert result.returncode == 0, result.stderr
    assert "aed/v1.schema.json" in result.stderr  # named as edited


def test_new_version_is_checked_against_the_previous_one(repo: Path) -> None:
    folder = repo / "schemas" / "aed"
    v2 = json.loads((folder / "v1.schema.json").read_text(encoding="utf-8"))
    v2["$id"] = "https://cityos.example/schemas/aed/2"
    v2["properties"]["設置位置"]["maxLength"] = 5  # narrowed
    (folder / "v2.schema.json").write_text(json.dumps(v2, ensure_ascii=False), encoding="utf-8")
    result = check_schema_tree(repo / "schemas")
    assert [(f.file, f.rule, f.pointer) for f in result.findings] == [
        ("aed/v2.schema.json", "KEYWORD_NARROWED", "/properties/設置位置/maxLength")
    ]
    v2["properties"]["設置位置"].pop("maxLength")  # widened: compatible, but no longer bounded
    (folder / "v2.schema.json").write_text(json.dumps(v2, ensure_ascii=False), encoding="utf-8")
    result = check_schema_tree(repo / "schemas")
    assert [(f.file, f.rule) for f in result.findings] == [("aed/v2.schema.json", "lint:string_bounded")]


def test_removed_version_fails(repo: Path) -> None:
    git(repo, "rm", "-q", "-r", "schemas/public-toilet")
    result = check_schema_tree(repo / "schemas", ref="HEAD")
    assert [f.rule for f in result.findings] == ["DATASET_REMOVED"]


def test_new_dataset_and_a_repository_without_commits_pass(tmp_path: Path) -> None:
    schemas = tmp_path / "fresh" / "schemas"
    schemas.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "schemas" / "departments.json", schemas / "departments.json")
    shutil.copytree(REPO_ROOT / "schemas" / "aed", schemas / "aed")
    git(tmp_path / "fresh", "init", "-q")  # no commit at all: HEAD does not exist yet
    result = run_check(tmp_path / "fresh")
    assert result.returncode == 0, result.stderr
    assert "aed/v1.schema.json" in result.stderr


def test_a_dataset_declaring_forward_may_tighten_in_a_new_version(tmp_path: Path) -> None:
    """resident-moves v2 refuses what v1 let through (prefectures, household sizes, codes): not
    BACKWARD, so the dataset declares FORWARD -- v1 readers still read every v2 record."""
    schemas = tmp_path / "repo" / "schemas"
    (schemas / "resident-moves").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "schemas" / "departments.json", schemas / "departments.json")
    source = REPO_ROOT / "schemas" / "resident-moves"
    for name in ("dataset.json", "v1.schema.json"):
        shutil.copy(source / name, schemas / "resident-moves" / name)
    git(tmp_path / "repo", "init", "-q")
    git(tmp_path / "repo", "add", "schemas")
    git(tmp_path / "repo", "commit", "-q", "-m", "schemas")
    shutil.copy(source / "v2.schema.json", schemas / "resident-moves" / "v2.schema.json")
    result = check_schema_tree(schemas)
    assert result.ok, [f.line() for f in result.findings]
    assert result.checked_versions == ["resident-moves/v2.schema.json"]

    edit(schemas / "resident-moves" / "dataset.json", lambda meta: meta.pop("compatibility"))
    refused = check_schema_tree(schemas)
    assert {(f.rule, f.pointer) for f in refused.findings} >= {
        ("ENUM_ADDED", "/properties/前住所地_都道府県/enum"),
        ("KEYWORD_NARROWED", "/properties/世帯人数/maximum"),
    }
