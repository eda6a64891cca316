"""``cityos schemas check``: the working tree's ``schemas/`` against a git ref (HEAD by default).

A version file is a published contract. The check fails when:

- a committed version file or dataset folder disappeared (versions are never withdrawn);
- a committed version was edited incompatibly with what it was (per the compatibility mode);
- a new version breaks the mode against the versions before it, or fails lint;
- an edited version fails lint.

A dataset with no committed files (new, or a repository without commits) only needs lint and
compatibility between its own versions.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityos.domain.registry.compatibility import DEFAULT_MODE, Incompatibility, Mode, check_mode
from cityos.domain.registry.lint import LintIssue, lint_schema
from cityos.kernel.references import load_bundle
from cityos.kernel.schemas import SchemaSet, load_schema_dir

_VERSION_SUFFIX = ".schema.json"


@dataclass
class Finding:
    """One reason the check fails, tied to a file."""

    file: str
    rule: str
    pointer: str
    en: str
    ja: str

    def line(self) -> str:
        where = f"{self.file}#{self.pointer}" if self.pointer else self.file
        return f"{where}: {self.rule}: {self.en}\n    {self.ja}"


@dataclass
class CheckResult:
    datasets: int = 0
    checked_versions: list[str] = field(default_factory=list)  # new or edited version files
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def committed_files(repo: Path, ref: str, folder: str) -> dict[str, bytes]:
    """``path -> bytes`` of every file under ``folder`` at ``ref``; empty when the ref does not exist
    (a repository without commits) or the folder was never committed."""
    probe = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return {}
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "-z", "--name-only", ref, "--", folder],
        capture_output=True,
        check=True,
    )
    files: dict[str, bytes] = {}
    for name in listing.stdout.decode("utf-8").split("\0"):
        if name:
            shown = subprocess.run(
                ["git", "-C", str(repo), "show", f"{ref}:{name}"], capture_output=True, check=True
            )
            files[name] = shown.stdout
    return files


def repo_root(path: Path) -> Path | None:
    """The git work tree holding ``path``; None outside one (or without git): nothing committed."""
    try:
        found = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def _committed_versions(files: Mapping[str, bytes], prefix: str) -> dict[str, dict[int, Any]]:
    """dataset -> version -> document, from committed ``<prefix><dataset>/v<N>.schema.json`` files."""
    versions: dict[str, dict[int, Any]] = {}
    for path, data in files.items():
        parts = path[len(prefix) :].split("/")
        if len(parts) != 2 or not parts[1].startswith("v") or not parts[1].endswith(_VERSION_SUFFIX):
            continue
        number = parts[1][1 : -len(_VERSION_SUFFIX)]
        if not number.isdigit():
            continue
        try:
            document = json.loads(data)
        except ValueError:
            continue  # a committed file that was never valid JSON cannot constrain anything
        versions.setdefault(parts[0], {})[int(number)] = document
    return versions


def _from_lint(file: str, issue: LintIssue) -> Finding:
    return Finding(file, f"lint:{issue.rule}", issue.pointer, issue.en, issue.ja)


def _from_incompatibility(file: str, problem: Incompatibility) -> Finding:
    return Finding(file, problem.rule, problem.pointer, problem.en, problem.ja)


def check_schema_tree(
    schemas_dir: Path,
    *,
    ref: str = "HEAD",
    mode: Mode = DEFAULT_MODE,
    modes: Mapping[str, Mode] | None = None,
) -> CheckResult:
    """Compare ``schemas_dir`` (working tree) with its committed state at ``ref``.

    Raises ``SchemaError`` when the working tree does not even load (that is a failure too).
    """
    schemas_dir = schemas_dir.resolve()
    root = repo_root(schemas_dir)
    committed: dict[str, dict[int, Any]] = {}
    if root is not None:
        folder = schemas_dir.relative_to(root).as_posix()
        committed = _committed_versions(committed_files(root, ref, folder), folder + "/")
    working = load_schema_dir(schemas_dir)
    bundle_dir = schemas_dir / "_shared"
    resources: dict[str, Any] = load_bundle(bundle_dir) if bundle_dir.is_dir() else {}
    resources.update({v.uri: v.document for v in working.versions.values()})
    result = CheckResult(datasets=len(working.datasets))

    for dataset_id in sorted(committed.keys() - working.datasets.keys()):
        result.findings.append(
            Finding(
                f"{dataset_id}/",
                "DATASET_REMOVED",
                "",
                f"dataset {dataset_id} was removed",
                f"データセット {dataset_id} が削除されました",
            )
        )
    for dataset_id in sorted(working.datasets):
        _check_dataset(
            result,
            working,
            dataset_id,
            committed.get(dataset_id, {}),
            (modes or {}).get(dataset_id) or _declared_mode(working, dataset_id) or mode,
            resources,
        )
    return result


def _declared_mode(working: SchemaSet, dataset_id: str) -> Mode | None:
    """The level a dataset declares in its dataset.json (``compatibility``): it wins over the
    check's default, as the level set in the registry does for a registration."""
    declared = working.datasets[dataset_id].compatibility
    return Mode(declared) if declared is not None else None


def _check_dataset(
    result: CheckResult,
    working: SchemaSet,
    dataset_id: str,
    before: dict[int, Any],
    mode: Mode,
    resources: dict[str, Any],
) -> None:
    meta = working.datasets[dataset_id]
    now = {v.version: v.document for v in working.versions_of(dataset_id)}
    for number in sorted(before.keys() - now.keys()):
        result.findings.append(
            Finding(
                f"{dataset_id}/v{number}{_VERSION_SUFFIX}",
                "VERSION_REMOVED",
                "",
                f"version {number} was removed; published versions stay",
                f"版 {number} が削除されました。公開済みの版は残す必要があります",
            )
        )
    for number, document in sorted(now.items()):
        file = f"{dataset_id}/v{number}{_VERSION_SUFFIX}"
        old = before.get(number)
        if old is not None and json.dumps(old, sort_keys=True) == json.dumps(document, sort_keys=True):
            continue
        result.checked_versions.append(file)
        uri = working.versions_of(dataset_id)[number - 1].uri
        result.findings += [
            _from_lint(file, i) for i in lint_schema(document, uri=uri, meta=meta, resources=resources)
        ]
        if old is not None:
            # An edited version must still read what it accepted before, and (for FORWARD/FULL) the
            # reverse: the same mode, applied to the version's old and new text.
            result.findings += [
                _from_incompatibility(file, p)
                for p in check_mode(
                    mode,
                    document,
                    [(number, old)],
                    resources=resources,
                    candidate_label=f"v{number} (edited)",
                )
            ]
        earlier = [(n, now[n]) for n in sorted(now) if n < number]
        if old is None and earlier:
            result.findings += [
                _from_incompatibility(file, p)
                for p in check_mode(
                    mode, document, earlier, resources=resources, candidate_label=f"v{number}"
                )
            ]


__all__ = ["CheckResult", "Finding", "check_schema_tree", "committed_files"]
