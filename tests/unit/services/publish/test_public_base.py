"""Where links point: the configured base, the request's own Host, or a trusted proxy's headers."""

from __future__ import annotations

from typing import Any

import pytest

from cityos.kernel.settings import Settings
from services.publish.public_base import PublicBase, choose_base, listening_base, parse_trusted_proxies

FALLBACK = "http://127.0.0.1:8000"


def _scope(host: str | None, *, client: str = "203.0.113.9", **headers: str) -> dict[str, Any]:
    raw = [(b"host", host.encode())] if host is not None else []
    raw += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "scheme": "http", "client": (client, 50000), "headers": raw}


def test_without_a_setting_links_point_where_the_request_came_in() -> None:
    base = PublicBase.from_settings(Settings(public_base_url="", publish_port=18080))
    assert base.for_scope(_scope("127.0.0.1:18080")) == "http://127.0.0.1:18080"
    assert base.for_scope(_scope("Opendata.City.Example.jp")) == "http://opendata.city.example.jp"
    assert base.for_scope(_scope("[::1]:18080")) == "http://[::1]:18080"


def test_an_explicit_setting_wins_over_every_header() -> None:
    settings = Settings(
        public_base_url="https://opendata.city.example.jp/", publish_trusted_proxies="0.0.0.0/0"
    )
    base = PublicBase.from_settings(settings)
    scope = _scope("127.0.0.1:8000", x_forwarded_host="evil.example", x_forwarded_proto="http")
    assert base.for_scope(scope) == "https://opendata.city.example.jp"


def test_no_usable_host_falls_back_to_the_listening_address() -> None:
    base = PublicBase.from_settings(Settings(public_base_url="", publish_host="0.0.0.0", publish_port=18080))
    assert base.for_scope(_scope(None)) == "http://127.0.0.1:18080"
    for hostile in ("evil.example/path", "a@b", "x y", "", "host:port", "evil.example#"):
        assert base.for_scope(_scope(hostile)) == "http://127.0.0.1:18080", hostile


def test_forwarded_headers_count_only_from_trusted_proxies() -> None:
    base = PublicBase.from_settings(
        Settings(public_base_url="", publish_trusted_proxies="10.0.0.5, 192.168.0.0/24")
    )
    forwarded = {"x_forwarded_host": "opendata.city.example.jp, inner.proxy", "x_forwarded_proto": "https"}
    assert base.for_scope(_scope("10.1.1.1:8000", client="10.0.0.5", **forwarded)) == (
        "https://opendata.city.example.jp"
    )
    assert base.for_scope(_scope("10.1.1.1:8000", client="192.168.0.77", **forwarded)) == (
        "https://opendata.city.example.jp"
    )
    # Anyone else: the headers are ignored, the request's own Host is used.
    assert (
        base.for_scope(_scope("10.1.1.1:8000", client="203.0.113.9", **forwarded)) == "http://10.1.1.1:8000"
    )
    assert base.for_scope(_scope("10.1.1.1:8000", client="testclient", **forwarded)) == "http://10.1.1.1:8000"


def test_nobody_is_trusted_by_default() -> None:
    base = PublicBase.from_settings(Settings(public_base_url=""))
    assert base.trusted == ()
    scope = _scope("127.0.0.1:8000", client="127.0.0.1", x_forwarded_host="evil.example")
    assert base.for_scope(scope) == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("proto", "host", "expected"),
    [
        ("https", "good.example", "https://good.example"),
        ("javascript", "good.example", "http://good.example"),  # an unknown scheme keeps the request's
        (None, "good.example:8443", "http://good.example:8443"),
        ("https", "bad.example/x", FALLBACK),  # a malformed forwarded host is no host
    ],
)
def test_choose_base_from_a_trusted_proxy(proto: str | None, host: str, expected: str) -> None:
    chosen = choose_base(
        scheme="http", host="inner:8000", forwarded_proto=proto, forwarded_host=host,
        from_trusted_proxy=True, fallback=FALLBACK,
    )  # fmt: skip
    assert chosen == expected


def test_listening_base_and_proxy_list_parsing() -> None:
    assert listening_base("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert listening_base("::", 9000) == "http://[::1]:9000"
    assert listening_base("fe80::1", 9000) == "http://[fe80::1]:9000"
    assert listening_base("publish.internal", 9000) == "http://publish.internal:9000"
    assert [str(n) for n in parse_trusted_proxies(" 10.0.0.5 ,, 10.1.0.0/16 ")] == [
        "10.0.0.5/32",
        "10.1.0.0/16",
    ]
    with pytest.raises(ValueError):
        parse_trusted_proxies("not-an-address")
