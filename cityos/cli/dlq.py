"""``cityos dlq list|show|replay``: browse dead-lettered events and replay them after a fix.

Reads the dead-letter topic of ``CITYOS_KAFKA_BOOTSTRAP``/``CITYOS_TOPIC_PREFIX`` directly and records
replays in the catalog database (``CITYOS_DATABASE_URL``), as ``admin:cli``; the admin API does the same.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.settings import get_settings
from cityos.kernel.timeutil import parse_instant

if TYPE_CHECKING:
    from cityos.domain.dlq import DeadLetterFilter

CLI_ACTOR = "admin:cli"
console = Console(stderr=True)
dlq_app = typer.Typer(help="Dead-lettered events: list, show, replay.", no_args_is_help=True)


def _instant(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text, name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _filter(
    *,
    dataset: str | None,
    reason: str | None,
    department: str | None,
    since: str | None,
    until: str | None,
    ids: list[str] | None = None,
) -> DeadLetterFilter:
    """The dead letters the command's options select (every given option must match)."""
    from cityos.domain.dlq import DeadLetterFilter, parse_id

    return DeadLetterFilter(
        dataset=dataset,
        reason=reason,
        department=department,
        since=_instant(since, "since"),
        until=_instant(until, "until"),
        ids=frozenset(parse_id(i) for i in ids) if ids else None,
    )


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


DatasetOpt = Annotated[str | None, typer.Option(help="dataset id")]
ReasonOpt = Annotated[str | None, typer.Option(help="reason code, e.g. unknown_schema_version")]
DepartmentOpt = Annotated[str | None, typer.Option(help="department id")]
SinceOpt = Annotated[str | None, typer.Option(help="from this instant (ISO 8601 with offset)")]
UntilOpt = Annotated[str | None, typer.Option(help="before this instant (ISO 8601 with offset)")]


@dlq_app.command("list")
def list_cmd(
    dataset: DatasetOpt = None,
    reason: ReasonOpt = None,
    department: DepartmentOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(min=1)] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
) -> None:
    """Dead letters matching every given filter, oldest first."""
    from cityos.domain.dlq import read_deadletters, replay_counts

    settings = get_settings()
    where = _filter(dataset=dataset, reason=reason, department=department, since=since, until=until)
    letters = read_deadletters(
        kafka_access(settings, Principal.cli), settings.deadletter_topic, where=where, limit=limit
    )
    from cityos.cli.db import cli_sessions

    with cli_sessions() as sessions, sessions() as session:
        counts = replay_counts(session, settings.deadletter_topic, letters)
    rows = [letter.summary(counts.get((letter.partition, letter.offset), 0)) for letter in letters]
    if as_json:
        _print_json({"count": len(rows), "deadletters": [row.model_dump(mode="json") for row in rows]})
        return
    table = Table(title=f"{len(rows)} dead letters in {settings.deadletter_topic}")
    for column in ("id", "time", "reason", "dataset", "department", "event id", "pointer", "replays"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.id,
            row.time or "",
            row.reason,
            row.dataset,
            row.department,
            row.event_id,
            row.pointer,
            str(row.replays),
        )
    Console().print(table)


@dlq_app.command("show")
def show_cmd(letter_id: Annotated[str, typer.Argument(help="dead-letter id <partition>-<offset>")]) -> None:
    """One dead letter: reason, where it came from, original headers and bytes."""
    from cityos.cli.db import cli_sessions
    from cityos.domain.dlq import DeadLetterFilter, parse_id, read_deadletters, replay_counts

    settings = get_settings()
    try:
        position = parse_id(letter_id)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    letters = read_deadletters(
        kafka_access(settings, Principal.cli),
        settings.deadletter_topic,
        where=DeadLetterFilter(ids=frozenset({position})),
    )
    if not letters:
        console.print(f"[red]no dead letter {letter_id}[/]")
        raise typer.Exit(1)
    with cli_sessions() as sessions, sessions() as session:
        replays = replay_counts(session, settings.deadletter_topic, letters).get(position, 0)
    _print_json(letters[0].details(replays).model_dump(mode="json"))


@dlq_app.command("replay")
def replay_cmd(
    ids: Annotated[list[str] | None, typer.Argument(help="dead-letter ids; or use a filter or --all")] = None,
    dataset: DatasetOpt = None,
    reason: ReasonOpt = None,
    department: DepartmentOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="every dead letter")] = False,
    force: Annotated[bool, typer.Option(help="also those replayed before")] = False,
    value_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="corrected payload for exactly one id")
    ] = None,
) -> None:
    """Send dead letters back through ingest; already replayed ones are skipped unless --force."""
    from confluent_kafka import Producer

    from cityos.cli.db import cli_sessions
    from cityos.domain.dlq import DeadLetterFilter, ReplayTargets, read_deadletters, replay
    from cityos.kernel.kafka import producer_config

    settings = get_settings()
    where = _filter(dataset=dataset, reason=reason, department=department, since=since, until=until, ids=ids)
    if where == DeadLetterFilter() and not all_:
        raise typer.BadParameter("say which dead letters: ids, a filter, or --all")
    letters = read_deadletters(kafka_access(settings, Principal.cli), settings.deadletter_topic, where=where)
    replacement = value_file.read_bytes() if value_file is not None else None
    if replacement is not None and len(letters) != 1:
        raise typer.BadParameter("--value-file replaces exactly one dead letter")
    producer = Producer(producer_config(kafka_access(settings, Principal.cli)))
    with cli_sessions() as sessions, sessions.begin() as session:
        report = replay(
            session,
            producer=producer,
            letters=letters,
            targets=ReplayTargets.of(settings),
            actor=CLI_ACTOR,
            force=force,
            replacement=replacement,
        )
    _print_json(report.view().model_dump(mode="json"))
    counts = report.counts()
    console.print(
        f"replayed {counts['replayed']}, skipped (replayed before) {counts['skipped']}, "
        f"refused {counts['refused']}, failed {counts['failed']}"
    )
    if report.failed:
        raise typer.Exit(1)
