"""Strict JSON parsing of untrusted event bytes: UTF-8 only, bounded size and depth, no duplicate
keys, no NaN/Infinity, no U+0000, no lone surrogates, integers kept exact.

A refusal raises ``Refusal`` with the ``Reason`` code; callers turn it into a value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from cityos.kernel.deadletter import Reason

MAX_MESSAGE_BYTES = 1024 * 1024
MAX_NESTING_DEPTH = 32


class Refusal(Exception):
    """The bytes are not acceptable JSON; ``reason`` says why."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Refusal(Reason.DUPLICATE_KEY, f"duplicate object key {key!r}")
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> Any:
    raise Refusal(Reason.NON_FINITE_NUMBER, f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400 overflows to inf
        raise Refusal(Reason.NON_FINITE_NUMBER, f"number {text[:40]} is out of range")
    return value


_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_without_duplicates,
    parse_constant=_refuse_constant,
    parse_float=_finite_float,
    strict=True,  # raw control characters inside strings are malformed
)


def _nesting_depth(raw: bytes, limit: int) -> int:
    """Depth of [ and { outside strings, stopping once past ``limit`` (exact only up to it)."""
    depth = 0
    deepest = 0
    in_string = False
    escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _strings(value: Any) -> Iterable[str]:
    """Every string in a parsed JSON value, keys included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_strict_json(raw: bytes) -> Any:
    """Parse UTF-8 JSON refusing what a lenient parser lets through. Raises ``Refusal``.

    Fast path: orjson already refuses invalid UTF-8, NaN/Infinity, overflowing numbers, lone
    surrogates and raw control characters; what it lets through silently is duplicate keys
    (last one wins), ``\\u0000`` and integers beyond 64 bits (turned into floats). One look at
    the bytes (``plain_counts``) rules those out: no ``\\u0000``, no run of 19 digits, no nesting
    past the limit, and every key is followed by ``":`` in compact JSON, so when the parsed keys
    number exactly the ``":`` found in the bytes no key was dropped. Anything unusual takes the
    exact path, which also names the precise reason for a refusal.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Refusal(
            Reason.MESSAGE_TOO_LARGE, f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
    counts = plain_counts(raw, MAX_NESTING_DEPTH)
    if counts is not None:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            keys, objects = counts
            # A flat object needs no call: its own length is all its keys.
            if (len(value) if objects == 1 and type(value) is dict else _parsed_keys(value, objects)) == keys:
                return value
    return _parse_exact(raw)


# orjson turns integers beyond 64 bits into floats; 19 digits in a row may be such an integer.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19
_CONTAINERS: frozenset[type] = frozenset({dict, list})
_type_of: Callable[[Any], type] = type


def _plain_counts_python(raw: bytes, max_depth: int) -> tuple[int, int] | None:
    """``(keys, objects)`` -- how many ``":`` and ``{`` the bytes hold -- when they hold no
    ``\\u0000``, no run of 19 digits and no nesting deeper than ``max_depth``; None when the exact
    parser must decide. The compiled ``cityos_native.plain_counts`` answers the same in one
    pass (a unit test holds the two to the same answers on any bytes)."""
    if b"\\u0000" in raw or _LONG_DIGIT_RUN in raw.translate(_DIGITS_AS_ZERO):
        return None
    objects = raw.count(b"{")
    # Counting brackets is a cheap upper bound on depth; only past the cap is it measured.
    if objects + raw.count(b"[") > max_depth and _nesting_depth(raw, max_depth) > max_depth:
        return None
    return raw.count(b'":'), objects


def _compiled_plain_counts() -> Callable[[bytes, int], tuple[int, int] | None] | None:
    try:
        from cityos_native import plain_counts as compiled
    except ImportError:  # not built on this machine: the Python scan gives the same answers
        return None
    return compiled


# The byte checks are most of strict decoding's cost beyond orjson; the compiled scan does them in
# one pass (about a fifth of the time), the Python one in five byte scans.
plain_counts: Callable[[bytes, int], tuple[int, int] | None] = (
    _compiled_plain_counts() or _plain_counts_python
)
SCAN = "compiled" if plain_counts is not _plain_counts_python else "python"


def _parsed_keys(value: Any, objects: int) -> int:
    """Number of object keys of ``value``, parsed from bytes holding ``objects`` ``{`` bytes.

    Every object opens with a ``{`` byte, so their count bounds how many there are: a usual event
    (an envelope with one object of data) is settled by two ``len`` calls, without walking it.
    """
    if type(value) is dict:
        if objects == 1:
            return len(value)
        data = value.get("data")
        if objects == 2 and type(data) is dict:
            # Two objects found for two ``{`` bytes: there is no other object anywhere.
            return len(value) + len(data)
    return _keys_and_depth(value)[0]


def _keys_and_depth(value: Any) -> tuple[int, int]:
    """Number of object keys and nesting depth of a parsed JSON value."""
    keys = 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if type(item) is dict:
            keys += len(item)
            children = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        # map/isdisjoint run in C: a flat object of scalars costs no Python-level loop.
        if not _CONTAINERS.isdisjoint(map(_type_of, children)):
            stack.extend((child, depth + 1) for child in children if type(child) in _CONTAINERS)
    return keys, deepest


def _parse_exact(raw: bytes) -> Any:
    # Counting brackets is a cheap upper bound on depth; only when it exceeds the cap do we
    # scan exactly, which keeps the recursive parser away from deep input.
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING_DEPTH:
        depth = _nesting_depth(raw, MAX_NESTING_DEPTH)
        if depth > MAX_NESTING_DEPTH:
            raise Refusal(Reason.NESTING_TOO_DEEP, f"nesting deeper than {MAX_NESTING_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(Reason.INVALID_UTF8, f"not UTF-8 at byte {exc.start}") from None
    try:
        value = _STRICT_DECODER.decode(text)
    except Refusal:
        raise
    except (ValueError, RecursionError) as exc:
        raise Refusal(Reason.MALFORMED_JSON, f"malformed JSON: {exc}") from None
    if b"\\u0000" in raw and any("\x00" in s for s in _strings(value)):
        raise Refusal(Reason.NUL_CHARACTER, "strings must not contain U+0000")
    if (b"\\ud" in raw or b"\\uD" in raw) and not all(_is_encodable(s) for s in _strings(value)):
        raise Refusal(Reason.INVALID_UNICODE, "lone UTF-16 surrogate escape")
    return value


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
