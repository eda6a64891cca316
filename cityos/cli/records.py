"""``cityos records delete DATASET KEY…``: remove records the way their department would.

A deletion is a CloudEvent (``jp.cityos.record.deleted``) on the owning department's topic, sent by the
same outbox code as ``import-csv`` and ``demo``; ingest checks it like any event and the catalog leaves
a tombstone, so the record disappears from every API and feed. ``cityos demo --reset`` uses the same
sending and reporting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated
from uuid import uuid4

import orjson
import typer
from rich.console import Console

from cityos.kernel.errors import CityOSError
from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.settings import Settings, get_settings

if TYPE_CHECKING:
    from cityos.department.outcomes import Outcome

console = Console(stderr=True)
records_app = typer.Typer(help="Records of a dataset: delete them as their department.", no_args_is_help=True)

Event = tuple[str, bytes, bytes]  # (topic, Kafka key, CloudEvent JSON)


def run_id() -> str:
    """A fresh part for event ids: deleting again after a record came back must not look like a
    redelivery, which the catalog would ignore."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid4().hex[:6]}"


@dataclass(slots=True)
class SendReport:
    """What was sent and what ingest decided about it."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (topic, Kafka key, event id)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # by event id

    @property
    def accepted(self) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome.valid)

    @property
    def refused(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes.values() if not outcome.valid]

    @property
    def undecided(self) -> int:
        return len(self.sent) - len(self.outcomes)


def send_events(events: Iterable[Event], settings: Settings, *, wait_s: float) -> SendReport:
    """Send every event, wait for the broker's acknowledgement, then (``wait_s`` > 0) for ingest's verdict."""
    from cityos.department.outbox import STRUCTURED_HEADERS, EventSender
    from cityos.department.outcomes import OutcomeWatcher

    kafka = kafka_access(settings, Principal.cli)  # one credential read for both clients
    watcher = (
        OutcomeWatcher(kafka, [settings.validated_topic, settings.deadletter_topic]) if wait_s > 0 else None
    )
    sender = EventSender(kafka)
    report = SendReport()
    for topic, key, value in events:
        sender.send(topic, key=key, value=value, headers=STRUCTURED_HEADERS)
        report.sent.append((topic, key.decode(), str(orjson.loads(value)["id"])))
    sender.flush()
    if watcher is not None and report.sent:
        report.outcomes = watcher.wait({event_id for _, _, event_id in report.sent}, timeout_s=wait_s)
    return report


def print_report(report: SendReport, *, what: tuple[str, str], waited: bool, list_each: bool) -> None:
    """One line per event on stdout (when asked), the totals and ingest's verdicts on stderr.
    ``what`` names the events in English and Japanese."""
    if list_each:
        for topic, key, event_id in report.sent:
            typer.echo(f"{key}\t{topic}\t{event_id}")
    console.print(f"sent {len(report.sent)} {what[0]} / {what[1]}を{len(report.sent)}件送信しました")
    if not waited:
        return
    console.print(f"ingest accepted {report.accepted} / 受理 {report.accepted}件")
    reasons = Counter(outcome.reason for outcome in report.refused)
    for reason, count in reasons.most_common():
        console.print(f"[red]dead-lettered {count} ({reason}) / 拒否 {count}件（{reason}）[/]")
    if report.undecided:
        console.print(
            f"[yellow]{report.undecided} without a verdict yet (is ingest running?) / "
            f"{report.undecided}件は判定待ち（ingest は起動していますか）[/]"
        )


def report_failed(report: SendReport, *, waited: bool) -> bool:
    return bool(report.refused) or (waited and report.undecided > 0)


@records_app.command("delete")
def delete(
    dataset: Annotated[str, typer.Argument(help="dataset id, e.g. aed")],
    keys: Annotated[list[str], typer.Argument(help="record keys (the dataset's record key field)")],
    wait: Annotated[float, typer.Option(help="seconds to wait for ingest's verdict (0: don't)")] = 30,
) -> None:
    """Delete records: one deletion event per key, sent as the dataset's owning department.

    Prints each event sent (Kafka key, topic, event id). The catalog keeps a tombstone, so a replayed
    older event cannot bring a record back; a newer upsert can.
    """
    from cityos.department.outbox import deletion_events
    from cityos.kernel.schemas import load_schema_dir

    settings = get_settings()
    try:
        schema_set = load_schema_dir(settings.schemas_dir)
        if dataset not in schema_set.datasets:
            raise typer.BadParameter(
                f"unknown dataset {dataset!r}; known: {', '.join(sorted(schema_set.datasets))}"
            )
        events = deletion_events(
            schema_set, settings, dataset, keys, origin="cli", id_prefix=f"delete-{run_id()}-{dataset}"
        )
        report = send_events(events, settings, wait_s=wait)
    except CityOSError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    print_report(report, what=("deletion events", "削除イベント"), waited=wait > 0, list_each=True)
    if report_failed(report, waited=wait > 0):
        raise typer.Exit(1)
