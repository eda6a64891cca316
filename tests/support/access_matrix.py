"""The access matrix's world, written out independently of the code: 4 departments x 6 datasets (two
of each classification), the grants the owners make, and the answer every cell must give.

Shared by the tests that walk the matrix on each read path (records API, feeds, grants, a
department's analysis workspace), so every path is held to the same rules.

Two extra datasets (an internal one of the fire bureau, a personal one of health and welfare) live
in a temporary copy of ``schemas/`` so that every classification has two datasets.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cityos.kernel.settings import REPO_ROOT
from tests.support.feeds import aed, copier
from tests.support.moves import VALID_MOVE

DEPARTMENTS = ("digital", "fire", "health-welfare", "planning")
# dataset -> (classification, owner)
DATASETS = {
    "aed": ("public", "fire"),
    "tourism": ("public", "city-brand"),
    "copier-usage": ("internal", "digital"),
    "fire-kpi": ("internal", "fire"),
    "resident-moves": ("personal", "citizens"),
    "welfare-cases": ("personal", "health-welfare"),
}
# Grants the owners make before the matrix runs: (dataset, grantee) -> fields (None: all).
GRANTS: dict[tuple[str, str], list[str] | None] = {
    ("copier-usage", "health-welfare"): None,
    ("fire-kpi", "digital"): ["部局コード", "枚数_モノクロ"],
}
RECORD_KEYS = {
    "aed": "NO",
    "tourism": "NO",
    "copier-usage": "ID",
    "fire-kpi": "ID",
    "resident-moves": "異動ID",
    "welfare-cases": "ID",
}
PER_DATASET = 4


def may_read(department: str, dataset: str) -> bool:
    classification, owner = DATASETS[dataset]
    if classification == "public":
        return True
    if classification == "internal":
        return department == owner or (dataset, department) in GRANTS
    return False


def may_manage(department: str, dataset: str) -> bool:
    classification, owner = DATASETS[dataset]
    return classification == "internal" and department == owner


def expected_fields(department: str, dataset: str) -> set[str] | None:
    """The fields a department reads of a dataset it may read: None for every field."""
    fields = GRANTS.get((dataset, department))
    if fields is None or DATASETS[dataset][1] == department:
        return None
    return set(fields) | {RECORD_KEYS[dataset]}


def schemas_with_extra_datasets(target: Path) -> Path:
    shutil.copytree(REPO_ROOT / "schemas", target)
    for dataset, classification, owner in (
        ("fire-kpi", "internal", "fire"),
        ("welfare-cases", "personal", "health-welfare"),
    ):
        folder = target / dataset
        shutil.copytree(target / "copier-usage", folder)
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        meta.update(id=dataset, department=owner, classification=classification)
        (folder / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        schema = json.loads((folder / "v1.schema.json").read_text(encoding="utf-8"))
        schema["$id"] = f"https://cityos.example/schemas/{dataset}/1"
        (folder / "v1.schema.json").write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    return target


def record_for(dataset: str, number: int) -> dict[str, Any]:
    key = RECORD_KEYS[dataset]
    if dataset in ("copier-usage", "fire-kpi", "welfare-cases"):
        return copier(number, 1)
    # Complete records: the catalog checks every upsert against its schema.
    if dataset == "aed":
        return {**aed(number, 1), key: f"M{number:04d}"}
    if dataset == "resident-moves":
        return {**VALID_MOVE, key: f"M{number:04d}"}
    return {
        key: f"M{number:04d}",
        "名称": f"行列試験{number}",
        "名称_カナ": "ギョウレツシケン",
        "住所": "福岡県北九州市小倉北区城内1-1",
        "説明": "行列試験の施設",
        "緯度": 33.88,
        "経度": 130.87,
    }
