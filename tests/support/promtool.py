"""Run ``promtool check metrics`` (Debian package prometheus) on a live /metrics endpoint."""

from __future__ import annotations

import subprocess

import httpx

from tests.support import needs


def assert_promtool_clean(url: str) -> None:
    promtool = needs.promtool()
    exposition = httpx.get(url, timeout=10).content
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    problems = (result.stdout + result.stderr).decode().strip()
    assert result.returncode == 0 and not problems, f"promtool on {url}:\n{problems}"
