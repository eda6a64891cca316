"""Run ``promtool check metrics`` (Debian package prometheus) on a live /metrics endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess

import httpx
import pytest


def assert_promtool_clean(url: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool not installed (Debian package prometheus; make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    exposition = httpx.get(url, timeout=10).content
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    problems = (result.stdout + result.stderr).decode().strip()
    assert result.returncode == 0 and not problems, f"promtool on {url}:\n{problems}"
