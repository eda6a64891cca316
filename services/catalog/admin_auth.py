"""Credentials of the catalog's admin APIs: the Bearer token of a request and the operators' admin
token (``CITYOS_ADMIN_TOKEN``), checked the same way by every router."""

# No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations at runtime.

import hmac

from fastapi import HTTPException

ADMIN_ACTOR = "admin"


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_admin_token(token: str, admin_token: str) -> bool:
    """Whether `token` is the operators' admin token; never when none is configured. Constant-time,
    so the comparison does not tell an attacker how much of a guess was right."""
    return bool(admin_token) and hmac.compare_digest(token.encode(), admin_token.encode())


def require_admin(authorization: str | None, admin_token: str, *, cli_hint: str) -> str:
    """The acting administrator, for endpoints only the admin token may use: 403 when HTTP
    administration is off (no admin token; `cli_hint` names the CLI to use instead), 401 otherwise."""
    if not admin_token:
        raise HTTPException(403, f"HTTP administration is off (no CITYOS_ADMIN_TOKEN); use {cli_hint}")
    token = bearer(authorization)
    if token is None or not is_admin_token(token, admin_token):
        raise HTTPException(401, "administrator credential required", {"WWW-Authenticate": "Bearer"})
    return ADMIN_ACTOR
