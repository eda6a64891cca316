"""JSON value semantics shared by the catalog's change detection and the feeds' record filters."""

from __future__ import annotations

from collections.abc import Mapping


def json_equal(left: object, right: object) -> bool:
    """JSON equality: numbers by value (1 == 1.0, as JSONB normalises them), booleans never numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


def json_type_name(value: object) -> str:
    """The JSON Schema type name of a decoded JSON value (``integer`` for whole numbers, never ``number``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
