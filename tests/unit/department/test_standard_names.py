"""The table of the standards' and publishers' column names, checked against the fixtures it was
derived from, and what it does to real and synthetic headers."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from cityos.department.csvimport import iter_csv_records, map_headers, normalize_header
from cityos.department.standard_names import layouts, layouts_for
from cityos.kernel.schemas import default_schema_dir, load_schema_dir
from tests.support.fixtures_path import FIXTURES, OPENDATA_SAMPLES

DEFINITIONS = FIXTURES / "opendata-jp" / "definitions"
CURRENT_TOILET = DEFINITIONS / "municipal-standard-current" / "public-toilet-schema.csv"
TAKAMATSU = OPENDATA_SAMPLES / "takamatsu-372013"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle))


def _items_2019(dataset: str) -> set[str]:
    rows = _csv_rows(DEFINITIONS / "recommended-datasets-2019" / "column-definitions.csv")
    return {row["item"] for row in rows if row["dataset"] == dataset}


def _layout(layout_id: str) -> dict[str, str]:
    (found,) = [layout for layout in layouts() if layout.id == layout_id]
    return dict(found.names)


def test_official_english_names_are_the_definitions_own() -> None:
    official = {row["english_name"]: row["name"] for row in _csv_rows(CURRENT_TOILET)}
    assert _layout("municipal-standard-2023") == official


def test_2019_names_map_to_current_items() -> None:
    current = {row["name"] for row in _csv_rows(CURRENT_TOILET)}
    crosswalk = _layout("recommended-2019")
    assert set(crosswalk) <= _items_2019("公衆トイレ一覧")
    assert set(crosswalk.values()) <= current
    # Every other 2019 item kept its name, except the publisher's names (see the table's comment).
    renamed_or_kept = (_items_2019("公衆トイレ一覧") - set(crosswalk)) - {"location"}
    assert renamed_or_kept - current == {"都道府県名", "市区町村名"}


@pytest.mark.parametrize(
    ("layout_id", "file", "standard_items"),
    [
        ("takamatsu-372013", "public_toilet.csv", "current"),
        ("takamatsu-372013-hospital", "hospital.csv", "医療機関一覧"),
        ("takamatsu-372013-elderly-welfare", "elderly_welfare_facility.csv", "介護サービス事業所一覧"),
    ],
)
def test_takamatsu_names_are_its_headers(layout_id: str, file: str, standard_items: str) -> None:
    names = _layout(layout_id)
    header = _header(TAKAMATSU / file)
    assert set(names) <= set(header)  # byte for byte, quirks included
    items = (
        {row["name"] for row in _csv_rows(CURRENT_TOILET)}
        if standard_items == "current"
        else _items_2019(standard_items)
    )
    assert set(names.values()) <= items


def test_takamatsu_quirks_are_kept() -> None:
    assert _layout("takamatsu-372013")["iamgeLicense"] == "画像_ライセンス"
    assert _layout("takamatsu-372013-hospital")["telephone\u3000number"] == "電話番号"
    assert set(_header(TAKAMATSU / "public_toilet.csv")) - set(_layout("takamatsu-372013")) == {"#property"}


def test_every_layout_names_its_standard() -> None:
    for layout in layouts():
        assert layout.standard and layout.dataset and layout.names
    table = json.loads((Path(__file__).parents[3] / "cityos/department/standard_names.json").read_text())
    assert all(entry.get("$comment") for entry in table["layouts"])


def test_layouts_follow_the_dataset_standard() -> None:
    ids = {layout.id for layout in layouts_for("自治体標準オープンデータセット 公衆トイレ一覧")}
    assert ids == {"municipal-standard-2023", "recommended-2019", "takamatsu-372013"}
    assert layouts_for(None) == () and layouts_for("推奨データセット 2019 AED設置箇所一覧") == ()


def _toilet() -> tuple[Any, dict[str, Any]]:
    schemas = load_schema_dir(default_schema_dir())
    return schemas.datasets["public-toilet"], schemas.latest("public-toilet").document


def test_a_header_in_the_official_english_names_maps_as_published() -> None:
    meta, document = _toilet()
    rows = _csv_rows(CURRENT_TOILET)
    mapping = map_headers([row["english_name"] for row in rows], meta, document)
    assert mapping.unknown == () and mapping.missing_required == ()
    # Each column lands on the item the definition gives it, its slips included.
    assert list(mapping.columns) == [row["name"] for row in rows]


def test_a_header_in_the_corrected_english_names_maps_by_x_en() -> None:
    meta, document = _toilet()
    x_en = {spec["x-en"]: prop for prop, spec in document["properties"].items()}
    mapping = map_headers(list(x_en), meta, document)
    assert mapping.unknown == ()
    assert dict(zip(mapping.headers, mapping.columns, strict=True)) == x_en


def test_english_names_of_a_2019_dataset_map_by_x_en() -> None:
    schemas = load_schema_dir(default_schema_dir())
    document = schemas.latest("aed").document
    mapping = map_headers(
        ["recordNumber", "name", "nameKana", "address", "installationLocation"],
        schemas.datasets["aed"],
        document,
    )
    assert mapping.columns == ("NO", "名称", "名称_カナ", "住所", "設置位置")


def test_a_file_in_english_names_loads(tmp_path: Path) -> None:
    meta, document = _toilet()
    path = tmp_path / "toilets.csv"
    path.write_text(
        "identifier,name,fullAddress,installationLocation,localGovernmentCode\r\n"
        "T-1,片原町公衆便所,香川県高松市片原町9番地9,商店街南,37201\r\n",
        encoding="utf-8",
    )
    (row,) = iter_csv_records(path, meta, document)
    assert row.record == {
        "ID": "T-1",
        "名称": "片原町公衆便所",
        "所在地_連結表記": "香川県高松市片原町9番地9",
        "設置位置": "商店街南",
        "全国地方公共団体コード": "372013",
    }
    assert normalize_header("telephone\u3000number") == "telephone number"
