"""The schemas/ directory: every schema is sound 2020-12, and the loader refuses broken layouts."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from jsonschema import Draft202012Validator

from cityos.kernel.errors import CityOSError, SchemaError
from cityos.kernel.schemas import (
    DatasetMeta,
    SchemaSet,
    default_schema_dir,
    load_schema_dir,
    schema_uri,
)
from cityos.kernel.settings import REPO_ROOT

SCHEMAS_DIR = REPO_ROOT / "schemas"
SCHEMA_FILES = sorted(SCHEMAS_DIR.glob("*/v*.schema.json"))

EXPECTED = {
    # dataset id: (classification, record key, has coordinates)
    "aed": ("public", "NO", True),
    "public-facility": ("public", "NO", True),
    "evacuation-space": ("public", "NO", True),
    "public-toilet": ("public", "ID", True),
    "tourism": ("public", "NO", True),
    "copier-usage": ("internal", "ID", False),
    "rpa-ai-hours": ("internal", "ID", False),
    "e-approval": ("internal", "ID", False),
    "telework": ("internal", "ID", False),
    "dx-kpi": ("public", "ID", False),
    "resident-moves": ("personal", "異動ID", False),
}
# Datasets with more than one version: resident-moves v2 refuses impossible register entries.
LATEST_VERSION = {"resident-moves": 2}


@pytest.fixture(scope="module")
def schema_set() -> SchemaSet:
    return load_schema_dir(SCHEMAS_DIR)


def _load(file: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return document


def _subschemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _subschemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from _subschemas(item)


def _types(subschema: dict[str, Any]) -> set[str]:
    declared = subschema.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def test_every_dataset_is_loaded_with_its_metadata(schema_set: SchemaSet) -> None:
    assert set(schema_set.datasets) == set(EXPECTED)
    for dataset_id, (classification, record_key, has_location) in EXPECTED.items():
        meta = schema_set.datasets[dataset_id]
        assert meta.classification == classification
        assert meta.record_key == record_key
        assert (meta.location is not None) == has_location
        assert meta.license == "CC-BY-4.0"
        assert meta.department in schema_set.departments
        latest = schema_set.latest(dataset_id)
        number = LATEST_VERSION.get(dataset_id, 1)
        assert latest.version == number
        assert (
            latest.uri
            == schema_uri(dataset_id, number)
            == f"https://cityos.example/schemas/{dataset_id}/{number}"
        )
        assert schema_set.versions[latest.uri] is latest


def test_departments_have_their_kafka_principal(schema_set: SchemaSet) -> None:
    for department_id, department in schema_set.departments.items():
        assert department.kafka_principal == f"User:dept-{department_id}"
        assert department.name.ja and department.name.en


def test_schema_files_exist() -> None:
    assert len(SCHEMA_FILES) == sum(LATEST_VERSION.get(dataset_id, 1) for dataset_id in EXPECTED)


@pytest.mark.parametrize("file", SCHEMA_FILES, ids=lambda f: f.parent.name)
def test_schema_is_valid_2020_12_and_compiles_in_rust(file: Path) -> None:
    document = _load(file)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(document)
    jsonschema_rs.validator_for(document, validate_formats=True)


@pytest.mark.parametrize("file", SCHEMA_FILES, ids=lambda f: f.parent.name)
def test_schema_shape_rules(file: Path) -> None:
    document = _load(file)
    meta = DatasetMeta.model_validate(_load(file.parent / "dataset.json"))
    properties: dict[str, dict[str, Any]] = document["properties"]
    assert document["additionalProperties"] is False
    assert meta.record_key in properties
    assert meta.record_key in document["required"]
    assert set(document["required"]) <= set(properties)
    for name, prop in properties.items():
        assert prop.get("title") and prop.get("description"), name
        assert prop.get("x-en"), f"{name}: English name missing"
    for sub in _subschemas(document):
        if "string" in _types(sub):
            assert isinstance(sub.get("maxLength"), int), f"unbounded string: {sub.get('title')}"
        # Time of day is a pattern (hh:mm): format "time" demands seconds and a UTC offset.
        assert sub.get("format") != "time", sub.get("title")
    for alias, target in meta.csv_aliases.items():
        assert target in properties, alias


LOCATED_SCHEMA_FILES = [f for f in SCHEMA_FILES if _load(f.parent / "dataset.json").get("location")]


@pytest.mark.parametrize("file", LOCATED_SCHEMA_FILES, ids=lambda f: f.parent.name)
def test_location_fields_are_bounded_numbers(file: Path) -> None:
    document = _load(file)
    meta = DatasetMeta.model_validate(_load(file.parent / "dataset.json"))
    assert meta.location is not None
    for field, low, high in ((meta.location.latitude, -90, 90), (meta.location.longitude, -180, 180)):
        prop = document["properties"][field]
        assert prop["type"] == "number"
        assert low <= prop["minimum"] < prop["maximum"] <= high


@pytest.mark.parametrize("file", SCHEMA_FILES, ids=lambda f: f.parent.name)
def test_local_government_codes_are_six_digits(file: Path) -> None:
    properties = _load(file)["properties"]
    code_fields = [n for n in properties if n.endswith(("全国地方公共団体コード", "市区町村コード"))]
    assert code_fields
    validator = Draft202012Validator({"type": "object", "properties": properties})
    for name in code_fields:
        assert validator.is_valid({name: "401005"})
        for bad in ("40100", "4010050", "４０１００５", "401005\n", "40100a"):
            assert not validator.is_valid({name: bad}), (name, bad)


CANDIDATES = [
    "",
    "1",
    "401005",
    "401005\n",
    "09:00",
    "09:00\n",
    "24:00",
    "24:01",
    "9:00",
    "2024-04",
    "2024-13",
    "digital-2024-04",
    "digital-2024-04\n",
    "12345678",
    "1234567890123",
    "1.5",
    "-1",
    "40100-81A65DC233512CE5",
    "abc def",
    "abc\n",
    "ＡＢＣ",
]


@pytest.mark.parametrize("file", SCHEMA_FILES, ids=lambda f: f.parent.name)
def test_patterns_mean_the_same_in_python_and_rust(file: Path) -> None:
    # Python's `$` also matches before a final newline; ECMA-262 (jsonschema-rs) does not.
    patterns = {sub["pattern"] for sub in _subschemas(_load(file)) if isinstance(sub.get("pattern"), str)}
    assert patterns
    for pattern in patterns:
        assert pattern.startswith("^") and pattern.endswith("$(?!\\n)"), pattern
        schema = {"type": "string", "pattern": pattern}
        python = Draft202012Validator(schema)
        rust = jsonschema_rs.validator_for(schema)
        for value in CANDIDATES:
            for candidate in (value, value + "\n"):
                assert python.is_valid(candidate) == rust.is_valid(candidate), (pattern, candidate)


def test_hazard_flags_accept_only_1() -> None:
    document = _load(SCHEMAS_DIR / "evacuation-space" / "v1.schema.json")
    flags = [n for n in document["properties"] if n.startswith("災害種別_")] + ["指定避難所との重複"]
    assert len(flags) == 9
    validator = jsonschema_rs.validator_for(document)
    base = {"NO": "1", "名称": "a", "名称_カナ": "ア", "住所": "b", "電話番号": "0"}
    base["市区町村コード"] = "222127"
    assert validator.is_valid(base)
    for flag in flags:
        assert validator.is_valid({**base, flag: "1"})
        for mark in ("○", "〇", "", "0", "有"):
            assert not validator.is_valid({**base, flag: mark}), (flag, mark)


def test_time_of_day_is_hh_mm() -> None:
    prop = _load(SCHEMAS_DIR / "public-toilet" / "v1.schema.json")["properties"]["利用開始時間"]
    validator = Draft202012Validator(prop)
    for ok in ("00:00", "09:30", "23:59", "24:00"):
        assert validator.is_valid(ok), ok
    for bad in ("9:30", "24:30", "09:60", "09:30:00", "0930"):
        assert not validator.is_valid(bad), bad


def test_default_schema_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CITYOS_SCHEMAS_DIR", raising=False)
    assert default_schema_dir() == SCHEMAS_DIR
    monkeypatch.setenv("CITYOS_SCHEMAS_DIR", str(tmp_path))
    assert default_schema_dir() == tmp_path


def test_latest_picks_the_highest_version(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    document = _load(root / "aed" / "v1.schema.json")
    document["$id"] = schema_uri("aed", 2)
    document["properties"]["備考"]["maxLength"] = 4000
    (root / "aed" / "v2.schema.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    schema_set = load_schema_dir(root)
    assert schema_set.latest("aed").version == 2
    assert [v.version for v in schema_set.versions_of("aed")] == [1, 2]
    with pytest.raises(KeyError):
        schema_set.latest("no-such-dataset")


# --- the loader rejects broken layouts, naming the file ------------------------------------------


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, root)
    return root


def _edit_json(file: Path, change: Any) -> None:
    document = _load(file)
    change(document)
    file.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def _set(key: str, value: Any) -> Any:
    return lambda d: d.__setitem__(key, value)


BROKEN: dict[str, tuple[str, Any, str]] = {
    "wrong $id": (
        "aed/v1.schema.json",
        _set("$id", "https://cityos.example/schemas/aed/2"),
        "v1.schema.json",
    ),
    "not 2020-12": (
        "aed/v1.schema.json",
        _set("$schema", "http://json-schema.org/draft-07/schema#"),
        "v1.schema.json",
    ),
    "invalid schema": ("aed/v1.schema.json", _set("type", 5), "v1.schema.json"),
    "key not required": ("aed/v1.schema.json", _set("required", ["名称"]), "v1.schema.json"),
    "remote $ref": (
        "aed/v1.schema.json",
        lambda d: d["properties"]["備考"].__setitem__("$ref", "https://example.org/x.json"),
        "v1.schema.json",
    ),
    "location field missing": (
        "aed/dataset.json",
        _set("location", {"latitude": "緯度", "longitude": "lon"}),
        "v1.schema.json",
    ),
    "unknown department": ("aed/dataset.json", _set("department", "nowhere"), "dataset.json"),
    "extra metadata field": ("aed/dataset.json", _set("owner", "me"), "dataset.json"),
    "bad classification": ("aed/dataset.json", _set("classification", "secret"), "dataset.json"),
    "id differs from folder": ("aed/dataset.json", _set("id", "aed2"), "dataset.json"),
    "alias to nothing": ("aed/dataset.json", _set("csv_aliases", {"x": "y"}), "dataset.json"),
    "bad principal": (
        "departments.json",
        lambda d: d[0].__setitem__("kafka_principal", "User:someone"),
        "departments.json",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_loader_rejects(case: str, tmp_path: Path) -> None:
    relative, change, named = BROKEN[case]
    root = _copy(tmp_path)
    _edit_json(root / relative, change)
    with pytest.raises(SchemaError, match=re.escape(named)):
        load_schema_dir(root)


def test_loader_rejects_duplicate_json_keys(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    file = root / "tourism" / "dataset.json"
    text = file.read_text(encoding="utf-8")
    duplicated = text.replace('"license": "CC-BY-4.0",', '"license": "CC-BY-4.0", "license": "CC0",')
    file.write_text(duplicated, encoding="utf-8")
    with pytest.raises(SchemaError, match="duplicate key 'license'"):
        load_schema_dir(root)


def test_loader_rejects_gaps_and_misnamed_files(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    shutil.copy(root / "aed" / "v1.schema.json", root / "aed" / "v3.schema.json")
    with pytest.raises(SchemaError, match="without gaps"):
        load_schema_dir(root)
    (root / "aed" / "v3.schema.json").rename(root / "aed" / "v2.json")
    with pytest.raises(SchemaError, match=r"v2\.json"):
        load_schema_dir(root)


def test_loader_errors_are_cityos_errors(tmp_path: Path) -> None:
    with pytest.raises(CityOSError, match="not found"):
        load_schema_dir(tmp_path / "missing")
    root = _copy(tmp_path)
    (root / "aed" / "dataset.json").unlink()
    with pytest.raises(SchemaError, match=r"dataset\.json: file not found"):
        load_schema_dir(root)


def test_internal_and_personal_datasets_accept_a_typical_record() -> None:
    copier = jsonschema_rs.validator_for(
        _load(SCHEMAS_DIR / "copier-usage" / "v1.schema.json"), validate_formats=True
    )
    usage = {
        "ID": "digital-2024-04",
        "全国地方公共団体コード": "401005",
        "部局コード": "digital",
        "部局名": "デジタル市役所推進室",
        "年月": "2024-04",
        "枚数_モノクロ": 12034,
        "枚数_カラー": 2210,
        "用紙削減目標枚数": 13000,
    }
    assert copier.is_valid(usage)
    for change in (
        {"年月": "2024-13"},
        {"枚数_カラー": -1},
        {"枚数_モノクロ": 1.5},
        {"ID": "デジタル-2024-04"},
    ):
        assert not copier.is_valid({**usage, **change}), change

    moves_document = _load(SCHEMAS_DIR / "resident-moves" / "v1.schema.json")
    moves = jsonschema_rs.validator_for(moves_document, validate_formats=True)
    move = {
        "異動ID": "MV-2024-000123",
        "全国地方公共団体コード": "401005",
        "住民番号": "0012345678",
        "氏名": "北九 太郎",
        "生年月日": "1980-02-29",
        "性別": "男",
        "住所": "福岡県北九州市小倉北区城内1-1",
        "住所_全国地方公共団体コード": "401064",
        "異動日": "2024-04-01",
        "異動事由": "転入",
        "前住所地": "福岡県福岡市中央区天神1-8-1",
        "世帯人数": 3,
        "要介護度": "要介護2",
    }
    assert moves.is_valid(move)
    for change in ({"異動事由": "転勤"}, {"生年月日": "1981-02-29"}, {"世帯人数": 0}, {"住民番号": "12-34"}):
        assert not moves.is_valid({**move, **change}), change
    # Every property tells the anonymisation gate how to treat it.
    kinds = {p["x-anonymization"] for p in moves_document["properties"].values()}
    assert kinds <= {"direct", "quasi", "sensitive", "none"}
