"""Demo monthly series for the datasets that feed the DX plan's KPIs (never real figures).

One record per department per month from FY2021 (April 2021, the plan's baseline year) to the current
month, for every department of the city. Each department has its own size and pace, drawn from the
seed: most move towards the plan's targets (half the paper of FY2021, 100,000 hours saved by AI and
RPA in FY2025 of which 30,000 by the processing centre, rising e-approval and telework rates), a few
lag behind, so the KPI pages show departments on and off track. A month's figures depend on the seed,
the department and the month only: a longer series (a later month) keeps every earlier record as it was.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from cityos.domain.kpi.definitions import load_kpis, today_in_japan
from cityos.domain.kpi.progress import compute_progress
from cityos.domain.kpi.publication import KITAKYUSHU_CODE, kpi_records
from cityos.kernel.settings import get_settings

FIRST_MONTH = (2021, 4)  # April of FY2021, the DX plan's baseline year

# The city's departments as schemas/departments.json names them (tests/unit/department checks they agree):
# the demo needs them without reading the schema folder.
DEPARTMENTS: tuple[tuple[str, str], ...] = (
    ("digital", "デジタル市役所推進室"),
    ("general-affairs", "総務局"),
    ("planning", "企画調整局"),
    ("citizens", "市民文化スポーツ局"),
    ("health-welfare", "保健福祉局"),
    ("city-brand", "都市ブランド創造局"),
    ("construction", "建設局"),
    ("crisis-management", "危機管理室"),
    ("fire", "消防局"),
)


def months_through(today: date) -> int:
    """Months from April 2021 through ``today``'s month (both included); 0 before it."""
    return max(0, (today.year - FIRST_MONTH[0]) * 12 + today.month - FIRST_MONTH[1] + 1)


def series_length(today: date) -> int:
    """Records of one KPI dataset's demo series through ``today``'s month."""
    return months_through(today) * len(DEPARTMENTS)


@dataclass(frozen=True, slots=True)
class _Profile:
    """A department's demo character for one dataset: its size and how far along the plan it moves."""

    size: float  # a typical month's volume (pages, hours share, decisions, staff)
    pace: float  # 1.0: on the plan's line; below: behind


BEHIND_PER_DATASET = 3  # departments off the plan's pace in each dataset


def _behind(seed: int, dataset_id: str) -> set[str]:
    rng = random.Random(f"{seed}:{dataset_id}:behind")
    return set(rng.sample([department for department, _ in DEPARTMENTS], BEHIND_PER_DATASET))


def _profile(seed: int, dataset_id: str, department: str) -> _Profile:
    rng = random.Random(f"{seed}:{dataset_id}:{department}:profile")
    behind = department in _behind(seed, dataset_id)
    return _Profile(
        size=rng.uniform(0.4, 1.6), pace=rng.uniform(0.45, 0.7) if behind else rng.uniform(0.95, 1.2)
    )


def _years(month_index: int) -> float:
    """Years since April 2021 at the middle of the month: 0.04 in April 2021, 4.0 around April 2025."""
    return (month_index + 0.5) / 12


def _copier(rng: random.Random, profile: _Profile, month_index: int, month: int) -> dict[str, Any]:
    base = 55_000 * profile.size
    # The plan halves paper by FY2025 (about 4.5 years in); a department behind cuts less.
    cut = min(0.5 * profile.pace * _years(month_index) / 4.5, 0.6)
    season = 1.15 if month in (3, 4) else 0.9 if month == 8 else 1.0  # year-end and start are busy
    pages = base * (1 - cut) * season * rng.uniform(0.93, 1.07)
    year_index = month_index // 12
    return {
        "枚数_モノクロ": round(pages * 0.84),
        "枚数_カラー": round(pages * 0.16),
        "用紙削減目標枚数": round(base * (1 - 0.5 * min(year_index / 4, 1))),
    }


def _rpa(rng: random.Random, profile: _Profile, month_index: int, month: int) -> dict[str, Any]:
    years = _years(month_index)
    # City-wide a year: departments' own from about 12,000 towards 70,000, the centre from about 2,000
    # towards 30,000 by FY2025; nine departments share it by size.
    own = (12_000 + 58_000 * min(profile.pace * years / 4.5, 1.15)) / 12 / len(DEPARTMENTS)
    centre = (2_000 + 28_000 * min(profile.pace * years / 4.5, 1.15)) / 12 / len(DEPARTMENTS)
    return {
        "削減時間_部局": round(own * profile.size * rng.uniform(0.85, 1.15), 1),
        "削減時間_処理センター": round(centre * profile.size * rng.uniform(0.85, 1.15), 1),
        "自動化業務数": rng.randint(2, 10) + round(years * 6 * profile.pace),
    }


def _e_approval(rng: random.Random, profile: _Profile, month_index: int, month: int) -> dict[str, Any]:
    decisions = round(1_200 * profile.size * rng.uniform(0.9, 1.1))
    rate = min(0.25 + 0.65 * profile.pace * _years(month_index) / 4.5, 0.97) * rng.uniform(0.97, 1.03)
    return {"決裁件数": decisions, "電子決裁件数": min(decisions, round(decisions * rate))}


def _telework(rng: random.Random, profile: _Profile, month_index: int, month: int) -> dict[str, Any]:
    eligible = round(600 * profile.size * rng.uniform(0.97, 1.03))
    rate = min(0.08 + 0.25 * profile.pace * _years(month_index) / 4.5, 0.45) * rng.uniform(0.9, 1.1)
    teleworked = min(eligible, round(eligible * rate))
    return {
        "対象職員数": eligible,
        "テレワーク実施職員数": teleworked,
        "テレワーク実施日数": round(teleworked * rng.uniform(2.0, 6.0)),
    }


_Figures = Callable[[random.Random, _Profile, int, int], dict[str, Any]]
_FIGURES: dict[str, _Figures] = {
    "copier-usage": _copier,
    "rpa-ai-hours": _rpa,
    "e-approval": _e_approval,
    "telework": _telework,
}
KPI_SOURCE_DATASETS = frozenset(_FIGURES)


def kpi_series(dataset_id: str, count: int, seed: int) -> list[dict[str, Any]]:
    """The first ``count`` records of the dataset's series: month by month from April 2021, every
    department each month."""
    figures = _FIGURES[dataset_id]
    records = []
    for index in range(count):
        month_index = index // len(DEPARTMENTS)
        department, name = DEPARTMENTS[index % len(DEPARTMENTS)]
        year = FIRST_MONTH[0] + (FIRST_MONTH[1] - 1 + month_index) // 12
        month = (FIRST_MONTH[1] - 1 + month_index) % 12 + 1
        year_month = f"{year}-{month:02d}"
        profile = _profile(seed, dataset_id, department)
        rng = random.Random(f"{seed}:{dataset_id}:{department}:{year_month}")
        records.append(
            {
                "ID": f"{department}-{year_month}",
                "全国地方公共団体コード": KITAKYUSHU_CODE,
                "部局コード": department,
                "部局名": name,
                "年月": year_month,
                **figures(rng, profile, month_index, month),
            }
        )
    return records


def kpi_publication(count: int, seed: int) -> list[dict[str, Any]]:
    """The first ``count`` records of ``dx-kpi`` as ``cityos kpi publish`` computes them from the demo's
    series through today (the city's first, then each department's when more are asked for): for
    pages and fixtures that want the public KPI dataset filled. ``cityos demo`` itself never sends
    them; the KPI series are published from the catalog's data."""
    today = today_in_japan()
    kpis = [kpi for kpi in load_kpis(get_settings().kpi_dir) if kpi.source_dataset in _FIGURES]
    sources = {kpi.source_dataset: kpi_series(kpi.source_dataset, series_length(today), seed) for kpi in kpis}
    records: list[dict[str, Any]] = []
    for scope in (None, *(department for department, _ in DEPARTMENTS)):
        for kpi in kpis:
            if len(records) >= count:
                return records
            progress = compute_progress(kpi, sources[kpi.source_dataset], today=today, department=scope)
            records.extend(kpi_records(progress)[: count - len(records)])
    return records
