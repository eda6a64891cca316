"""Every problem of one CSV row, in Japanese and English, for the person who has to fix the file.

Ingest is the judge (it dead-letters a refused row with its first reason); the importer checks each
record against the same schema with the same validator beforehand only to explain, so that one pass
over the file shows everything wrong with a row instead of one error per import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cityos.kernel.events import json_pointer
from cityos.kernel.references import rust_validator


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One thing wrong with a row: where (JSON pointer into the record), and why in ja/en."""

    pointer: str
    ja: str
    en: str

    def text(self) -> str:
        return f"{self.pointer or '/'}: {self.ja} / {self.en}"

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "ja": self.ja, "en": self.en}


def _required(details: Mapping[str, Any]) -> tuple[str, str]:
    return "必須項目が空です", "required item is empty or missing"


def _min_length(details: Mapping[str, Any]) -> tuple[str, str]:
    limit = details.get("limit")
    return f"{limit}文字以上にしてください", f"shorter than {limit} characters"


def _max_length(details: Mapping[str, Any]) -> tuple[str, str]:
    limit = details.get("limit")
    return f"{limit}文字以内にしてください", f"longer than {limit} characters"


def _pattern(details: Mapping[str, Any]) -> tuple[str, str]:
    # The look-ahead that keeps Python and ECMA-262 regexes in step means nothing to a reader.
    pattern = str(details.get("pattern")).replace("$(?!\\n)", "$")
    return f"書式が正しくありません（{pattern}）", f"does not match the format {pattern}"


def _enum(details: Mapping[str, Any]) -> tuple[str, str]:
    options = "、".join(str(o) for o in details.get("options") or [])
    return f"次のいずれかにしてください：{options}", f"must be one of: {options.replace('、', ', ')}"


def _type(details: Mapping[str, Any]) -> tuple[str, str]:
    types = details.get("types") or []
    names = {"integer": "整数", "number": "数値", "string": "文字列", "boolean": "真偽値"}
    ja = "・".join(names.get(str(t), str(t)) for t in types)
    return f"{ja}で書いてください", f"must be of type {', '.join(str(t) for t in types)}"


def _format(details: Mapping[str, Any]) -> tuple[str, str]:
    kind = details.get("format")
    return f"形式（{kind}）が正しくありません", f"is not a valid {kind}"


def _minimum(details: Mapping[str, Any]) -> tuple[str, str]:
    limit = details.get("limit")
    return f"{limit}以上にしてください", f"less than the minimum {limit}"


def _maximum(details: Mapping[str, Any]) -> tuple[str, str]:
    limit = details.get("limit")
    return f"{limit}以下にしてください", f"greater than the maximum {limit}"


def _additional(details: Mapping[str, Any]) -> tuple[str, str]:
    names = ", ".join(str(u) for u in details.get("unexpected") or [])
    return f"定義にない項目です（{names}）", f"items not in the definition ({names})"


_EXPLAIN: dict[str, Callable[[Mapping[str, Any]], tuple[str, str]]] = {
    "required": _required,
    "min_length": _min_length,
    "max_length": _max_length,
    "pattern": _pattern,
    "enum": _enum,
    "type": _type,
    "format": _format,
    "minimum": _minimum,
    "maximum": _maximum,
    "additional_properties": _additional,
}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


class RecordChecker:
    """The dataset schema's verdict on a record, as every problem it finds."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._validator = rust_validator(document)

    def problems(self, record: Mapping[str, Any]) -> list[RowProblem]:
        found: list[RowProblem] = []
        for error in self._validator.iter_errors(record):
            kind = _snake(str(type(error.kind).__name__))
            details: dict[str, Any] = dict(error.kind.as_dict())
            path = [*error.instance_path]
            if kind == "required":
                # Point at the missing item itself: that is the column to fill in.
                path.append(str(details.get("property", "")))
            explain = _EXPLAIN.get(kind)
            ja, en = explain(details) if explain else ("スキーマに合いません", str(error.message))
            found.append(RowProblem(json_pointer(path), ja, en))
        return found
