"""Fixtures of the publish API's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.publish_catalog import Catalog, open_catalog


@pytest.fixture()
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    """The real publish app over a migrated, filled SQLite catalog."""
    with open_catalog(tmp_path) as filled:
        yield filled
