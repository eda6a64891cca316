"""Properties of strict decoding and routing: whatever the bytes, the answer is a value (decoded
or refused with a reason), never an exception; well-formed JSON round-trips unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.kernel.events import Decoded, Rejected, decode_event, parse_structured
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from cityos.kernel.validation import ValidatorRegistry
from services.ingest.routing import InboundMessage, Topics, route

NOW = datetime(2026, 11, 27, tzinfo=UTC)
REGISTRY = ValidatorRegistry(load_schema_dir(Settings().schemas_dir))
TOPICS = Topics("v", "d")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
headers = st.lists(
    st.tuples(st.sampled_from(["ce_specversion", "ce_id", "content-type", "x"]), st.binary(max_size=20)),
    max_size=4,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(raw=st.binary(max_size=300), hdrs=headers)
def test_arbitrary_bytes_never_raise(raw: bytes, hdrs: list[tuple[str, bytes]]) -> None:
    result = decode_event(raw, hdrs, now=NOW)
    assert isinstance(result, Decoded | Rejected)
    routed = route(
        InboundMessage("dept.fire.events", 0, 0, None, raw, list(hdrs), None),
        registry=REGISTRY,
        topics=TOPICS,
        now=NOW,
        max_future=timedelta(minutes=5),
    )
    assert routed.outbound.topic in {"v", "d"}
    assert (routed.reason is None) == (routed.outbound.topic == "v")


@settings(max_examples=400, deadline=None, derandomize=True)
@given(data=json_values)
def test_well_formed_json_data_round_trips(data: Any) -> None:
    event = {"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "data": data}
    for text in (json.dumps(event), json.dumps(event, ensure_ascii=False), json.dumps(event, indent=2)):
        if "\\u0000" in text or "\x00" in text or _has_lone_surrogate(data):
            continue  # refused on purpose: covered by the bad-input tests
        decoded = decode_event(text.encode("utf-8", errors="surrogatepass"), [], now=NOW)
        if _too_deep(event):
            assert isinstance(decoded, Rejected)
            continue
        assert isinstance(decoded, Decoded), (decoded, text[:200])
        assert decoded.data == data
        assert parse_structured(text.encode("utf-8", errors="surrogatepass"), []) == event


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    return False


def _too_deep(value: Any, depth: int = 0) -> bool:
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return depth + 1 > 32 or any(_too_deep(child, depth + 1) for child in children)
    return False
