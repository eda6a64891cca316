"""Where the links of an answer point: the public base URL, per request.

An explicit ``CITYOS_PUBLIC_BASE_URL`` always wins (a canonical public name behind a proxy). Unset,
links point where the request came in -- its scheme and ``Host`` -- so a stack on any host or port
links to itself and a harvester following ``next`` or a CKAN resource URL stays on the same stack.
``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are believed only from the reverse proxies listed in
``CITYOS_PUBLISH_TRUSTED_PROXIES``: from anyone else they would let a client write the links other
callers are served. A Host that is not a plain host name or address (a client can send anything)
falls back to the service's own listening address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import Scope

from cityos.kernel.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A host name or IPv4 address, or a bracketed IPv6 address, with an optional port: nothing that
# could end the authority part of a URL (no "/", "@", "?", "#", spaces).
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_SCHEMES = ("http", "https")
# Listening on every interface is no address a client can be sent to.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}
_DIRECT = frozenset({b"host"})
_PROXIED = frozenset({b"host", b"x-forwarded-proto", b"x-forwarded-host"})


def parse_trusted_proxies(setting: str) -> tuple[Network, ...]:
    """``"10.0.0.5, 192.168.0.0/24"`` -> networks; a malformed entry is an error at start-up."""
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in setting.split(",") if item.strip()
    )


def listening_base(host: str, port: int) -> str:
    """The service's own address as a URL, for a request that names no usable Host."""
    shown = _WILDCARDS.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def is_trusted(peer: str | None, trusted: Iterable[Network]) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def choose_base(
    *,
    scheme: str,
    host: str | None,
    forwarded_proto: str | None,
    forwarded_host: str | None,
    from_trusted_proxy: bool,
    fallback: str,
) -> str:
    """The base URL for one request's links, from what it says about itself. Pure."""
    if from_trusted_proxy:
        # A chain of proxies appends: the first value is what the client used.
        proto = (forwarded_proto or "").split(",")[0].strip().lower()
        scheme = proto if proto in _SCHEMES else scheme
        first_host = (forwarded_host or "").split(",")[0].strip()
        host = first_host or host
    if host is None or not _HOST.fullmatch(host) or scheme not in _SCHEMES:
        return fallback
    return f"{scheme}://{host.lower()}"


@dataclass(frozen=True, slots=True)
class PublicBase:
    """The base-URL decision of one service, built once from its settings."""

    configured: str
    fallback: str
    trusted: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> PublicBase:
        return cls(
            configured=settings.public_base_url.strip().rstrip("/"),
            fallback=listening_base(settings.publish_host, settings.publish_port),
            trusted=parse_trusted_proxies(settings.publish_trusted_proxies),
        )

    def for_scope(self, scope: Scope) -> str:
        """The base URL of the links in the answer to this ASGI request (no trailing slash)."""
        if self.configured:
            return self.configured
        client = scope.get("client")
        trusted = bool(self.trusted) and is_trusted(client[0] if client else None, self.trusted)
        wanted = _PROXIED if trusted else _DIRECT
        found: dict[bytes, str] = {}
        for name, value in scope.get("headers", ()):
            if name in wanted and name not in found:
                found[name] = value.decode("latin-1")
        return choose_base(
            scheme=str(scope.get("scheme", "http")),
            host=found.get(b"host"),
            forwarded_proto=found.get(b"x-forwarded-proto"),
            forwarded_host=found.get(b"x-forwarded-host"),
            from_trusted_proxy=trusted,
            fallback=self.fallback,
        )
