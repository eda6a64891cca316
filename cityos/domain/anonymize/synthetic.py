"""Seeded synthetic resident move records for Kitakyushu (tests, demo, benchmarks; never real people).

Vectorised with numpy so a million records take seconds. The skew is deliberate, because it is what
makes anonymisation hard: 八幡西区 and 小倉南区 dominate, a few 町丁目 hold most moves, young adults
move most, deaths are old (a few past 100), most people need no care (非該当 ≈ 93%), large
households are rare, and moves peak in March and April. Records come out in register order
(by 異動日, then 異動ID), which is what a release must not reveal.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from cityos.domain.anonymize.hierarchy import Array
from cityos.domain.anonymize.places import ABROAD, HOME_PREFECTURE, PREFECTURES, WARDS, town_blocks

CITY_CODE = "401005"
REASONS = ("転入", "転出", "転居", "出生", "死亡")
REASON_SHARES = (0.25, 0.27, 0.405, 0.032, 0.043)
CARE_LEVELS = ("要支援1", "要支援2", "要介護1", "要介護2", "要介護3", "要介護4", "要介護5")
CARE_SHARES = (0.15, 0.14, 0.20, 0.17, 0.13, 0.12, 0.09)
BENIGN_CARE = "非該当"
FISCAL_YEAR_START = date(2025, 4, 1)
DAYS_IN_YEAR = 365

# Where people moving in come from: mostly Fukuoka and neighbours, some from the big cities, a few abroad.
_ORIGIN_WEIGHTS = {HOME_PREFECTURE: 35.0, "山口県": 8.0, "東京都": 8.0, "大阪府": 5.0, "神奈川県": 4.0,
                   "熊本県": 4.0, "大分県": 4.0, "長崎県": 3.0, "佐賀県": 3.0, "広島県": 3.0, "宮崎県": 2.0,
                   "鹿児島県": 2.0, "愛知県": 2.0, "兵庫県": 1.5, "千葉県": 1.5, "埼玉県": 1.5, "沖縄県": 1.0,
                   ABROAD: 4.0}  # fmt: skip
_OTHER_CITIES = ("中央区", "市役所前", "駅前")
_SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田",
             "山田", "松本", "井上", "木村", "林", "清水", "山口", "森", "池田", "橋本", "石川", "前田")  # fmt: skip
_GIVEN = ("翔太", "結衣", "大輔", "美咲", "健一", "陽菜", "誠", "さくら", "拓也", "葵", "直樹", "花子",
          "優斗", "真由美", "和夫", "幸子", "悠真", "凛", "浩", "恵子")  # fmt: skip


def _choice(rng: np.random.Generator, n: int, weights: Array | list[float]) -> Array:
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _ages(rng: np.random.Generator, reasons: Array) -> Array:
    n = len(reasons)
    # Movers: children, a young-adult peak, working age, a thin tail of the very old.
    band = _choice(rng, n, [0.15, 0.05, 0.40, 0.30, 0.09, 0.01])
    low = np.array([0, 15, 20, 35, 65, 90])[band]
    high = np.array([15, 20, 35, 65, 90, 104])[band]
    ages = rng.integers(low, high)
    deaths = reasons == REASONS.index("死亡")
    ages[deaths] = np.clip(np.rint(rng.normal(84, 9, deaths.sum())), 30, 107).astype(ages.dtype)
    ages[reasons == REASONS.index("出生")] = 0
    return ages


def _care(rng: np.random.Generator, ages: Array) -> Array:
    need = np.select(
        [ages < 40, ages < 65, ages < 75, ages < 85, ages < 90], [0.004, 0.03, 0.12, 0.4, 0.6], 0.8
    )
    cared = rng.random(len(ages)) < need
    levels = np.array((BENIGN_CARE, *CARE_LEVELS), dtype=object)
    index = np.where(cared, 1 + _choice(rng, len(ages), list(CARE_SHARES)), 0)
    chosen: Array = levels[index]
    return chosen


def _move_days(rng: np.random.Generator, n: int) -> Array:
    days = pd.date_range(FISCAL_YEAR_START, periods=DAYS_IN_YEAR, freq="D")
    weight = np.where(days.month == 3, 3.0, np.where(days.month == 4, 2.5, 1.0))
    return days.values[_choice(rng, n, weight)]


def _distinct_integers(rng: np.random.Generator, count: int, bound: int) -> Array:
    # Draw a few extra, drop repeats, shuffle (np.unique sorts): distinct 住民番号 in random order.
    drawn = np.unique(rng.integers(0, bound, count + count // 10 + 10))
    if len(drawn) < count:  # pragma: no cover - vanishingly unlikely with bound >> count
        raise ValueError("could not draw enough distinct numbers")
    return rng.permutation(drawn)[:count]


def synthetic_moves(count: int, *, seed: int) -> pd.DataFrame:
    """``count`` move records as schema columns (strings, 世帯人数 int, missing = None)."""
    rng = np.random.default_rng(seed)
    wards = np.array([w.name for w in WARDS], dtype=object)
    ward_index = _choice(rng, count, [w.population for w in WARDS])
    blocks = np.empty(count, dtype=object)
    for i, ward in enumerate(WARDS):
        names = np.array(town_blocks(ward), dtype=object)
        # Zipf-like popularity of 町丁目 within the ward, shuffled so it is not alphabetical.
        popularity = 1.0 / np.arange(1, len(names) + 1) ** 0.9
        rng.shuffle(popularity)
        mask = ward_index == i
        blocks[mask] = names[_choice(rng, int(mask.sum()), popularity)]
    banchi = np.char.add(
        np.char.add(rng.integers(1, 40, count).astype(str), "-"), rng.integers(1, 25, count).astype(str)
    ).astype(object)
    ward_names = wards[ward_index]
    reasons = _choice(rng, count, list(REASON_SHARES))
    ages = _ages(rng, reasons)
    moved = _move_days(rng, count)
    birth = moved - ages.astype("timedelta64[Y]").astype("timedelta64[D]")  # approximate year shift
    birth = birth - rng.integers(0, 365, count).astype("timedelta64[D]")
    born = reasons == REASONS.index("出生")
    birth[born] = moved[born]
    household = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9])[
        _choice(rng, count, [35, 28, 17, 13, 5, 1.2, 0.5, 0.2, 0.1])
    ]
    origin_names = np.array(list(_ORIGIN_WEIGHTS), dtype=object)
    origin = origin_names[_choice(rng, count, list(_ORIGIN_WEIGHTS.values()))]
    previous_pref = np.full(count, None, dtype=object)
    moved_in = reasons == REASONS.index("転入")
    previous_pref[moved_in] = origin[moved_in]
    within = reasons == REASONS.index("転居")
    previous_pref[within] = HOME_PREFECTURE
    previous = np.full(count, None, dtype=object)
    city = np.array(_OTHER_CITIES, dtype=object)[rng.integers(0, len(_OTHER_CITIES), count)]
    previous[moved_in] = np.char.add(origin[moved_in].astype(str), city[moved_in].astype(str)).astype(object)
    previous[moved_in & (origin == ABROAD)] = ABROAD
    prior_ward = wards[_choice(rng, count, [w.population for w in WARDS])]
    previous[within] = (HOME_PREFECTURE + "北九州市") + prior_ward[within] + "一丁目1-1"
    numbers = 900_000_000_000 + _distinct_integers(rng, count, 100_000_000_000)
    names = np.char.add(
        np.array(_SURNAMES)[rng.integers(0, len(_SURNAMES), count)],
        np.char.add(" ", np.array(_GIVEN)[rng.integers(0, len(_GIVEN), count)]),
    ).astype(object)
    ward_codes = np.array([w.code for w in WARDS], dtype=object)[ward_index]
    frame = pd.DataFrame(
        {
            "全国地方公共団体コード": CITY_CODE,
            "住民番号": numbers.astype(str),
            "氏名": names,
            "生年月日": pd.DatetimeIndex(birth).strftime("%Y-%m-%d"),
            "性別": np.array(["男", "女"], dtype=object)[rng.integers(0, 2, count)],
            "住所": HOME_PREFECTURE + "北九州市" + ward_names + blocks + banchi,
            "住所_区": ward_names,
            "住所_町丁目": blocks,
            "住所_番地": banchi,
            "住所_全国地方公共団体コード": ward_codes,
            "異動日": pd.DatetimeIndex(moved).strftime("%Y-%m-%d"),
            "異動事由": np.array(REASONS, dtype=object)[reasons],
            "前住所地": previous,
            "前住所地_都道府県": previous_pref,
            "世帯人数": household,
            "要介護度": _care(rng, ages),
        }
    )
    frame = frame.sort_values(["異動日", "住民番号"], kind="stable").reset_index(drop=True)
    frame.insert(0, "異動ID", [f"MV-{i:07d}" for i in range(1, count + 1)])
    return frame


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Schema-shaped dicts: missing optional fields left out, integers as Python ints."""
    records: list[dict[str, Any]] = []
    for row in frame.to_dict(orient="records"):
        records.append(
            {str(name): value for name, value in row.items() if value is not None and value == value}
        )
    for record in records:
        record["世帯人数"] = int(record["世帯人数"])
    return records


assert all(p in PREFECTURES for p in _ORIGIN_WEIGHTS if p != ABROAD)
