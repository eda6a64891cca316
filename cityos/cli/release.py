"""``cityos release …``: synthetic personal data, anonymized releases, proposals (提案募集).

Only wiring: every step is a function of ``cityos.domain.anonymize``; each command is one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from sqlalchemy.orm import Session

from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.settings import get_settings

app = typer.Typer(help="Anonymized releases of personal data (行政機関等匿名加工情報).", no_args_is_help=True)
proposals_app = typer.Typer(help="提案募集: calls, proposals, decisions, contracts.", no_args_is_help=True)
app.add_typer(proposals_app, name="proposals")
console = Console(stderr=True)


@contextmanager
def _session() -> Iterator[Session]:
    from cityos.kernel.db.engine import make_engine, session_factory

    engine = make_engine(get_settings().database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            yield session
    finally:
        engine.dispose()


def _print(body: Any) -> None:
    typer.echo(json.dumps(body, ensure_ascii=False, indent=2))


def _fail(reasons: list[str], *, records_named: bool = False) -> None:
    # One line per reason, never wrapped: operators pipe this into tickets and grep it for keys.
    for reason in reasons:
        console.print(f"[red]refused:[/] {escape(reason)}", soft_wrap=True)
    if records_named:
        console.print(
            "the records named above stop the release: correct them (send the record again with the "
            "same key) or delete them, then run the release again",
            soft_wrap=True,
        )
    raise typer.Exit(1)


_Row = TypeVar("_Row")


def _proposal_step(step: Callable[[Session], _Row], view: Callable[[_Row], BaseModel]) -> None:
    """One proposal workflow step in its own transaction, printed; a refusal exits with 1."""
    from cityos.domain.anonymize.proposals import ProposalError

    try:
        with _session() as session:
            _print(view(step(session)).model_dump(mode="json"))
    except ProposalError as exc:
        _fail(exc.reasons)


@app.command("generate-synthetic")
def generate_synthetic(
    count: Annotated[int, typer.Option(help="records")] = 1000,
    seed: Annotated[int, typer.Option(help="same seed, same records")] = 2026,
    out: Annotated[Path | None, typer.Option(help="write a CSV here instead of sending events")] = None,
) -> None:
    """Synthetic resident moves (never real people): sent through Kafka, or written as CSV."""
    if out is not None:
        from cityos.domain.anonymize.synthetic import synthetic_moves

        synthetic_moves(count, seed=seed).to_csv(out, index=False, encoding="utf-8")
        console.print(f"[green]wrote {count} synthetic records to {out}[/]")
        return
    from cityos.department.outbox import STRUCTURED_HEADERS, EventSender
    from cityos.department.synthetic_events import synthetic_move_events
    from cityos.kernel.schemas import load_schema_dir

    settings = get_settings()
    sender = EventSender(kafka_access(settings, Principal.cli))
    sent = 0
    schema_set = load_schema_dir(settings.schemas_dir)
    for topic, key, value in synthetic_move_events(schema_set, settings, count=count, seed=seed):
        sender.send(topic, key=key, value=value, headers=STRUCTURED_HEADERS)
        sent += 1
    sender.flush()
    console.print(f"[green]sent {sent} synthetic move events[/]")


@app.command("run")
def run(
    dataset: Annotated[str, typer.Option(help="personal dataset id")] = "resident-moves",
    classification: Annotated[
        str, typer.Option(help="public (partner releases: `proposals release`)")
    ] = "public",
    operator: Annotated[str, typer.Option(help="who runs the release (audited)")] = "admin",
) -> None:
    """Run the gate over the catalog's records; a passing release becomes a dataset.

    There is no seed option: row order and pseudonyms come from the operating system's
    cryptographic generator, so no one who knows how a release was run can re-link its rows.
    """
    from cityos.domain.anonymize.releases import ReleaseError, ReleaseSummary, create_release

    try:
        with _session() as session:
            result = create_release(
                session,
                source_dataset_id=dataset,
                classification=classification,
                operator=operator,
            )
            if result.release is not None:
                _print(ReleaseSummary.of(result.release).model_dump(mode="json"))
    except ReleaseError as exc:
        _fail(exc.reasons)
    if result.release is None:
        _fail(result.reasons, records_named=bool(result.outcome.offending))


@app.command("list")
def list_all() -> None:
    """Every release (概要, rows, checksum); never the method, never the content."""
    from cityos.domain.anonymize.releases import ReleaseSummary, list_releases

    with _session() as session:
        _print([ReleaseSummary.of(r).model_dump(mode="json") for r in list_releases(session)])


@app.command("register")
def register() -> None:
    """The public 個人情報ファイル簿 entries."""
    from cityos.domain.anonymize.proposals import file_register

    with _session() as session:
        _print(file_register(session))


@proposals_app.command("open-call")
def open_call(
    dataset: Annotated[str, typer.Option()] = "resident-moves",
    title: Annotated[str, typer.Option()] = "行政機関等匿名加工情報の提案募集",
    days: Annotated[int, typer.Option(help="open for this many days from now (≥ 30)")] = 60,
    operator: Annotated[str, typer.Option()] = "citizens",
) -> None:
    from cityos.domain.anonymize.proposals import CallView
    from cityos.domain.anonymize.proposals import open_call as run_open

    now = datetime.now(UTC)
    _proposal_step(
        lambda session: run_open(
            session,
            dataset_id=dataset,
            title=title,
            opens_at=now,
            closes_at=now + timedelta(days=days),
            actor=operator,
        ),
        CallView.of,
    )


@proposals_app.command("submit")
def submit(
    call: Annotated[str, typer.Option()],
    applicant: Annotated[str, typer.Option()],
    purpose: Annotated[str, typer.Option()],
    items: Annotated[str, typer.Option(help="comma-separated released columns")],
    period: Annotated[str, typer.Option(help="period of use, e.g. 2026-04-01/2027-03-31")],
    safety: Annotated[str, typer.Option(help="safety measures (安全管理措置)")],
) -> None:
    from cityos.domain.anonymize.proposals import ProposalView, submit_proposal

    _proposal_step(
        lambda session: submit_proposal(
            session,
            call_id=call,
            applicant_id=applicant,
            purpose=purpose,
            items=[i.strip() for i in items.split(",") if i.strip()],
            use_period=period,
            safety_measures=safety,
        ),
        ProposalView.of,
    )


@proposals_app.command("decide")
def decide(
    proposal: Annotated[str, typer.Option()],
    reason: Annotated[str, typer.Option()],
    accept: Annotated[bool, typer.Option("--accept/--reject")] = True,
    operator: Annotated[str, typer.Option()] = "citizens",
) -> None:
    from cityos.domain.anonymize.proposals import ProposalView
    from cityos.domain.anonymize.proposals import decide as run_decide

    _proposal_step(
        lambda session: run_decide(
            session, proposal_id=proposal, accept=accept, reason=reason, actor=operator
        ),
        ProposalView.of,
    )


@proposals_app.command("contract")
def contract(
    proposal: Annotated[str, typer.Option()],
    ref: Annotated[str, typer.Option(help="contract reference")],
    operator: Annotated[str, typer.Option()] = "citizens",
) -> None:
    from cityos.domain.anonymize.proposals import ProposalView, record_contract

    _proposal_step(
        lambda session: record_contract(session, proposal_id=proposal, contract_ref=ref, actor=operator),
        ProposalView.of,
    )


@proposals_app.command("cancel")
def cancel(
    proposal: Annotated[str, typer.Option()],
    reason: Annotated[str, typer.Option()],
    operator: Annotated[str, typer.Option()] = "citizens",
) -> None:
    from cityos.domain.anonymize.proposals import ProposalView
    from cityos.domain.anonymize.proposals import cancel as run_cancel

    _proposal_step(
        lambda session: run_cancel(session, proposal_id=proposal, reason=reason, actor=operator),
        ProposalView.of,
    )


@proposals_app.command("release")
def release(
    proposal: Annotated[str, typer.Option()],
    operator: Annotated[str, typer.Option()] = "citizens",
) -> None:
    """The accepted proposal's partner release (its applicant then downloads it with its key)."""
    from cityos.domain.anonymize.proposals import ProposalError, release_for_proposal
    from cityos.domain.anonymize.releases import ReleaseError, ReleaseSummary

    try:
        with _session() as session:
            result = release_for_proposal(session, proposal_id=proposal, actor=operator)
            if result.release is not None:
                _print(ReleaseSummary.of(result.release).model_dump(mode="json"))
    except (ProposalError, ReleaseError) as exc:
        _fail(exc.reasons)
    if result.release is None:
        _fail(result.reasons)
