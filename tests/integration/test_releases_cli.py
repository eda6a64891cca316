"""The release CLI, step by step, on an embedded catalog: call → proposal → decision → contract →
release → list → 個人情報ファイル簿; a refused step exits 1 and names its reasons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.settings import REPO_ROOT
from tests.support.releases import store_synthetic_moves

NOW = datetime.now(UTC)


def _catalog(url: str) -> None:
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        store_synthetic_moves(session, count=500, seed=12, now=NOW)
    engine.dispose()


def _cli(url: str, *args: str, expect: int = 0) -> Any:
    env = {**os.environ, "CITYOS_DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "cityos", "release", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == expect, result.stderr
    return json.loads(result.stdout) if expect == 0 else result.stderr


def test_release_workflow_through_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    _catalog(url)
    refused = _cli(url, "proposals", "open-call", "--days", "10", expect=1)
    assert "at least 30 days" in refused
    call = _cli(url, "proposals", "open-call", "--days", "45")
    proposal = _cli(
        url,
        "proposals",
        "submit",
        "--call",
        call["id"],
        "--applicant",
        "acme",
        "--purpose",
        "需要分析",
        "--items",
        "年齢,地域",
        "--period",
        "2027年3月まで",
        "--safety",
        "閉域環境",
    )
    assert proposal["status"] == "submitted"
    decided = _cli(url, "proposals", "decide", "--proposal", proposal["id"], "--accept", "--reason", "適合")
    assert decided["status"] == "accepted" and decided["decision_reason"] == "適合"
    assert (
        _cli(url, "proposals", "contract", "--proposal", proposal["id"], "--ref", "K-1")["status"]
        == "contracted"
    )
    release = _cli(url, "proposals", "release", "--proposal", proposal["id"])
    assert release["classification"] == "partner" and release["applicant"] == "acme" and release["rows"] > 450
    assert [r["id"] for r in _cli(url, "list")] == [release["id"]]
    register = _cli(url, "register")
    assert register[0]["dataset"] == "resident-moves" and register[0]["匿名加工情報の概要"] == [
        release["概要"]
    ]
    cancelled = _cli(url, "proposals", "cancel", "--proposal", proposal["id"], "--reason", "解除")
    assert cancelled["status"] == "cancelled"
