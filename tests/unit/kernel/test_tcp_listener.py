"""The shared listening socket of worker processes: its connections send without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket

from cityos.kernel.tcp_listener import tcp_listener


def _server_side_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY of the connection asyncio accepts on ``listener``, as uvicorn serves it."""
    seen: list[int] = []

    async def run() -> None:
        accepted = asyncio.Event()

        def connected(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            accepted.set()

        server = await asyncio.start_server(connected, sock=listener)
        async with server:
            host, port = listener.getsockname()[:2]
            _reader, writer = await asyncio.open_connection(host, port)
            await asyncio.wait_for(accepted.wait(), 5)
            writer.close()

    asyncio.run(run())
    return seen[0]


def test_connections_of_the_listener_send_without_delay() -> None:
    assert _server_side_nodelay(tcp_listener("127.0.0.1", 0)) != 0


def test_a_socket_without_the_protocol_named_keeps_nagle() -> None:
    # What the listener exists to avoid: asyncio leaves such a socket's connections with Nagle on.
    plain = socket.socket(socket.AF_INET)
    plain.bind(("127.0.0.1", 0))
    assert _server_side_nodelay(plain) == 0


def test_the_listener_is_inheritable_by_worker_processes() -> None:
    listener = tcp_listener("127.0.0.1", 0)
    try:
        assert listener.get_inheritable()
        assert listener.proto == socket.IPPROTO_TCP
    finally:
        listener.close()
