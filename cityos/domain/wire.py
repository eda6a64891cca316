"""Field types shared by the views the admin APIs answer with and the CLI prints as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import PlainSerializer


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# An instant as ``datetime.isoformat()`` writes it (``+00:00``, microseconds only when there are
# some): the form operators' scripts and the audit exports have always read, not pydantic's ``Z``.
Instant = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json")]
