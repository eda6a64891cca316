"""`cityos kafka …`: the broker's principals, topics and ACLs, and departments' Kafka credentials.

Both commands act as the Kafka administrator, whose password the broker script generated into the
secrets folder: they are run by the operator on the platform's host.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cityos.kernel.errors import KafkaUnavailable
from cityos.kernel.settings import get_settings

kafka_app = typer.Typer(help="Kafka principals, topics and ACLs (operator).", no_args_is_help=True)
console = Console(stderr=True)


def _departments() -> list[tuple[str, str | None]]:
    from cityos.kernel.schemas import load_schema_dir

    settings = get_settings()
    return [(d.id, d.kafka_principal) for d in load_schema_dir(settings.schemas_dir).departments.values()]


@kafka_app.command("setup")
def setup(
    rotate: Annotated[
        list[str] | None,
        typer.Option("--rotate", help="give this principal a new password (repeatable), e.g. cityos-ingest"),
    ] = None,
) -> None:
    """Create the services' principals, the platform's topics and every ACL binding (idempotent)."""
    from cityos.domain.kafka_setup import setup_kafka

    settings = get_settings()
    try:
        report = setup_kafka(settings, _departments(), rotate=rotate or ())
    except KafkaUnavailable as exc:
        console.print(f"[red]Kafka set-up failed:[/] {exc}")
        raise typer.Exit(1) from exc
    created = ", ".join(report.created_principals) or "none (all existed)"
    console.print(
        f"[green]Kafka ready at {settings.kafka_bootstrap}:[/] principals written: {created}; "
        f"{len(report.topics)} topics; {len(report.bindings)} ACL bindings"
    )
    if rotate:
        console.print("restart the services whose principal was rotated, so they read the new password")


@kafka_app.command("credential")
def credential(
    department: Annotated[str, typer.Argument(help="department id, as in schemas/departments.json")],
    rotate: Annotated[
        bool, typer.Option("--rotate", help="replace the password (the old one stops working)")
    ] = False,
    python: Annotated[
        bool, typer.Option("--python/--no-python", help="also print a Python producer snippet")
    ] = True,
) -> None:
    """Issue a department's Kafka credential and print the client configuration it needs."""
    from cityos.domain.kafka_setup import issue_department_credential, librdkafka_properties, python_snippet

    known = {department_id for department_id, _ in _departments()}
    if department not in known:
        console.print(f"[red]unknown department {department!r}[/]; known: {', '.join(sorted(known))}")
        raise typer.Exit(2)
    try:
        issued = issue_department_credential(get_settings(), department, rotate=rotate)
    except KafkaUnavailable as exc:
        console.print(f"[red]not issued:[/] {exc}")
        raise typer.Exit(1) from exc
    typer.echo("# librdkafka / kcat properties (kcat -F FILE; keep this file 0600)")
    typer.echo(librdkafka_properties(issued))
    if python:
        typer.echo("\n# Python (confluent-kafka)")
        typer.echo(python_snippet(issued))
