"""The listening socket of an HTTP service run as several worker processes.

asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections of a socket created with
protocol IPPROTO_TCP. uvicorn creates the socket it shares among worker processes without naming
the protocol, so every response it writes in two parts (head, then body) waited for the caller's
delayed acknowledgement before the body left: about 40 ms on each keep-alive request. A socket
made here names the protocol, so each accepted connection gets TCP_NODELAY as in a single process.
"""

from __future__ import annotations

import socket


def tcp_listener(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket for ``host``:``port``, inheritable by workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Linux hands the listener's TCP_NODELAY on to accepted connections too.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
