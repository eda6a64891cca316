"""Bulk-load a standard CSV as events: read rows, build one CloudEvent per row, send, report.

Event ids are ``<file digest>-<line>``: importing the same file twice is a no-op downstream,
while a corrected file yields new events that update the records.

Every event of a file carries the file's own time (see ``file_time``), never the moment of the
import: an unchanged file imported again gives byte-identical events, which the catalog's ledger
recognises as already applied and ingest recognises as already dead-lettered, so a re-import leaves
one dead letter per bad row, not one per import.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cityos.department.csvimport import iter_csv_records
from cityos.department.outbox import record_event
from cityos.department.outcomes import Outcome
from cityos.department.rowcheck import RecordChecker, RowProblem
from cityos.kernel.schemas import DatasetMeta, SchemaVersion


@dataclass(frozen=True, slots=True)
class RowEvent:
    line_no: int
    event_id: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class ImportSummary:
    """What happened to every row of the file."""

    rows_read: int = 0
    rows_sent: int = 0
    local_errors: list[tuple[int, str]] = field(default_factory=list)  # (line, why) never sent
    lines_by_event: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    # Every problem the import saw in a row (line → problems), whether or not the row was sent.
    problems: dict[int, list[RowProblem]] = field(default_factory=dict)
    # The ``time`` every event of the file carries (see ``file_time``); None before reading.
    event_time: datetime | None = None

    @property
    def rows_valid(self) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome.valid)

    @property
    def rows_deadlettered(self) -> int:
        return sum(1 for outcome in self.outcomes.values() if not outcome.valid)

    @property
    def rows_undecided(self) -> int:
        return self.rows_sent - len(self.outcomes)

    def reasons(self) -> Counter[str]:
        return Counter(outcome.reason for outcome in self.outcomes.values() if not outcome.valid)

    def as_dict(self) -> dict[str, object]:
        """Machine-readable summary (``import-csv --json-summary``)."""
        return {
            "rows_read": self.rows_read,
            "rows_sent": self.rows_sent,
            "rows_refused_before_sending": [
                {"line": line, "why": why, "problems": self._problem_dicts(line)}
                for line, why in self.local_errors
            ],
            "rows_valid": self.rows_valid,
            "rows_deadlettered": self.rows_deadlettered,
            "rows_undecided": self.rows_undecided,
            "reasons": dict(self.reasons()),
            "rejected": [
                {
                    "line": line,
                    "reason": o.reason,
                    "pointer": o.pointer,
                    "detail": o.detail,
                    "earlier": o.earlier,
                    "problems": self._problem_dicts(line),
                }
                for line, o in self.rejected_rows()
            ],
        }

    def _problem_dicts(self, line: int) -> list[dict[str, str]]:
        return [problem.as_dict() for problem in self.problems.get(line, [])]

    def rejected_lines(self, *, limit: int) -> list[str]:
        """One line per refused row, then one indented line per problem of it (ja / en), in file order;
        at most ``limit`` rows. Plain text: the CLI prints it without markup or wrapping."""
        refused: list[tuple[int, str]] = [
            (line, f"refused before sending: {why}") for line, why in self.local_errors
        ]
        refused += [
            (line, f"{_verdict_label(o)}: {o.reason} at {o.pointer or '-'}: {o.detail}")
            for line, o in self.rejected_rows()
        ]
        lines: list[str] = []
        for line, verdict in sorted(refused)[:limit]:
            lines.append(f"line {line}: {verdict}")
            lines.extend(f"    {problem.text()}" for problem in self.problems.get(line, []))
        return lines

    def rejected_rows(self) -> list[tuple[int, Outcome]]:
        rows = [(self.lines_by_event[eid], o) for eid, o in self.outcomes.items() if not o.valid]
        return sorted(rows, key=lambda pair: pair[0])


def _verdict_label(outcome: Outcome) -> str:
    if outcome.earlier:
        return "already dead-lettered earlier / 以前に受け付けなかった行"
    return "dead-lettered"


def file_time(path: Path, *, now: datetime | None = None) -> datetime:
    """The time of the rows in ``path``: its last modification, in UTC, but never later than now.

    The rows are the data as of the file's last change, and a time that depends on the file alone
    makes an unchanged file's events identical on every import. A file dated in the future (a clock
    off on the machine that wrote it) is stamped now, since ingest refuses events from the future.
    """
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return min(modified, now or datetime.now(UTC))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def csv_events(
    path: Path,
    *,
    meta: DatasetMeta,
    version: SchemaVersion,
    summary: ImportSummary,
    now: datetime | None = None,
    known_codes: frozenset[str] | None = None,
) -> Iterator[RowEvent]:
    """One event per well-formed row; structurally broken rows, and rows whose cells the import cannot
    repair, go to ``summary.local_errors``. Every problem of a row goes to ``summary.problems``.
    ``now`` stands in for the clock (tests): it caps the file's time, see ``file_time``."""
    digest = file_digest(path)
    sent_at = file_time(path, now=now)
    summary.event_time = sent_at
    source = f"/departments/{meta.department}/csv-import/{meta.id}"
    checker = RecordChecker(version.document)
    for row in iter_csv_records(path, meta, version.document, known_codes=known_codes):
        summary.rows_read += 1
        if row.error is not None or row.record is None:
            summary.local_errors.append((row.line_no, row.error or "empty row"))
            continue
        problems = [*row.problems, *checker.problems(row.record)]
        if problems:
            summary.problems[row.line_no] = problems
        if row.problems:
            summary.local_errors.append((row.line_no, "; ".join(p.en for p in row.problems)))
            continue
        event_id = f"{digest}-{row.line_no}"
        record_key = str(row.record.get(meta.record_key, ""))
        value = record_event(
            record=row.record,
            dataschema=version.uri,
            source=source,
            event_id=event_id,
            subject=record_key or None,
            time=sent_at,
        )
        summary.lines_by_event[event_id] = row.line_no
        yield RowEvent(row.line_no, event_id, f"{meta.id}/{record_key}".encode(), value)
