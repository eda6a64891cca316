"""``cityos keys issue|list|revoke``: API keys from the shell, acting as the administrator.

The secret is printed once, on standard output, so it can be piped into a secret store; it is
stored only as a SHA-256 digest.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from cityos.cli.db import cli_session
from cityos.domain.apikeys import OwnerKind

CLI_ACTOR = "admin:cli"
keys_app = typer.Typer(help="API keys for developers, departments and applicants.", no_args_is_help=True)
console = Console(stderr=True)


@keys_app.command("issue")
def issue(
    owner: Annotated[str, typer.Option(help="Who holds the key (e-mail, department id, applicant id)")],
    purpose: Annotated[str, typer.Option(help="What the key is for")],
    kind: Annotated[OwnerKind, typer.Option(help="Owner kind")] = OwnerKind.developer,
    days: Annotated[int, typer.Option(help="Days until the key expires (0: never)")] = 365,
    rate: Annotated[int | None, typer.Option(help="Requests per minute (default: the key class's)")] = None,
) -> None:
    """Issue a key and print it once."""
    from cityos.domain.apikeys import issue_key

    now = datetime.now(UTC)
    expires = now + timedelta(days=days) if days > 0 else None
    with cli_session() as session, session.begin():
        issued = issue_key(
            session, owner_kind=kind, owner_id=owner, purpose=purpose, actor=CLI_ACTOR,
            expires_at=expires, rate_limit_per_minute=rate, now=now,
        )  # fmt: skip
    console.print(f"[green]issued {issued.key_id}[/]; the key below is shown only this once")
    typer.echo(issued.secret)


@keys_app.command("list")
def listing(owner: Annotated[str | None, typer.Option(help="Only this owner's keys")] = None) -> None:
    """List keys (ids and metadata; never secrets)."""
    from cityos.domain.apikeys import ApiKeyView, list_keys

    with cli_session() as session:
        rows = [ApiKeyView.of(row).model_dump(mode="json") for row in list_keys(session, owner_id=owner)]
    typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id, cos_xxxxxxxx")]) -> None:
    """Revoke a key; requests with it are refused from now on."""
    from cityos.domain.apikeys import revoke_key

    with cli_session() as session, session.begin():
        found = revoke_key(session, key_id, actor=CLI_ACTOR)
    if not found:
        console.print(f"[red]no key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"[green]revoked {key_id}[/]")
