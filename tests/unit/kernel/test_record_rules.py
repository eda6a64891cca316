"""Record rules across fields: what each rule refuses, with which field and sentences, and how a
dataset's declaration is checked when schemas/ loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cityos.kernel.errors import SchemaError
from cityos.kernel.record_rules import RecordRule, check_rule, first_violation, violations
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT

BORN_BEFORE_MOVE = RecordRule(rule="not_after", field="生年月日", other="異動日")
NO_PREVIOUS_FOR_BIRTH = RecordRule(rule="absent", field="前住所地", when={"異動事由": ["出生"]})
PREVIOUS_FOR_MOVE_IN = RecordRule(rule="present", field="前住所地", when={"異動事由": ["転入", "転居"]})
BIRTH_ON_MOVE_DAY = RecordRule(rule="equal", field="生年月日", other="異動日", when={"異動事由": ["出生"]})


def test_born_after_the_move_is_refused_with_both_values_in_both_languages() -> None:
    found = check_rule(BORN_BEFORE_MOVE, {"生年月日": "1991-05-20", "異動日": "1971-07-07"})
    assert found is not None
    assert found.field == "生年月日"
    assert found.ja == "生年月日（1991-05-20）が異動日（1971-07-07）より後です"
    assert found.en == "生年月日 (1991-05-20) is after 異動日 (1971-07-07)"
    assert found.detail == f"{found.ja} / {found.en}"


@pytest.mark.parametrize(
    "record",
    [
        {"生年月日": "1971-07-07", "異動日": "1971-07-07"},  # the same day: a birth
        {"生年月日": "1970-01-01", "異動日": "2025-04-01"},
        {"異動日": "2025-04-01"},  # requiredness is the schema's business
        {"生年月日": "not a date", "異動日": "2025-04-01"},  # format too
        {"生年月日": "2025-04-01T00:00:00+09:00", "異動日": "2025-03-01T00:00:00"},  # one zone only
        {"生年月日": 5, "異動日": "2025-04-01"},
    ],
)
def test_not_after_holds_or_cannot_be_judged(record: dict[str, Any]) -> None:
    assert check_rule(BORN_BEFORE_MOVE, record) is None


def test_not_after_compares_numbers_and_date_times() -> None:
    rule = RecordRule(rule="not_after", field="開始", other="終了")
    assert check_rule(rule, {"開始": 3, "終了": 2}) is not None
    assert check_rule(rule, {"開始": 2.5, "終了": 3}) is None
    late = {"開始": "2025-04-01T10:00:00+09:00", "終了": "2025-04-01T09:00:00+09:00"}
    assert check_rule(rule, late) is not None


def test_absent_applies_only_when_the_condition_holds() -> None:
    birth = {"異動事由": "出生", "前住所地": "福岡県北九州市"}
    found = check_rule(NO_PREVIOUS_FOR_BIRTH, birth)
    assert found is not None
    assert (found.rule, found.field) == ("absent", "前住所地")
    assert found.ja == "異動事由が出生の場合、前住所地は記載できません"
    assert found.en == "前住所地 must be absent when 異動事由 is 出生"
    assert check_rule(NO_PREVIOUS_FOR_BIRTH, {**birth, "異動事由": "転入"}) is None
    assert check_rule(NO_PREVIOUS_FOR_BIRTH, {"異動事由": "出生"}) is None


def test_present_names_every_value_of_the_condition() -> None:
    found = check_rule(PREVIOUS_FOR_MOVE_IN, {"異動事由": "転居"})
    assert found is not None
    assert found.ja == "異動事由が転入・転居の場合、前住所地が必要です"
    assert found.en == "前住所地 is required when 異動事由 is 転入 or 転居"
    assert check_rule(PREVIOUS_FOR_MOVE_IN, {"異動事由": "転居", "前住所地": "国外"}) is None
    assert check_rule(PREVIOUS_FOR_MOVE_IN, {"異動事由": "死亡"}) is None


def test_equal_refuses_a_birth_registered_on_another_day() -> None:
    found = check_rule(
        BIRTH_ON_MOVE_DAY, {"異動事由": "出生", "生年月日": "2025-04-01", "異動日": "2025-04-03"}
    )
    assert found is not None
    assert found.en == "生年月日 (2025-04-01) is not equal to 異動日 (2025-04-03) when 異動事由 is 出生"
    assert (
        check_rule(BIRTH_ON_MOVE_DAY, {"異動事由": "出生", "生年月日": "2025-04-01", "異動日": "2025-04-01"})
        is None
    )


def test_values_with_braces_are_shown_as_written() -> None:
    found = check_rule(RecordRule(rule="equal", field="a", other="b"), {"a": "{x}", "b": "{}"})
    assert found is not None
    assert found.en == "a ({x}) is not equal to b ({})"


def test_every_violation_in_declaration_order_and_the_first_for_a_dead_letter() -> None:
    rules = [BORN_BEFORE_MOVE, NO_PREVIOUS_FOR_BIRTH, BIRTH_ON_MOVE_DAY]
    record = {"異動事由": "出生", "生年月日": "2025-05-01", "異動日": "2025-04-01", "前住所地": "x"}
    assert [v.rule for v in violations(rules, record)] == ["not_after", "absent", "equal"]
    first = first_violation(rules, record)
    assert first is not None and first.rule == "not_after"
    assert first_violation(rules, {"異動事由": "転出"}) is None
    assert first_violation([], record) is None


@pytest.mark.parametrize(
    "declared",
    [
        {"rule": "not_after", "field": "a"},  # a comparison needs the other field
        {"rule": "absent", "field": "a", "other": "b"},
        {"rule": "before", "field": "a", "other": "b"},
        {"rule": "absent", "field": ""},
        {"rule": "absent", "field": "a", "unless": {}},
    ],
)
def test_malformed_rules_are_refused(declared: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RecordRule.model_validate(declared)


def test_rules_read_every_field_they_name() -> None:
    assert BIRTH_ON_MOVE_DAY.fields == ["生年月日", "異動日", "異動事由"]


def test_resident_moves_declares_its_rules() -> None:
    meta = load_schema_dir(REPO_ROOT / "schemas").datasets["resident-moves"]
    assert BORN_BEFORE_MOVE in meta.record_rules
    assert NO_PREVIOUS_FOR_BIRTH in meta.record_rules


def test_a_rule_naming_an_unknown_property_stops_loading(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", copy)
    meta_file = copy / "resident-moves" / "dataset.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta["record_rules"] = [{"rule": "not_after", "field": "生年月日", "other": "転居日"}]
    meta_file.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(SchemaError, match=r"record_rules\[0\] names unknown properties \['転居日'\]"):
        load_schema_dir(copy)
