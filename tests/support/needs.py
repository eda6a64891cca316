"""What a test needs from the machine: skip with the reason on a developer's machine, fail in CI
(CI=true), where anything missing is a broken set-up that must never pass as green."""

from __future__ import annotations

import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def env(name: str, hint: str) -> str:
    """The value of environment variable ``name``; ``hint`` says how to provide it."""
    value = os.environ.get(name)
    if not value:
        unavailable(f"{name} is not set: {hint}")
    return value


def promtool() -> str:
    """Path of promtool (Debian package prometheus; `make test` installs it)."""
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool not installed (Debian package prometheus; make test installs it)")
    return path


def native_module() -> ModuleType:
    """The compiled hot loops of native/ (`make` builds them with `pip install ./native` wherever a
    Rust toolchain is installed); for module-level use in the tests that compare them with Python."""
    try:
        import cityos_native
    except ImportError:
        message = "native/ not built (PATH=$HOME/.cargo/bin:$PATH .venv/bin/pip install ./native)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return cityos_native


def chromium() -> str:
    """Path of Debian's chromium, which the browser tests drive through Playwright (it never
    downloads a browser of its own): `apt-get install chromium`."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    unavailable("chromium not installed (Debian package chromium): the browser tests drive it")
