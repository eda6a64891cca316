"""The ``jsonschema`` validator used at registration (rich messages), made to agree with the hot path.

Two differences from plain ``Draft202012Validator``:

- ``pattern`` and ``patternProperties`` use ECMA-262 regular expressions, as JSON Schema specifies and
  as jsonschema-rs (ingest) does, instead of Python's ``re`` (which lacks ``\\p{L}`` and lets ``$``
  match before a final newline). Patterns are compiled once by jsonschema-rs and cached, so both
  validators can never disagree on a pattern.
- A meta-schema whose ``$vocabulary`` leaves out the validation vocabulary turns validation keywords
  off, as draft 2020-12 says (the Python library would apply them anyway).
- ``FORMAT_CHECKER`` asserts every format with jsonschema-rs's own checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

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


# Every format ingest asserts, checked by the same code ingest uses (jsonschema-rs), so registration
# and ingest agree on each value; the Python library lacks several (date-time and uri need optional
# packages) and differs on others.
FORMATS = (
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uri-template",
    "uuid",
    "json-pointer",
    "relative-json-pointer",
    "regex",
)


@lru_cache(maxsize=64)
def _format_validator(name: str) -> Any:
    return jsonschema_rs.validator_for({"format": name}, validate_formats=True)


def _format_check(name: str) -> Any:
    def check(instance: object) -> bool:
        return bool(_format_validator(name).is_valid(instance))

    return check


FORMAT_CHECKER = FormatChecker(formats=())
for _name in FORMATS:
    FORMAT_CHECKER.checks(_name)(_format_check(_name))


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
