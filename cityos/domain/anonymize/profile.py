"""Release profiles (``profiles/<dataset>.release.json``): loading and checking against the schema.

A profile says, for every column of the personal dataset, whether it is deleted, generalised as a
quasi-identifier, kept as the sensitive attribute or kept as non-personal; anything unlisted is
deleted. Checks collect every problem, so a reviewer sees them all at once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cityos.domain.anonymize import hierarchy as h
from cityos.domain.anonymize.places import WARDS, town_blocks
from cityos.kernel.settings import REPO_ROOT

PROFILES_DIR = REPO_ROOT / "profiles"
KINDS = ("age", "categories", "address", "date", "prefecture", "integer")


class ProfileError(ValueError):
    """A profile that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Quasi:
    name: str  # output column
    kind: str
    spec: dict[str, Any]  # the profile entry as written
    min_level: int = 0

    @property
    def sources(self) -> list[str]:
        keys = {"age": ("birth", "at"), "address": ("ward", "block")}.get(self.kind, ("source",))
        return [str(self.spec[key]) for key in keys if key in self.spec]


@dataclass(frozen=True)
class Sensitive:
    attribute: str
    benign: frozenset[str]
    alpha: float  # max share of any one non-benign value in a class


@dataclass(frozen=True)
class Profile:
    dataset: str
    version: int
    delete: tuple[str, ...]
    keep: tuple[str, ...]
    quasi: tuple[Quasi, ...]
    sensitive: Sensitive
    k: int
    max_suppression: float
    row_id: str
    document: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def config_hash(self) -> str:
        """SHA-256 of the canonical profile JSON: which method a release used, without publishing it."""
        canonical = json.dumps(self.document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def output_columns(self) -> list[str]:
        return [self.row_id, *(q.name for q in self.quasi), self.sensitive.attribute, *self.keep]


def profile_path(dataset_id: str, directory: Path = PROFILES_DIR) -> Path:
    return directory / f"{dataset_id}.release.json"


def load_profile(path: Path) -> Profile:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProfileError([f"{path}: {exc}"]) from exc
    return parse_profile(document)


def parse_profile(document: dict[str, Any]) -> Profile:
    problems: list[str] = []
    required = ("dataset", "delete", "quasi_identifiers", "sensitive", "k", "max_suppression", "row_id")
    problems += [f"missing field {name}" for name in required if name not in document]
    if problems:
        raise ProfileError(problems)
    quasi = []
    for entry in document["quasi_identifiers"]:
        kind = entry.get("kind")
        if kind not in KINDS:
            problems.append(f"quasi-identifier {entry.get('name')}: unknown kind {kind!r}")
            continue
        quasi.append(Quasi(str(entry["name"]), kind, entry, int(entry.get("min_level", 0))))
    sensitive_doc = document["sensitive"]
    sensitive = Sensitive(
        str(sensitive_doc["attribute"]),
        frozenset(sensitive_doc.get("benign", [])),
        float(sensitive_doc["alpha"]),
    )
    k = int(document["k"])
    cap = float(document["max_suppression"])
    if k < 2:
        problems.append(f"k must be at least 2, got {k}")
    if not 0 <= cap < 1:
        problems.append(f"max_suppression must be in [0, 1), got {cap}")
    if not 0 < sensitive.alpha <= 1:
        problems.append(f"sensitive alpha must be in (0, 1], got {sensitive.alpha}")
    for q in quasi:
        if q.kind == "integer":
            problems += _check_bounds(q.name, q.spec.get("bounds", []))
        if q.kind == "age":
            widths = q.spec.get("widths", [])
            if any(b % a for a, b in itertools.pairwise(widths)) or not widths:
                problems.append(f"{q.name}: each band width must divide the next")
    if problems:
        raise ProfileError(problems)
    return Profile(
        dataset=str(document["dataset"]),
        version=int(document.get("version", 1)),
        delete=tuple(document["delete"]),
        keep=tuple(document.get("keep", [])),
        quasi=tuple(quasi),
        sensitive=sensitive,
        k=k,
        max_suppression=cap,
        row_id=str(document["row_id"]),
        document=document,
    )


def _check_bounds(name: str, bounds: list[list[int]]) -> list[str]:
    if not bounds:
        return [f"{name}: no bounds"]
    problems = []
    for finer, coarser in itertools.pairwise(bounds):
        if not set(coarser) <= set(finer) or coarser[0] != finer[0]:
            problems.append(f"{name}: bounds {coarser} do not coarsen {finer}")
    return problems


def _column_uses(profile: Profile) -> dict[str, str]:
    """How the profile uses each source column; a later role wins (keep and sensitive over quasi)."""
    used: dict[str, str] = {}
    for name in profile.delete:
        used[name] = "delete"
    for q in profile.quasi:
        for source in q.sources:
            used.setdefault(source, "quasi")
    for name in profile.keep:
        used[name] = "keep"
    used[profile.sensitive.attribute] = "sensitive"
    return used


def _role_problems(profile: Profile, tags: dict[str, Any]) -> list[str]:
    """Columns the profile uses in a role the schema's ``x-anonymization`` tag forbids."""
    problems = []
    for q in profile.quasi:
        for source in q.sources:
            if tags.get(source) == "direct":
                problems.append(f"{source} is a direct identifier; it cannot feed quasi-identifier {q.name}")
    for name in profile.keep:
        if tags.get(name) != "none":
            problems.append(f"{name} is kept as is but the schema marks it {tags.get(name, 'unknown')!r}")
    if tags.get(profile.sensitive.attribute) != "sensitive":
        problems.append(f"{profile.sensitive.attribute} is not a sensitive attribute in the schema")
    return problems


def _unhandled_problems(tags: dict[str, Any], used: dict[str, str]) -> list[str]:
    """Identifying columns of the schema the profile would let through unchanged."""
    problems = []
    for name, tag in tags.items():
        if tag == "direct" and used.get(name) != "delete":
            problems.append(f"direct identifier {name} must be listed in delete")
        if tag == "quasi" and name not in used:
            problems.append(f"quasi-identifier {name} is neither generalised nor deleted")
    return problems


def _column_name_problems(profile: Profile, properties: dict[str, Any], used: dict[str, str]) -> list[str]:
    """Columns the profile names that the dataset lacks, and output names that clash with its columns."""
    problems = []
    for name in used:
        if name not in properties:
            problems.append(f"{name} is not a column of the dataset")
    for q in profile.quasi:
        if q.name in properties and q.name not in q.sources:
            problems.append(f"output column {q.name} has the name of another source column; choose another")
    if profile.row_id in properties:
        problems.append(f"row id {profile.row_id} collides with a source column")
    return problems


def check_against_schema(profile: Profile, schema: dict[str, Any]) -> list[str]:
    """Every problem between a profile and the dataset's JSON Schema (empty when they agree)."""
    properties: dict[str, Any] = schema.get("properties", {})
    tags = {name: prop.get("x-anonymization", "direct") for name, prop in properties.items()}
    used = _column_uses(profile)
    return [
        *_role_problems(profile, tags),
        *_unhandled_problems(tags, used),
        *_column_name_problems(profile, properties, used),
    ]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    # A column absent from every record is all missing, which the hierarchies count as a class.
    return frame[name] if name in frame else pd.Series([None] * len(frame), dtype=object, index=frame.index)


class UnplacedRecords(ValueError):
    """Records some hierarchies cannot place, one problem per quasi-identifier (all of them, so an
    operator fixes every record in one pass)."""

    def __init__(self, problems: list[h.OutsideHierarchy]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def build_hierarchies(profile: Profile, frame: pd.DataFrame) -> list[h.Hierarchy]:
    """One hierarchy per quasi-identifier over ``frame``'s records.

    Raises ``UnplacedRecords`` (a ValueError) naming the rows of values outside a hierarchy, and
    ValueError for a profile whose levels do not nest.
    """
    built: list[h.Hierarchy] = []
    unplaced: list[h.OutsideHierarchy] = []
    for q in profile.quasi:
        try:
            built.append(_hierarchy(q, frame))
        except h.OutsideHierarchy as exc:
            unplaced.append(exc)
    if unplaced:
        raise UnplacedRecords(unplaced)
    return built


def _hierarchy(q: Quasi, frame: pd.DataFrame) -> h.Hierarchy:
    spec = q.spec
    if q.kind == "age":
        ages = h.ages_at(_column(frame, spec["birth"]), _column(frame, spec["at"]))
        bounds = h.age_bounds(spec["widths"], int(spec["top_code"]))
        return h.integer_hierarchy(q.name, ages, bounds, q.min_level)
    if q.kind == "integer":
        return h.integer_hierarchy(q.name, _column(frame, spec["source"]), spec["bounds"], q.min_level)
    if q.kind == "categories":
        values = _column(frame, spec["source"])
        return h.category_hierarchy(q.name, values, spec["values"], spec.get("levels", []), q.min_level)
    if q.kind == "address":
        blocks = {ward.name: town_blocks(ward) for ward in WARDS}
        return h.address_hierarchy(
            q.name, _column(frame, spec["ward"]), _column(frame, spec["block"]), blocks
        )
    if q.kind == "date":
        return h.date_hierarchy(q.name, _column(frame, spec["source"]), q.min_level)
    return h.prefecture_hierarchy(q.name, _column(frame, spec["source"]), q.min_level)
