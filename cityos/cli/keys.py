"""``cityos keys issue|list|revoke`` and ``cityos admins issue|list|revoke``: credentials from the
shell, working on the catalog database directly (as an operator with access to it).

Administrators act over HTTP with personal credentials issued here (``cityos admins issue NAME``):
the audit log then names who did what. The secret is printed once, on standard output, so it can be
piped into a secret store; it is stored only as a SHA-256 digest. Department and administrator
credentials always expire (``CITYOS_CREDENTIAL_LIFETIME_DAYS``, 90 by default, or ``--days``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from cityos.cli.db import cli_session
from cityos.domain.apikeys import EXPIRING_KINDS, OwnerKind
from cityos.kernel.settings import get_settings

CLI_ACTOR = "admin:cli"
DEVELOPER_KEY_DAYS = 365
keys_app = typer.Typer(help="API keys for developers, departments and applicants.", no_args_is_help=True)
admins_app = typer.Typer(
    help="Administrators' personal credentials for the catalog API (audited by name).", no_args_is_help=True
)
console = Console(stderr=True)

DaysOption = Annotated[
    int | None,
    typer.Option(
        "--days",
        "--expires",
        help="Days until the key expires (default: 365 for developers and applicants, "
        "CITYOS_CREDENTIAL_LIFETIME_DAYS for departments and administrators; 0: never, "
        "developers and applicants only)",
    ),
]


def expiry(kind: OwnerKind, days: int | None, *, now: datetime, lifetime_days: int) -> datetime | None:
    """When a new key of ``kind`` expires; ValueError for a never-expiring department or admin key."""
    if days is None:
        days = lifetime_days if kind in EXPIRING_KINDS else DEVELOPER_KEY_DAYS
    if days < 0:
        raise ValueError("--days must be 0 or more")
    if days == 0:
        if kind in EXPIRING_KINDS:
            raise ValueError(f"a {kind} credential must expire: give --days 1 or more")
        return None
    return now + timedelta(days=days)


def _issue(
    *, kind: OwnerKind, owner: str, purpose: str, days: int | None, rate: int | None, scopes: list[str] | None
) -> None:
    from cityos.domain.apikeys import issue_key

    now = datetime.now(UTC)
    try:
        expires = expiry(kind, days, now=now, lifetime_days=get_settings().credential_lifetime_days)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    with cli_session() as session, session.begin():
        issued = issue_key(
            session, owner_kind=kind, owner_id=owner, purpose=purpose, actor=CLI_ACTOR, scopes=scopes,
            expires_at=expires, rate_limit_per_minute=rate, now=now,
        )  # fmt: skip
    until = expires.isoformat() if expires else "never"
    console.print(
        f"[green]issued {issued.key_id}[/] (expires {until}); the key below is shown only this once"
    )
    typer.echo(issued.secret)


def _revoke(key_id: str, kind: OwnerKind | None = None) -> None:
    from cityos.domain.apikeys import revoke_key
    from cityos.kernel.db.models import ApiKey

    with cli_session() as session, session.begin():
        row = session.get(ApiKey, key_id)
        found = row is not None and (kind is None or row.owner_kind == kind)
        found = found and revoke_key(session, key_id, actor=CLI_ACTOR)
    if not found:
        console.print(f"[red]no key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"[green]revoked {key_id}[/]")


def _list(owner: str | None, kind: OwnerKind | None = None) -> None:
    from cityos.domain.apikeys import ApiKeyView, list_keys

    with cli_session() as session:
        rows = [
            ApiKeyView.of(row).model_dump(mode="json")
            for row in list_keys(session, owner_kind=kind, owner_id=owner)
        ]
    typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))


@keys_app.command("issue")
def issue(
    owner: Annotated[str, typer.Option(help="Who holds the key (e-mail, department id, applicant id)")],
    purpose: Annotated[str, typer.Option(help="What the key is for")],
    kind: Annotated[OwnerKind, typer.Option(help="Owner kind")] = OwnerKind.developer,
    days: DaysOption = None,
    rate: Annotated[int | None, typer.Option(help="Requests per minute (default: the key class's)")] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="A scope (repeatable; default: the kind's usual scopes)")
    ] = None,
) -> None:
    """Issue a key and print it once."""
    _issue(kind=kind, owner=owner, purpose=purpose, days=days, rate=rate, scopes=scope or None)


@keys_app.command("list")
def listing(owner: Annotated[str | None, typer.Option(help="Only this owner's keys")] = None) -> None:
    """List keys (ids and metadata; never secrets)."""
    _list(owner)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id, cos_xxxxxxxx")]) -> None:
    """Revoke a key; requests with it are refused from now on."""
    _revoke(key_id)


@admins_app.command("issue")
def admin_issue(
    name: Annotated[str, typer.Argument(help="The administrator's name as the audit log shows it")],
    purpose: Annotated[str, typer.Option(help="Why this administrator needs it")] = "administration",
    days: DaysOption = None,
) -> None:
    """Issue NAME a personal administrator credential and print it once."""
    if not name.strip() or len(name) > 200:
        console.print("[red]give the administrator's name (1 to 200 characters)[/]")
        raise typer.Exit(2)
    _issue(kind=OwnerKind.admin, owner=name.strip(), purpose=purpose, days=days, rate=None, scopes=None)


@admins_app.command("list")
def admin_list(name: Annotated[str | None, typer.Argument(help="Only this administrator's")] = None) -> None:
    """List administrators' credentials (ids and metadata; never secrets)."""
    _list(name, OwnerKind.admin)


@admins_app.command("revoke")
def admin_revoke(key_id: Annotated[str, typer.Argument(help="The credential's id, cos_xxxxxxxx")]) -> None:
    """Revoke an administrator's credential; requests with it are refused from now on."""
    _revoke(key_id, OwnerKind.admin)
