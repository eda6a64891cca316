"""Secrets generated on first use into the runtime folder, never committed.

Each secret is one file under the secrets folder (``CITYOS_SECRETS_DIR``, default ``var/secrets``),
created with mode 0600 inside a 0700 folder. The first process to need a secret creates it; every
later process (and every restart) reads the same value, so credentials survive restarts and a new
machine gets fresh ones. Rotation is deleting the file (and re-running what consumes it).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def secret_path(folder: Path, name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a secret name: {name!r} (lower-case letters, digits, '.', '_', '-')")
    return folder / name


def read_or_create_secret(folder: Path, name: str, *, nbytes: int = 32) -> str:
    """The secret ``name`` (URL-safe text), created with ``nbytes`` of randomness when absent.

    Creation is atomic and exclusive: two processes starting together agree on one value.
    """
    path = secret_path(folder, name)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(nbytes)
    temporary = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    try:
        os.link(temporary, path)  # fails when another process won the race: keep theirs
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return _read(path)


def read_secret(folder: Path, name: str) -> str | None:
    """The secret ``name`` when it exists, else None (the caller explains what to run)."""
    try:
        return _read(secret_path(folder, name))
    except FileNotFoundError:
        return None


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise FileNotFoundError(path)
    return value
