"""The ``jsonschema`` validator used at registration (rich messages), made to agree with the hot path.

Two differences from plain ``Draft202012Validator``:

- ``pattern`` and ``patternProperties`` use ECMA-262 regular expressions, as JSON Schema specifies and
  as jsonschema-rs (ingest) does, instead of Python's ``re`` (which lacks ``\\p{L}`` and lets ``$``
  match before a final newline). Patterns are compiled once by jsonschema-rs and cached, so both
  validators can never disagree on a pattern.
- A meta-schema whose ``$vocabulary`` leaves out the validation vocabulary turns validation keywords
  off, as draft 2020-12 says (the Python library would apply them anyway).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend
from referencing import Registry
from referencing.exceptions import Unresolvable

VALIDATION_VOCABULARY = "https://json-schema.org/draft/2020-12/vocab/validation"
_VALIDATION_KEYWORDS = (
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "required",
    "dependentRequired",
)


@lru_cache(maxsize=4096)
def _ecma_pattern(pattern: str) -> Any:
    return jsonschema_rs.validator_for({"type": "string", "pattern": pattern})


def ecma_search(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern`` anywhere, with ECMA-262 semantics (jsonschema-rs)."""
    return bool(_ecma_pattern(pattern).is_valid(text))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if ecma_search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _ignored(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    return iter(())


# ``extend`` is untyped in the library's stubs; the classes it returns are Validator classes.
EcmaValidator: Any = extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, validators={"pattern": _pattern, "patternProperties": _pattern_properties}
)
_NoValidationVocabulary: Any = extend(  # type: ignore[no-untyped-call]
    EcmaValidator, validators=dict.fromkeys(_VALIDATION_KEYWORDS, _ignored)
)


# RFC 3339 section 5.6: a full date, "T", a time with seconds, and an offset ("Z" or ±hh:mm).
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)


def _date_time(text: object) -> bool:
    if not isinstance(text, str):
        return True  # formats apply to strings only
    if _RFC3339.match(text) is None:
        return False
    try:
        datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return False  # 2026-02-30T00:00:00Z has the shape, not a date
    return True


def _uri(text: object) -> bool:
    if not isinstance(text, str):
        return True
    parts = urlsplit(text)
    return (
        bool(parts.scheme)
        and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", parts.scheme) is not None
        and " " not in text
    )


# The library's checkers plus the two it only has with optional packages: ``date-time`` and ``uri``
# are asserted by ingest (jsonschema-rs), so registration-time checks must assert them too.
FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checkers.update(Draft202012Validator.FORMAT_CHECKER.checkers)
FORMAT_CHECKER.checks("date-time")(_date_time)
FORMAT_CHECKER.checks("uri")(_uri)


def registration_validator(
    schema: Any, *, registry: Registry[Any] | None = None, format_checker: Any = None
) -> Validator:
    """A validator for ``schema`` that honours its meta-schema's vocabularies when it can see them."""
    cls: Any = EcmaValidator
    meta = schema.get("$schema") if isinstance(schema, dict) else None
    if isinstance(meta, str) and registry is not None:
        try:
            vocabularies = registry.resolver().lookup(meta).contents.get("$vocabulary")
        except (Unresolvable, AttributeError):
            vocabularies = None
        if isinstance(vocabularies, dict) and VALIDATION_VOCABULARY not in vocabularies:
            cls = _NoValidationVocabulary
    kwargs: dict[str, Any] = {}
    if registry is not None:
        kwargs["registry"] = registry
    if format_checker is not None:
        kwargs["format_checker"] = format_checker
    validator: Validator = cls(schema, **kwargs)
    return validator
