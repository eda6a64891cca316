"""What the catalog admin routers' handlers share: the objects ``create_catalog_app`` puts on
``app.state`` when it wires the app (database sessions, settings, metrics), read back per request
through FastAPI dependencies, so the routers themselves are plain module-level objects."""

# No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations at runtime.

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from cityos.kernel.settings import Settings

_Context = TypeVar("_Context", bound="RouterContext")


@dataclass(frozen=True)
class RouterContext:
    """The database and settings every admin router works with."""

    sessions: sessionmaker[Session]
    settings: Settings

    def session(self) -> Iterator[Session]:
        """One session per request; closing it (after the answer) rolls back what was not committed."""
        with self.sessions() as session:
            yield session


def app_context(request: Request, name: str, kind: type[_Context]) -> _Context:
    """The context a router's handlers need, as ``create_catalog_app`` stored it on the app."""
    context = getattr(request.app.state, name, None)
    if not isinstance(context, kind):
        raise RuntimeError(
            f"app.state.{name} is not a {kind.__name__}: the app was not wired for this router"
        )
    return context
