"""Regular expressions from schemas and requests, evaluated on linear-time engines only.

A pattern in a JSON Schema comes from whoever registers or checks a schema, and a backtracking engine
lets one such pattern (``^(a|a)*$`` against a long name) stall a service for minutes. So no pattern from
outside ever runs on one: Python code matches with RE2 (google-re2), and jsonschema-rs, which validates
every event, runs with its ``regex``-crate engine (``RUST_PATTERN_OPTIONS``), a finite-automaton engine
with the same guarantee. Neither supports backreferences nor lookaround: such a pattern is refused when
the schema is registered or checked (``pattern_problem``), never at the first event.

Patterns are written in ECMA-262's dialect, as JSON Schema says. Two differences are translated here:
``$(?!\\n)``, which the bundled schemas append so that Python's ``re`` agrees with ECMA-262 (whose ``$``
never matches before a final newline), is ``$`` on both linear engines, whose ``$`` means the same; and
RE2 spells ``\\uXXXX`` as ``\\x{XXXX}`` and ``\\p{Script=Han}`` as ``\\p{Han}``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import jsonschema_rs
import re2

# The engine jsonschema-rs runs ``pattern`` and ``patternProperties`` on: Rust's ``regex`` crate,
# linear in the input, instead of fancy-regex's backtracking.
RUST_PATTERN_OPTIONS = jsonschema_rs.RegexOptions()

# Keywords whose values are schemas (one, a list, or a name -> schema map), as draft 2020-12 has them.
ONE_SCHEMA = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "contentSchema",
)
SCHEMA_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")

Path = tuple[str | int, ...]


class UnsupportedPattern(ValueError):
    """A pattern the linear-time engines cannot run (backreference, lookaround, bad syntax, too large)."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(f"{pattern[:200]!r}: {reason}")
        self.pattern = pattern
        self.reason = reason


def subschemas(node: Any, path: Path = ()) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every object subschema of ``node`` with its path, the node itself first (values of ``const``,
    ``enum``, ``default`` and ``examples`` are data, never walked)."""
    if not isinstance(node, dict):
        return
    yield path, node
    for keyword in ONE_SCHEMA:
        if keyword in node:
            yield from subschemas(node[keyword], (*path, keyword))
    for keyword in SCHEMA_LIST:
        if isinstance(node.get(keyword), list):
            for index, item in enumerate(node[keyword]):
                yield from subschemas(item, (*path, keyword, index))
    for keyword in SCHEMA_MAP:
        if isinstance(node.get(keyword), dict):
            for name, item in node[keyword].items():
                yield from subschemas(item, (*path, keyword, name))


def schema_patterns(document: Any) -> Iterator[tuple[Path, str]]:
    """Every regular expression of a schema with where it is: ``pattern`` values and the names of
    ``patternProperties`` (``propertyNames`` is a subschema, so its ``pattern`` is among them)."""
    for path, node in subschemas(document):
        if isinstance(node.get("pattern"), str):
            yield (*path, "pattern"), node["pattern"]
        names = node.get("patternProperties")
        if isinstance(names, dict):
            for name in names:
                if isinstance(name, str):
                    yield (*path, "patternProperties", name), name


# ``$`` followed by ``(?!\n)``, outside a character class and not escaped: ``$`` alone on both engines.
_END_THEN_NO_NEWLINE = "$(?!\\n)"


def _scan(pattern: str, rewrite: Callable[[str, int, bool], tuple[str, int] | None]) -> str:
    """Copy ``pattern`` token by token; ``rewrite(pattern, index, in_class)`` may replace the token at
    ``index`` (returning the text and the index after it)."""
    out: list[str] = []
    index, in_class = 0, False
    while index < len(pattern):
        replaced = rewrite(pattern, index, in_class)
        if replaced is not None:
            text, index = replaced
            out.append(text)
            continue
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


def _end_anchor(pattern: str, index: int, in_class: bool) -> tuple[str, int] | None:
    if not in_class and pattern.startswith(_END_THEN_NO_NEWLINE, index):
        return "$", index + len(_END_THEN_NO_NEWLINE)
    return None


_UNICODE_ESCAPE = re.compile(r"\\u(?:([0-9A-Fa-f]{4})|\{([0-9A-Fa-f]{1,6})\})")
_PROPERTY_ESCAPE = re.compile(
    r"\\([pP])\{(?:Script|sc|Script_Extensions|scx|General_Category|gc)=([A-Za-z_]+)\}"
)


def _re2_token(pattern: str, index: int, in_class: bool) -> tuple[str, int] | None:
    if pattern.startswith("\\u", index):
        escape = _UNICODE_ESCAPE.match(pattern, index)
        if escape is not None:
            return "\\x{" + (escape[1] or escape[2]) + "}", escape.end()
    if pattern.startswith(("\\p{", "\\P{"), index):
        escape = _PROPERTY_ESCAPE.match(pattern, index)
        if escape is not None:
            return f"\\{escape[1]}{{{escape[2]}}}", escape.end()
    return _end_anchor(pattern, index, in_class)


def rust_source(pattern: str) -> str:
    """The pattern as jsonschema-rs's linear engine is given it (only ``$(?!\\n)`` changes)."""
    if _END_THEN_NO_NEWLINE not in pattern:
        return pattern
    return _scan(pattern, _end_anchor)


def re2_source(pattern: str) -> str:
    """The pattern in RE2's spelling."""
    if "\\" not in pattern and "$" not in pattern:
        return pattern
    return _scan(pattern, _re2_token)


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is a value for the caller, not a line on stderr
    return options


_OPTIONS = _options()


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    return text or type(exc).__name__


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program of an ECMA-262 pattern, compiled once; ``UnsupportedPattern`` when RE2 cannot
    run it (the ``re2`` module is untyped, hence ``Any``)."""
    try:
        return re2.compile(re2_source(pattern), _OPTIONS)
    except re2.error as exc:
        raise UnsupportedPattern(pattern, _reason(exc)) from exc


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (JSON Schema's ``pattern`` meaning), in time
    linear in ``text``. Raises ``UnsupportedPattern``."""
    return compile_pattern(pattern).search(text) is not None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used (RE2's words), or None when both linear engines run it."""
    try:
        compile_pattern(pattern)
    except UnsupportedPattern as exc:
        return exc.reason
    try:
        jsonschema_rs.validator_for({"pattern": rust_source(pattern)}, pattern_options=RUST_PATTERN_OPTIONS)
    except ValueError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return first_line[:300]
    return None


def linear_document(document: Any) -> Any:
    """``document`` with every pattern in jsonschema-rs's linear spelling (the same object when no
    pattern needs it, a changed copy otherwise): registered documents keep their bytes."""
    if not any(rust_source(pattern) != pattern for _, pattern in schema_patterns(document)):
        return document
    changed = copy.deepcopy(document)
    for _, node in subschemas(changed):
        if isinstance(node.get("pattern"), str):
            node["pattern"] = rust_source(node["pattern"])
        names = node.get("patternProperties")
        if isinstance(names, dict):
            node["patternProperties"] = {
                rust_source(name) if isinstance(name, str) else name: schema for name, schema in names.items()
            }
    return changed
