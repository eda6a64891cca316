"""``cityos schemas register|test|versions|compatibility|check``: the schema registry from the shell.

``register``/``test``/``versions``/``compatibility`` work on the catalog database of
``CITYOS_DATABASE_URL`` and the Kafka cluster directly (as ``admin:cli``, audited), with the same
rules as the admin API. ``check`` needs neither: it compares ``schemas/`` with a git ref (CI guard).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cityos.cli.db import cli_sessions
from cityos.domain.registry.compatibility import Mode
from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.settings import get_settings

CLI_ACTOR = "admin:cli"
console = Console(stderr=True)
schemas_app = typer.Typer(
    help="Schema registry: register, test, compatibility, CI check.", no_args_is_help=True
)


def _read_document(file: Path) -> dict[str, Any]:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{file}: {exc}") from exc
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{file}: a schema is a JSON object")
    return document


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _print_reasons(body: dict[str, Any]) -> None:
    for issue in body["lint"]:
        console.print(f"[red]lint[/] {issue['pointer'] or '/'} {issue['rule']}: {issue['message']['en']}")
        console.print(f"     {issue['message']['ja']}")
    for reason in body["incompatibilities"]:
        console.print(
            f"[red]{reason['direction']} vs v{reason['version']}[/] {reason['pointer'] or '/'} {reason['rule']}: "
            f"{reason['message']['en']}"
        )
        console.print(f"     {reason['message']['ja']}")


DatasetArg = Annotated[str, typer.Argument(help="dataset id, e.g. aed")]
FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSON Schema file")]


@schemas_app.command("register")
def register_cmd(dataset: DatasetArg, file: FileArg) -> None:
    """Register FILE as the dataset's next version (refused with every reason when incompatible)."""
    from confluent_kafka import Producer

    from cityos.domain.registry.service import register
    from cityos.domain.registry.store import UnknownDataset, bundled_definitions
    from cityos.domain.registry.topic import ensure_schema_topic
    from cityos.kernel.kafka import producer_config

    settings = get_settings()
    document = _read_document(file)
    registry = kafka_access(settings, Principal.registry)
    ensure_schema_topic(registry, settings.schemas_topic)
    producer = Producer(producer_config(registry))
    with cli_sessions() as sessions:
        try:
            evaluation = register(
                sessions,
                producer=producer,
                schemas_topic=settings.schemas_topic,
                dataset_id=dataset,
                document=document,
                actor=CLI_ACTOR,
                bundle=bundled_definitions(settings.schemas_dir),
            )
        except UnknownDataset as exc:
            raise typer.BadParameter(f"unknown dataset {dataset!r}") from exc
    body = evaluation.as_dict()
    _print_json(body)
    if evaluation.existing:
        console.print(f"[yellow]already registered as v{evaluation.version}[/] {evaluation.uri}")
    elif evaluation.acceptable:
        console.print(f"[green]registered v{evaluation.version}[/] {evaluation.uri}")
    else:
        _print_reasons(body)
        console.print(f"[red]refused[/] under {evaluation.mode.value}")
        raise typer.Exit(1)


@schemas_app.command("test")
def test_cmd(dataset: DatasetArg, file: FileArg) -> None:
    """Check FILE against the dataset's registered versions without registering it."""
    from cityos.domain.registry.store import UnknownDataset, bundled_definitions, evaluate

    settings = get_settings()
    document = _read_document(file)
    with cli_sessions() as sessions, sessions() as session:
        try:
            evaluation = evaluate(
                session,
                dataset_id=dataset,
                document=document,
                bundle=bundled_definitions(settings.schemas_dir),
            )
        except UnknownDataset as exc:
            raise typer.BadParameter(f"unknown dataset {dataset!r}") from exc
    body = evaluation.as_dict()
    _print_json(body)
    if not evaluation.acceptable:
        _print_reasons(body)
        raise typer.Exit(1)


@schemas_app.command("versions")
def versions_cmd(dataset: DatasetArg) -> None:
    """Registered versions of a dataset."""
    from cityos.domain.registry.store import compatibility_mode, versions_of

    with cli_sessions() as sessions, sessions() as session:
        rows = versions_of(session, dataset)
        if not rows:
            raise typer.BadParameter(f"unknown dataset {dataset!r}")
        _print_json(
            {
                "dataset": dataset,
                "compatibility": compatibility_mode(session, dataset).value,
                "versions": [{"version": r.version, "uri": r.uri} for r in rows],
            }
        )


@schemas_app.command("compatibility")
def compatibility_cmd(
    dataset: DatasetArg, mode: Annotated[Mode | None, typer.Argument(help="new level; omit to show")] = None
) -> None:
    """Show or set a dataset's compatibility level."""
    from cityos.domain.registry.store import UnknownDataset, compatibility_mode, set_compatibility_mode

    with cli_sessions() as sessions:
        if mode is not None:
            try:
                with sessions.begin() as session:
                    set_compatibility_mode(session, dataset_id=dataset, mode=mode, actor=CLI_ACTOR)
            except UnknownDataset as exc:
                raise typer.BadParameter(f"unknown dataset {dataset!r}") from exc
        with sessions() as session:
            typer.echo(compatibility_mode(session, dataset).value)


@schemas_app.command("check")
def check_cmd(
    ref: Annotated[str, typer.Option(help="git ref to compare with")] = "HEAD",
    schemas_dir: Annotated[
        Path | None, typer.Option(help="schema folder (default: CITYOS_SCHEMAS_DIR)")
    ] = None,
    mode: Annotated[Mode, typer.Option(help="compatibility level to enforce")] = Mode.BACKWARD,
) -> None:
    """Fail when schemas/ changed incompatibly since REF (CI guard); print every reason."""
    from cityos.domain.registry.ci import check_schema_tree
    from cityos.kernel.errors import SchemaError

    folder = schemas_dir or get_settings().schemas_dir
    try:
        result = check_schema_tree(folder, ref=ref, mode=mode)
    except SchemaError as exc:
        console.print(f"[red]schemas check failed:[/] {exc}")
        raise typer.Exit(1) from exc
    for finding in result.findings:
        console.print(finding.line(), markup=False, highlight=False, soft_wrap=True)
    checked = ", ".join(result.checked_versions) or "none"
    if not result.ok:
        console.print(
            f"[red]schemas check failed[/]: {len(result.findings)} problem(s); new or edited: {checked}"
        )
        raise typer.Exit(1)
    console.print(
        f"[green]schemas check passed[/]: {result.datasets} datasets vs {ref}; new or edited: {checked}"
    )
