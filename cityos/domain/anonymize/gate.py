"""The gate: profile check → lattice search → the same generalisation for every record →
shuffle → fresh pseudonyms → write → independent verification of the written file.

Nothing leaves the gate unless every step passes: on any failure the file is removed and the
outcome lists every reason. The generalisation is deterministic (same records and profile, same
levels and rows); the row order and the pseudonyms are not: they come from the operating system's
cryptographic generator (``secrets``), so no seed, chosen or recorded, can re-link a release's rows
to the source order or predict another release's pseudonyms.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cityos.domain.anonymize.hierarchy import HIERARCHY_VERSION, Array, Hierarchy
from cityos.domain.anonymize.profile import Profile, UnplacedRecords, build_hierarchies, check_against_schema
from cityos.domain.anonymize.search import Lattice, Model, Node, SearchResult, search
from cityos.domain.anonymize.verify import verify_release

_PSEUDONYM_LETTERS = np.array(list("abcdefghjkmnpqrstuvwxyz"))  # no digits: never a number-like id
_PSEUDONYM_LENGTH = 12
NAMED_RECORDS = 20  # keys shown per refusal reason: enough to start repairs, short enough to read


@dataclass(frozen=True)
class OffendingRecords:
    """Records that stop a release for one reason: how many, and the first keys, so an operator
    can correct or delete them (the source's record keys; never shown outside the operator's
    answer and the audit trail)."""

    quasi_identifier: str
    problem: str  # completes "N records …"
    count: int
    keys: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The operator's view in a refusal answer and the audit trail."""
        return {
            "quasi_identifier": self.quasi_identifier,
            "problem": self.problem,
            "count": self.count,
            "keys": list(self.keys),
            "message": self.line(),
        }

    def line(self) -> str:
        """e.g. '年齢: 3 records below the lowest band 0: M0003, M0007, M0012'."""
        noun = "record" if self.count == 1 else "records"
        more = ", …" if self.count > len(self.keys) else ""
        return f"{self.quasi_identifier}: {self.count} {noun} {self.problem}: {', '.join(self.keys)}{more}"


def offending_records(
    error: UnplacedRecords, frame: pd.DataFrame, record_key: str | None
) -> list[OffendingRecords]:
    """Per problem, the count and the first keys of the records it concerns (row numbers, from 1,
    when the frame has no record-key column)."""
    keys = frame[record_key] if record_key is not None and record_key in frame else None
    found = []
    for problem in error.problems:
        rows = problem.rows[:NAMED_RECORDS]
        named = [str(keys.iloc[r]) for r in rows] if keys is not None else [f"row {r + 1}" for r in rows]
        found.append(OffendingRecords(problem.name, problem.problem, len(problem.rows), tuple(named)))
    return found


@dataclass
class GateOutcome:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    path: Path | None = None
    source_records: int = 0
    released_records: int = 0
    node: Node | None = None
    search: SearchResult | None = None
    sha256: str | None = None
    distinct_l: int = 0  # fewest distinct sensitive values in a class (reported, not required)
    offending: list[OffendingRecords] = field(default_factory=list)  # records that stopped the gate
    hierarchies: list[Hierarchy] = field(default_factory=list, repr=False)
    columns: list[str] = field(default_factory=list)  # the written file's columns, row id first

    @property
    def levels(self) -> dict[str, int]:
        if self.node is None:
            return {}
        return {h.name: level for h, level in zip(self.hierarchies, self.node.levels, strict=True)}

    def restricted_record(self, profile: Profile) -> dict[str, Any]:
        """What goes into the restricted audit record (the method): never published."""
        return {
            "profile": profile.dataset,
            "profile_version": profile.version,
            "config_hash": profile.config_hash,
            "hierarchy_version": HIERARCHY_VERSION,
            "levels": self.levels,
            "loss": None if self.node is None else round(self.node.loss, 6),
            "suppressed": None if self.node is None else self.node.suppressed,
            "achieved_k": None if self.node is None else self.node.min_class,
            "achieved_alpha": None if self.node is None else round(self.node.max_share, 6),
            "distinct_l": self.distinct_l,
            "k": profile.k,
            "alpha": profile.sensitive.alpha,
            "max_suppression": profile.max_suppression,
            "deleted": list(profile.delete),
            "source_records": self.source_records,
            "released_records": self.released_records,
            "columns": self.columns,
            "sha256": self.sha256,
            "evaluated_nodes": None if self.search is None else self.search.evaluated,
            "libraries": library_versions(),
        }


def library_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("numpy", "pandas")}


def uniform_indices(count: int, bound: int) -> Array:
    """``count`` integers uniform in [0, ``bound``) (``bound`` ≤ 256) from the OS's cryptographic
    generator; bytes at or above the largest multiple of ``bound`` are redrawn, so no value is
    favoured by the modulo."""
    limit = 256 - 256 % bound
    drawn = np.empty(0, dtype=np.uint8)
    while len(drawn) < count:
        raw = np.frombuffer(secrets.token_bytes(count - len(drawn) + 64), dtype=np.uint8)
        drawn = np.concatenate([drawn, raw[raw < limit]])
    return (drawn[:count] % bound).astype(np.int64)


def shuffled_order(count: int) -> Array:
    """A uniformly random permutation of ``range(count)`` from ``secrets.SystemRandom``."""
    order = list(range(count))
    secrets.SystemRandom().shuffle(order)
    return np.asarray(order, dtype=np.int64)


def pseudonyms(count: int) -> Array:
    """Distinct random ids ('R' + 12 letters) from the OS's cryptographic generator: no release's
    ids can be derived from another's, nor from anything recorded about the run."""

    def draw(n: int) -> Array:
        indices = uniform_indices(n * _PSEUDONYM_LENGTH, len(_PSEUDONYM_LETTERS))
        letters = _PSEUDONYM_LETTERS[indices.reshape(n, _PSEUDONYM_LENGTH)]
        # Join each row of 12 one-letter strings without a Python loop: view them as one 12-char string.
        joined: Array = np.ascontiguousarray(letters).view(f"<U{_PSEUDONYM_LENGTH}").ravel()
        return np.char.add("R", joined)

    ids = draw(count)
    duplicate = pd.Series(ids).duplicated().to_numpy()
    while duplicate.any():  # pragma: no cover - 23^12 values: a clash is vanishingly rare
        ids[duplicate] = draw(int(duplicate.sum()))
        duplicate = pd.Series(ids).duplicated().to_numpy()
    return ids.astype(object)


def _sensitive_codes(frame: pd.DataFrame, profile: Profile) -> tuple[Array, Array]:
    values = frame.get(profile.sensitive.attribute, None)
    if values is None:
        return np.zeros(len(frame), dtype=np.int64), np.ones(len(frame), dtype=bool)
    codes, _ = pd.factorize(values.fillna(""), sort=True)
    return codes.astype(np.int64), values.isin(profile.sensitive.benign).to_numpy()


def released_columns(profile: Profile, items: Sequence[str] | None) -> list[str]:
    """The file's columns: the row id, then the profile's output (or only ``items`` of it), in the
    profile's order."""
    return [
        name for name in profile.output_columns if name == profile.row_id or items is None or name in items
    ]


def item_problems(profile: Profile, items: Sequence[str] | None) -> list[str]:
    """Why ``items`` cannot be the columns of a release under ``profile`` (empty when they can)."""
    if items is None:
        return []
    if not items:
        return ["items: name at least one"]
    offered = {name for name in profile.output_columns if name != profile.row_id}
    unknown = [name for name in items if name not in offered]
    return [f"items not offered by this release profile: {', '.join(unknown)}"] if unknown else []


def _write(
    frame: pd.DataFrame,
    hierarchies: list[Hierarchy],
    node: Node,
    removed: Array,
    profile: Profile,
    path: Path,
    columns_out: list[str],
) -> int:
    kept = ~removed
    columns: dict[str, Any] = {}
    for hier, level in zip(hierarchies, node.levels, strict=True):
        columns[hier.name] = hier.labels_at(level)[kept]
    sensitive = profile.sensitive.attribute
    columns[sensitive] = (
        frame[sensitive].to_numpy()[kept] if sensitive in frame else np.full(int(kept.sum()), None)
    )
    for name in profile.keep:
        columns[name] = frame[name].to_numpy()[kept] if name in frame else np.full(int(kept.sum()), None)
    # Only the delivered columns: a partner receives the items its approved proposal named. Any
    # subset of a k-anonymous table's columns is k-anonymous (its classes merge), and a merged
    # class's share of a sensitive value is at most the largest share among the classes it merges.
    released = pd.DataFrame({name: values for name, values in columns.items() if name in columns_out})
    order = shuffled_order(len(released))  # row order must say nothing about the source order
    released = released.iloc[order].reset_index(drop=True)
    released.insert(0, profile.row_id, pseudonyms(len(released)))
    path.parent.mkdir(parents=True, exist_ok=True)
    released.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return len(released)


def removed_rows(lattice: Lattice, node: Node, model: Model) -> Array:
    """The records the node suppresses (the search's own rule)."""
    ids, _, _, bad = lattice.verdicts(node.levels, model)
    return np.asarray(bad[ids], dtype=bool)


def _distinct_l(lattice: Lattice, node: Node, removed: Array) -> int:
    ids, count = lattice.classes(node.levels)
    pairs = np.unique(np.stack([ids[~removed], lattice.sensitive[~removed]]), axis=1)
    per_class = np.bincount(pairs[0], minlength=count)
    present = np.unique(ids[~removed])
    return int(per_class[present].min()) if len(present) else 0


def run_gate(
    frame: pd.DataFrame,
    profile: Profile,
    schema: dict[str, Any],
    *,
    path: Path,
    record_key: str | None = None,
    items: Sequence[str] | None = None,
) -> GateOutcome:
    """Anonymise ``frame`` into ``path`` or refuse; the file exists afterwards only if the gate passed.

    ``record_key`` names the column whose values identify the records a refusal is about. ``items``
    (a partner release: its approved proposal's items) limits the file to those columns and the
    row id; the search still covers every quasi-identifier of the profile.
    """
    outcome = GateOutcome(passed=False, source_records=len(frame))
    path.unlink(missing_ok=True)
    reasons = check_against_schema(profile, schema) + item_problems(profile, items)
    if reasons:
        outcome.reasons = reasons
        return outcome
    try:
        hierarchies = build_hierarchies(profile, frame)
    except UnplacedRecords as exc:
        outcome.offending = offending_records(exc, frame, record_key)
        outcome.reasons = [found.line() for found in outcome.offending]
        return outcome
    except ValueError as exc:
        outcome.reasons = [str(exc)]
        return outcome
    outcome.hierarchies = hierarchies
    if len(frame) < profile.k:
        outcome.reasons.append(f"{len(frame)} records: fewer than k={profile.k}, no class can reach k")
        return outcome
    sensitive, benign = _sensitive_codes(frame, profile)
    lattice = Lattice(hierarchies, sensitive, benign)
    model = Model(profile.k, profile.sensitive.alpha, int(profile.max_suppression * len(frame)))
    result = search(lattice, model)
    outcome.search = result
    if result.best is None:
        outcome.reasons += _refusal_reasons(result, model, profile, len(frame))
        return outcome
    node = result.best
    outcome.node = node
    removed = removed_rows(lattice, node, model)
    outcome.distinct_l = _distinct_l(lattice, node, removed)
    outcome.columns = released_columns(profile, items)
    outcome.released_records = _write(frame, hierarchies, node, removed, profile, path, outcome.columns)
    allowed = {h.name: set(h.labels[level]) for h, level in zip(hierarchies, node.levels, strict=True)}
    problems = verify_release(
        path, profile, allowed, expected_rows=outcome.released_records, expected_columns=outcome.columns
    )
    if problems:
        path.unlink(missing_ok=True)
        outcome.reasons = [f"verification: {p}" for p in problems]
        return outcome
    outcome.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    outcome.passed = True
    return outcome


def _refusal_reasons(result: SearchResult, model: Model, profile: Profile, n: int) -> list[str]:
    reasons = [
        f"no generalisation meets k={profile.k} and alpha={profile.sensitive.alpha} on "
        f"{profile.sensitive.attribute} within the suppression cap of {model.max_suppressed} records "
        f"({profile.max_suppression:.0%} of {n})"
    ]
    closest = result.closest
    if closest is not None:
        reasons.append(
            f"the closest generalisation (levels {list(closest.levels)}) would suppress {closest.suppressed} "
            f"records ({closest.suppressed / n:.1%})"
        )
    reasons.append(
        f"{result.evaluated} of {result.lattice_size} level combinations evaluated, {result.pruned} pruned"
    )
    return reasons
