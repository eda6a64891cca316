"""A resident move that the resident-moves schema and its record rules accept: tests change one field
of it to show what ingest refuses."""

from __future__ import annotations

from typing import Any

VALID_MOVE: dict[str, Any] = {
    "異動ID": "M0001",
    "全国地方公共団体コード": "401005",
    "住民番号": "900000000001",
    "氏名": "北九 太郎",
    "生年月日": "1991-05-20",
    "性別": "男",
    "住所": "福岡県北九州市小倉北区魚町三丁目5-12",
    "住所_区": "小倉北区",
    "住所_町丁目": "魚町三丁目",
    "住所_番地": "5-12",
    "住所_全国地方公共団体コード": "401064",
    "異動日": "2025-04-07",
    "異動事由": "転入",
    "前住所地": "山口県下関市",
    "前住所地_都道府県": "山口県",
    "世帯人数": 2,
    "要介護度": "非該当",
}
