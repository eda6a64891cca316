"""Request and response bodies of the registry and dead-letter admin API (the CLI prints the same
shapes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from cityos.domain.registry.compatibility import Mode
from cityos.domain.wire import Instant


class CompatibilityBody(BaseModel):
    compatibility: Mode


class ReplayBody(BaseModel):
    """Which dead letters to replay: ``ids``, or a filter, or ``all``; at least one must be given."""

    ids: list[str] | None = Field(default=None, description="dead-letter ids <partition>-<offset>")
    dataset: str | None = None
    reason: str | None = None
    department: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    all: bool = Field(default=False, description="every dead letter (no filter)")
    force: bool = Field(default=False, description="also those replayed before")
    value: Any | None = Field(default=None, description="corrected payload (JSON) for exactly one id")

    def selects_something(self) -> bool:
        return (
            self.all
            or bool(self.ids)
            or any(
                v is not None for v in (self.dataset, self.reason, self.department, self.since, self.until)
            )
        )


class SchemaVersionView(BaseModel):
    version: int
    uri: str
    registered_at: Instant


class SchemaVersionsView(BaseModel):
    """A dataset's registered schema versions, oldest first, and the level new ones must meet."""

    dataset: str
    compatibility: Mode
    versions: list[SchemaVersionView]


class CompatibilityView(BaseModel):
    dataset: str
    compatibility: Mode
