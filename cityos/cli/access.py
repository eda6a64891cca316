"""``cityos grants|subscriptions|audit|departments|feeds``: access administration from the shell.

The CLI works on the database of ``CITYOS_DATABASE_URL`` directly and acts as an administrator
(audited as ``admin:cli``): whoever can run it can read the database anyway. The same rules as
the catalog's access API apply (cityos/domain/grants.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from cityos.cli.db import cli_session
from cityos.domain.access import Caller, CallerKind
from cityos.kernel.settings import get_settings

CLI_ADMIN = Caller(CallerKind.admin, principal="cli")
console = Console(stderr=True)

grants_app = typer.Typer(help="Grants of internal datasets to other departments.", no_args_is_help=True)
subscriptions_app = typer.Typer(help="Departments' feed subscriptions.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: list and export.", no_args_is_help=True)
departments_app = typer.Typer(help="Departments and their credentials.", no_args_is_help=True)
credential_app = typer.Typer(help="Department API keys (HTTP credentials).", no_args_is_help=True)
feeds_app = typer.Typer(help="Feed infrastructure: Kafka ACLs.", no_args_is_help=True)
departments_app.add_typer(credential_app, name="credential")


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@contextmanager
def _refusals() -> Iterator[None]:
    from cityos.domain.grants import AccessRefused

    try:
        yield
    except AccessRefused as exc:
        console.print(f"[red]refused ({exc.status} {exc.code}):[/] {exc.detail}")
        raise typer.Exit(1) from exc


def parse_filter(items: list[str]) -> dict[str, Any]:
    """``name=value`` pairs; a value that parses as JSON (numbers, true, null) is taken as such."""
    result: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"filter {item!r} is not name=value")
        try:
            result[name] = json.loads(raw)
        except json.JSONDecodeError:
            result[name] = raw
    return result


@grants_app.command("add")
def grants_add(
    dataset: str,
    grantee: str,
    field: Annotated[list[str] | None, typer.Option("--field", help="grant only this field (repeat)")] = None,
) -> None:
    """Let GRANTEE read DATASET (every field, or only --field ones)."""
    from cityos.domain import grants as admin

    with cli_session() as session, _refusals():
        row = admin.grant(session, caller=CLI_ADMIN, dataset_id=dataset, grantee=grantee, fields=field)
        session.commit()
        _print_json(admin.GrantView.of(row).model_dump(mode="json"))


@grants_app.command("list")
def grants_list(
    dataset: str, all: Annotated[bool, typer.Option("--all", help="revoked ones too")] = False
) -> None:
    from cityos.domain import grants as admin

    with cli_session() as session, _refusals():
        _print_json(
            [
                admin.GrantView.of(r).model_dump(mode="json")
                for r in admin.list_grants(session, caller=CLI_ADMIN, dataset_id=dataset, include_revoked=all)
            ]
        )


@grants_app.command("revoke")
def grants_revoke(dataset: str, grantee: str) -> None:
    """Revoke at once: the API answers 404 and the feed stops."""
    from cityos.domain import grants as admin

    with cli_session() as session, _refusals():
        row = admin.revoke(session, caller=CLI_ADMIN, dataset_id=dataset, grantee=grantee)
        session.commit()
        _print_json(admin.GrantView.of(row).model_dump(mode="json"))


@subscriptions_app.command("create")
def subscriptions_create(
    dataset: Annotated[
        str, typer.Argument(help="dataset id, e.g. copier-usage (first, as in every command)")
    ],
    department: Annotated[str, typer.Argument(help="the subscribing department, e.g. general-affairs")],
    filter: Annotated[list[str] | None, typer.Option("--filter", help="name=value (repeat)")] = None,
    field: Annotated[
        list[str] | None, typer.Option("--field", help="deliver only this field (repeat)")
    ] = None,
    start: Annotated[str, typer.Option(help="snapshot (current state, then changes) or now")] = "snapshot",
) -> None:
    """Feed DATASET to DEPARTMENT (topic feed.DEPARTMENT.DATASET), optionally filtered and projected."""
    from cityos.domain import grants as admin

    request = admin.SubscriptionRequest(
        dataset_id=dataset, filter=parse_filter(filter or []), fields=field, start=admin.StartMode(start)
    )
    with cli_session() as session, _refusals():
        _dataset_first(session, dataset, department)
        row = admin.subscribe(
            session,
            caller=CLI_ADMIN,
            department=department,
            request=request,
            topic_prefix=get_settings().topic_prefix,
        )
        session.commit()
        _print_json(admin.SubscriptionView.of(row).model_dump(mode="json"))


def _dataset_first(session: Session, dataset: str, department: str) -> None:
    """The arguments were once the other way round: say so rather than answer "not found"."""
    from cityos.kernel.db.models import Dataset

    if session.get(Dataset, dataset) is None and session.get(Dataset, department) is not None:
        raise typer.BadParameter(
            f"the dataset comes first: cityos subscriptions create {department} {dataset}"
            f" / データセットを先に指定してください: cityos subscriptions create {department} {dataset}"
        )


@subscriptions_app.command("list")
def subscriptions_list(
    all: Annotated[bool, typer.Option("--all", help="cancelled ones too")] = False,
) -> None:
    from cityos.domain import grants as admin

    with cli_session() as session:
        rows = admin.list_subscriptions(session, caller=CLI_ADMIN, include_cancelled=all)
        _print_json([admin.SubscriptionView.of(r).model_dump(mode="json") for r in rows])


@subscriptions_app.command("cancel")
def subscriptions_cancel(subscription_id: int) -> None:
    from cityos.domain import grants as admin

    with cli_session() as session, _refusals():
        row = admin.cancel_subscription(session, caller=CLI_ADMIN, subscription_id=subscription_id)
        session.commit()
        _print_json(admin.SubscriptionView.of(row).model_dump(mode="json"))


@audit_app.command("list")
def audit_list(
    action: Annotated[str | None, typer.Option(help="e.g. grant.created, access.denied")] = None,
    actor: Annotated[str | None, typer.Option(help="e.g. department:digital")] = None,
    subject: Annotated[str | None, typer.Option(help="subject id, e.g. a dataset id")] = None,
    since_hours: Annotated[float | None, typer.Option(help="only the last N hours")] = None,
    limit: int = 100,
) -> None:
    from cityos.domain.audit import AuditEntryView, list_audit

    since = datetime.now(UTC) - timedelta(hours=since_hours) if since_hours else None
    with cli_session() as session:
        rows = list_audit(session, action=action, actor=actor, subject_id=subject, since=since, limit=limit)
        _print_json([AuditEntryView.of(r).model_dump(mode="json") for r in rows])


@audit_app.command("export")
def audit_export(
    format: Annotated[str, typer.Option(help="ndjson or csv (UTF-8 with BOM)")] = "ndjson",
    output: Annotated[Path | None, typer.Option(help="file (default: standard output)")] = None,
    limit: int = 1_000_000,
) -> None:
    from cityos.domain.audit import AuditEntryView, audit_csv, audit_ndjson, list_audit

    if format not in ("ndjson", "csv"):
        raise typer.BadParameter("format is ndjson or csv")
    with cli_session() as session:
        rows = [AuditEntryView.of(r).model_dump(mode="json") for r in list_audit(session, limit=limit)]
    body = audit_csv(rows) if format == "csv" else audit_ndjson(rows)
    if output is None:
        sys.stdout.buffer.write(body)
    else:
        output.write_bytes(body)
        console.print(f"[green]{len(rows)} audit entries written to {output}[/]")


@departments_app.command("list")
def departments_list() -> None:
    from sqlalchemy import select

    from cityos.kernel.db.models import Department

    with cli_session() as session:
        rows = session.scalars(select(Department).order_by(Department.id))
        _print_json([{"id": d.id, "name_ja": d.name_ja, "kafka_principal": d.kafka_principal} for d in rows])


@credential_app.command("issue")
def credential_issue(
    department: str,
    purpose: Annotated[str, typer.Option()] = "department credential",
    expires_in_days: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Issue an API key for DEPARTMENT; the secret is printed once and never stored."""
    from cityos.domain.apikeys import DEPARTMENT_SCOPES, OwnerKind, issue_key
    from cityos.kernel.db.models import Department

    with cli_session() as session:
        if session.get(Department, department) is None:
            console.print(f"[red]no department {department!r}[/]")
            raise typer.Exit(1)
        # Department credentials always expire: the configured lifetime unless told otherwise.
        days = expires_in_days or get_settings().credential_lifetime_days
        expires = datetime.now(UTC) + timedelta(days=days)
        issued = issue_key(
            session,
            owner_kind=OwnerKind.department,
            owner_id=department,
            purpose=purpose,
            actor=CLI_ADMIN.actor,
            scopes=list(DEPARTMENT_SCOPES),
            expires_at=expires,
        )
        session.commit()
    _print_json({"department": department, "key_id": issued.key_id, "secret": issued.secret})


@credential_app.command("list")
def credential_list(department: str) -> None:
    from cityos.domain.apikeys import OwnerKind, list_keys

    with cli_session() as session:
        rows = list_keys(session, owner_kind=OwnerKind.department, owner_id=department)
        _print_json(
            [{"key_id": k.id, "purpose": k.purpose, "revoked": k.revoked_at is not None} for k in rows]
        )


@credential_app.command("revoke")
def credential_revoke(key_id: str) -> None:
    from cityos.domain.apikeys import revoke_key

    with cli_session() as session:
        if not revoke_key(session, key_id, actor=CLI_ADMIN.actor):
            console.print(f"[red]no credential {key_id}[/]")
            raise typer.Exit(1)
        session.commit()
    console.print(f"[green]{key_id} revoked[/]")


@feeds_app.command("acls")
def feeds_acls(
    apply: Annotated[
        bool, typer.Option("--apply", help="create them on a cluster with an authorizer")
    ] = False,
) -> None:
    """Every Kafka ACL binding (services and departments of schemas/departments.json); `cityos kafka
    setup` applies them together with the principals and topics."""
    from cityos.domain.acls import TopicLayout, acl_specs, apply_acls
    from cityos.domain.kafka_setup import admin_access
    from cityos.kernel.errors import KafkaUnavailable
    from cityos.kernel.schemas import load_schema_dir

    settings = get_settings()
    departments = load_schema_dir(settings.schemas_dir).departments.values()
    specs = acl_specs([(d.id, d.kafka_principal) for d in departments], TopicLayout.of(settings))
    for spec in specs:
        typer.echo(spec.line())
    if apply:
        try:
            apply_acls(admin_access(settings), specs)
        except KafkaUnavailable as exc:
            console.print(f"[red]not applied:[/] {exc}")
            raise typer.Exit(1) from exc
        console.print(f"[green]{len(specs)} ACL bindings created[/]")
