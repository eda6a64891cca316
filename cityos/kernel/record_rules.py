"""Record rules: what a dataset's records must satisfy across fields, which JSON Schema cannot say.

A dataset declares them in ``dataset.json`` (``record_rules``) as a small list; ingest checks them
after the schema, so a record that is well formed field by field but impossible as a whole (born
after it moved, a birth with a previous address) is dead-lettered with its own reason instead of
reaching the catalog and, later, refusing a whole anonymized release.

Each rule names a ``field``; comparison rules name the ``other`` field too; ``when`` limits a rule
to records whose fields hold one of the listed values. A field the record lacks satisfies a
comparison (requiredness is the schema's business); ``present`` and ``absent`` are about exactly
that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RuleKind = Literal["not_after", "equal", "present", "absent"]
_COMPARISONS = ("not_after", "equal")


class RecordRule(BaseModel):
    """One declared rule, e.g. ``{"rule": "not_after", "field": "生年月日", "other": "異動日"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: RuleKind
    field: str = Field(min_length=1)
    other: str | None = None
    when: dict[str, list[str | int]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _other_for_comparisons(self) -> RecordRule:
        if (self.rule in _COMPARISONS) != (self.other is not None):
            need = "needs" if self.rule in _COMPARISONS else "takes no"
            raise ValueError(f"rule {self.rule!r} {need} 'other'")
        return self

    @property
    def fields(self) -> list[str]:
        """Every record field the rule reads (checked against the schema when the dataset loads)."""
        return [self.field, *([self.other] if self.other else []), *self.when]


@dataclass(frozen=True, slots=True)
class RuleViolation:
    """A broken rule: the field to point at and a sentence in Japanese and English."""

    rule: RuleKind
    field: str
    ja: str
    en: str

    @property
    def detail(self) -> str:
        """The dead-letter detail: both languages, Japanese first, as city staff read it."""
        return f"{self.ja} / {self.en}"


def _applies(rule: RecordRule, record: Mapping[str, Any]) -> bool:
    return all(record.get(name) in values for name, values in rule.when.items())


def _condition(rule: RecordRule) -> tuple[str, str]:
    if not rule.when:
        return "", ""
    ja = "、".join(f"{name}が{'・'.join(map(str, values))}" for name, values in rule.when.items())
    en = " and ".join(f"{name} is {' or '.join(map(str, values))}" for name, values in rule.when.items())
    return f"{ja}の場合、", f" when {en}"


def _comparable(value: Any) -> date | datetime | int | float | None:
    """Dates (ISO 8601) and numbers compare; anything else is left to the schema."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _ordered(left: Any, right: Any) -> bool | None:
    """``left <= right``, or None when the two cannot be compared (absent, another kind)."""
    a, b = _comparable(left), _comparable(right)
    if a is None or b is None or isinstance(a, datetime) != isinstance(b, datetime):
        return None
    if isinstance(a, date | datetime) != isinstance(b, date | datetime):
        return None
    try:
        return bool(a <= b)  # type: ignore[operator]  # same kind, checked above
    except TypeError:  # a time zone on one side only: the order is unknown
        return None


def _broken(rule: RecordRule, record: Mapping[str, Any]) -> bool:
    value = record.get(rule.field)
    other = record.get(rule.other) if rule.other is not None else None
    if rule.rule == "present":
        return value is None
    if rule.rule == "absent":
        return value is not None
    if rule.rule == "not_after":
        return _ordered(value, other) is False
    return value is not None and other is not None and value != other


def _sentences(rule: RecordRule, record: Mapping[str, Any]) -> tuple[str, str]:
    """What is wrong, in Japanese and in English, with the values the record holds."""
    if_ja, if_en = _condition(rule)
    name = rule.field
    if rule.rule == "present":
        return f"{if_ja}{name}が必要です", f"{name} is required{if_en}"
    if rule.rule == "absent":
        return f"{if_ja}{name}は記載できません", f"{name} must be absent{if_en}"
    value, other = record.get(name), record.get(str(rule.other))
    both_ja = f"{name}（{value}）が{rule.other}（{other}）"
    relation_ja, relation_en = (
        ("より後です", "after") if rule.rule == "not_after" else ("と異なります", "not equal to")
    )
    return (
        f"{if_ja}{both_ja}{relation_ja}",
        f"{name} ({value}) is {relation_en} {rule.other} ({other}){if_en}",
    )


def check_rule(rule: RecordRule, record: Mapping[str, Any]) -> RuleViolation | None:
    """The violation of one rule by one record, or None."""
    if not _applies(rule, record) or not _broken(rule, record):
        return None
    ja, en = _sentences(rule, record)
    return RuleViolation(rule.rule, rule.field, ja, en)


def violations(rules: Sequence[RecordRule], record: Mapping[str, Any]) -> Iterator[RuleViolation]:
    """Every rule the record breaks, in declaration order."""
    for rule in rules:
        found = check_rule(rule, record)
        if found is not None:
            yield found


def first_violation(rules: Sequence[RecordRule], record: Mapping[str, Any]) -> RuleViolation | None:
    """The first rule the record breaks (a dead letter carries one reason), or None."""
    return next(violations(rules, record), None)
