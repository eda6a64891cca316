"""5-star open data rating and metadata-quality score of a dataset, each with its reasons. Pure.

Stars follow Tim Berners-Lee's scheme and are cumulative: a star counts only if every lower one
does. The quality score is the share of DCAT-AP fields a harvester looks for that the dataset's
metadata fills, so a department sees exactly what to add.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Licences that meet the Open Definition (SPDX ids), plus Japan's government terms compatible with CC BY.
OPEN_LICENSES = frozenset(
    {"CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "ODbL-1.0", "PDDL-1.0", "ODC-By-1.0", "PDL-1.0", "GJ-TOU-2.0"}
)
OPEN_FORMATS = ("CSV", "JSON", "GeoJSON", "NDJSON", "Parquet")

# Keyword -> EU data theme (the DCAT-AP controlled vocabulary), for a dcat:theme harvesters can file.
THEME_BY_KEYWORD = {
    "医療": "HEAL", "救命": "HEAL", "AED": "HEAL", "健康": "HEAL", "介護": "HEAL",
    "防災": "JUST", "避難場所": "JUST", "災害": "JUST", "指定緊急避難場所": "JUST", "避難所": "JUST",
    "観光": "EDUC", "文化": "EDUC", "文化財": "EDUC", "スポーツ": "EDUC",
    "公共施設": "REGI", "トイレ": "REGI", "公衆トイレ": "REGI", "施設": "REGI",
    "交通": "TRAN", "環境": "ENVI", "予算": "GOVE", "行政": "GOVE", "人口": "SOCI",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Star:
    level: int
    criterion: str
    met: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Rating:
    stars: int
    criteria: tuple[Star, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "stars": self.stars,
            "criteria": [
                {"level": s.level, "criterion": s.criterion, "met": s.met, "reason": s.reason}
                for s in self.criteria
            ],
        }


def themes(keywords: list[str]) -> list[str]:
    return sorted({THEME_BY_KEYWORD[k] for k in keywords if k in THEME_BY_KEYWORD})


def five_star(meta: Mapping[str, Any], *, record_key: str, has_schema: bool) -> Rating:
    """The rating of a dataset served by this API (formats: CSV, JSON, GeoJSON when located, NDJSON)."""
    license_id = str(meta.get("license") or "")
    links = meta.get("links")
    checks = [
        (
            "open licence",
            license_id in OPEN_LICENSES,
            f"published on the web under {license_id}, an open licence"
            if license_id in OPEN_LICENSES
            else f"licence {license_id or '(none)'} is not a recognised open licence",
        ),
        (
            "machine-readable",
            True,
            "records are served as structured data (JSON, CSV), not as scans or documents",
        ),
        (
            "open format",
            True,
            "every format offered (" + ", ".join(OPEN_FORMATS) + ") is open and non-proprietary",
        ),
        (
            "URIs and RDF",
            bool(record_key) and has_schema,
            f"each record has its own URI (keyed by {record_key}); metadata is published as RDF (DCAT-AP)"
            if record_key and has_schema
            else "records lack a stable key or a published schema, so they cannot have URIs",
        ),
        (
            "linked data",
            isinstance(links, list) and bool(links),
            "links to related data are declared"
            if isinstance(links, list) and links
            else "no links to other people's data are declared yet",
        ),
    ]
    stars: list[Star] = []
    earned = 0
    for level, (criterion, met, reason) in enumerate(checks, start=1):
        if met and earned == level - 1:
            earned = level
        stars.append(Star(level, criterion, met, reason))
    return Rating(earned, tuple(stars))


def listed_stars(meta: Mapping[str, Any], *, record_key: str) -> int:
    """The stars a catalog listing shows: every listed dataset was registered with its schema."""
    return five_star(meta, record_key=record_key, has_schema=True).stars


@dataclass(frozen=True, slots=True)
class QualityScore:
    score: int  # 0..100
    present: tuple[str, ...]
    missing: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "present": list(self.present), "missing": list(self.missing)}


def _text(meta: Mapping[str, Any], field: str, language: str) -> bool:
    value = meta.get(field)
    return isinstance(value, Mapping) and bool(str(value.get(language, "")).strip())


def metadata_quality(
    meta: Mapping[str, Any],
    *,
    has_publisher: bool,
    has_contact: bool,
    has_schema: bool,
    has_spatial: bool,
    has_modified: bool,
) -> QualityScore:
    """Completeness of the DCAT-AP fields, each weighing the same."""
    fields = {
        "title (ja)": _text(meta, "title", "ja"),
        "title (en)": _text(meta, "title", "en"),
        "description (ja)": _text(meta, "description", "ja"),
        "description (en)": _text(meta, "description", "en"),
        "publisher": has_publisher,
        "contact point": has_contact,
        "licence": bool(meta.get("license")),
        "keywords": bool(meta.get("keywords")),
        "themes": bool(themes(list(meta.get("keywords") or []))),
        "update frequency": bool(meta.get("update_frequency")),
        "conforms to (schema)": has_schema,
        "spatial coverage": has_spatial,
        "temporal coverage": isinstance(meta.get("temporal"), Mapping),
        "modified date": has_modified,
        "distributions": True,
    }
    present = tuple(name for name, ok in fields.items() if ok)
    missing = tuple(name for name, ok in fields.items() if not ok)
    return QualityScore(round(100 * len(present) / len(fields)), present, missing)
