"""``cityos grants|subscriptions|audit|departments|feeds`` against a real SQLite catalog."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityos.cli.main import app
from cityos.kernel.settings import get_settings


@pytest.fixture
def runner(catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("CITYOS_DATABASE_URL", catalog_url)
    monkeypatch.setenv("CITYOS_TOPIC_PREFIX", "cli.")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def run(runner: CliRunner, *args: str) -> object:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.strip().startswith(("[", "{")) else result.stdout


def test_grant_subscribe_revoke_and_export(runner: CliRunner, tmp_path: Path) -> None:
    granted = run(runner, "grants", "add", "copier-usage", "fire", "--field", "年月", "--field", "部局コード")
    assert isinstance(granted, dict) and granted["fields"] == ["年月", "部局コード"]
    assert granted["granted_by"] == "admin:cli"
    sub = run(
        runner,
        "subscriptions",
        "create",
        "copier-usage",
        "fire",
        "--filter",
        "部局コード=fire",
        "--field",
        "年月",
    )
    assert isinstance(sub, dict)
    assert (sub["topic"], sub["filter"], sub["fields"]) == (
        "cli.feed.fire.copier-usage",
        {"部局コード": "fire"},
        ["年月"],
    )
    listed = run(runner, "subscriptions", "list")
    assert isinstance(listed, list) and [s["id"] for s in listed] == [sub["id"]]
    run(runner, "grants", "revoke", "copier-usage", "fire")
    assert run(runner, "grants", "list", "copier-usage") == []
    refused = runner.invoke(app, ["grants", "add", "resident-moves", "fire"])
    assert refused.exit_code == 1 and "never shared raw" in refused.output
    run(runner, "subscriptions", "cancel", str(sub["id"]))

    audit = run(runner, "audit", "list", "--subject", "copier-usage")
    assert isinstance(audit, list)
    assert [e["action"] for e in audit] == [
        "grant.created",
        "subscription.created",
        "grant.revoked",
        "subscription.cancelled",
    ]
    out = tmp_path / "audit.csv"
    run(runner, "audit", "export", "--format", "csv", "--output", str(out))
    text = out.read_bytes().decode("utf-8")
    assert text.startswith("\ufeffid,at,actor") and "grant.revoked" in text


def test_department_credentials_and_acls(runner: CliRunner) -> None:
    issued = run(runner, "departments", "credential", "issue", "fire")
    assert isinstance(issued, dict) and issued["secret"].startswith(issued["key_id"] + "_")
    keys = run(runner, "departments", "credential", "list", "fire")
    assert keys == [{"key_id": issued["key_id"], "purpose": "department credential", "revoked": False}]
    run(runner, "departments", "credential", "revoke", issued["key_id"])
    assert run(runner, "departments", "credential", "list", "fire") == [
        {"key_id": issued["key_id"], "purpose": "department credential", "revoked": True}
    ]
    acls = run(runner, "feeds", "acls")
    assert isinstance(acls, str) and "ALLOW User:dept-fire READ TOPIC PREFIXED:cli.feed.fire." in acls


def test_subscription_arguments_the_old_way_round_are_refused_with_the_right_order(runner: CliRunner) -> None:
    run(runner, "grants", "add", "copier-usage", "fire")
    swapped = runner.invoke(app, ["subscriptions", "create", "fire", "copier-usage"])
    assert swapped.exit_code == 2
    unboxed = " ".join(re.sub(r"[│╭╮╰╯─]", " ", swapped.output).split())  # the error panel wraps
    assert "the dataset comes first: cityos subscriptions create copier-usage fire" in unboxed
    assert run(runner, "subscriptions", "list") == []


def test_dataset_is_the_first_argument_of_every_command_that_takes_one() -> None:
    import click
    import typer.main

    def commands(group: click.Group, path: str) -> Iterator[tuple[str, click.Command]]:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command, f"{path} {name}")
            else:
                yield f"{path} {name}", command

    root = typer.main.get_command(app)
    assert isinstance(root, click.Group)
    checked = []
    for name, command in commands(root, "cityos"):
        arguments = [p.name for p in command.params if isinstance(p, click.Argument)]
        if "dataset" in arguments:
            checked.append(name)
            assert arguments[0] == "dataset", f"{name}: DATASET must come first, got {arguments}"
    assert "cityos subscriptions create" in checked and "cityos grants add" in checked
