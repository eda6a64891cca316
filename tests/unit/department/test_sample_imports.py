"""Every sample CSV of the shared fixtures through the import and ingest's own verdict, with exact
counts of accepted and refused rows and every reason.

The rows go through ``csv_events`` (what ``cityos import-csv`` sends) and then through the checks
ingest applies to each event (strict CloudEvent decoding, then the dataset schema), so a count here is
the count a real import reports. Files of a standard dataset the platform has no schema for are
imported into the nearest dataset a clerk would pick, and the refusals name what is missing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import pytest

from cityos.department.importer import ImportSummary, csv_events
from cityos.department.outbox import STRUCTURED_HEADERS
from cityos.kernel.events import Rejected, decode_event
from cityos.kernel.schemas import SchemaSet, default_schema_dir, load_schema_dir
from cityos.kernel.validation import ValidatorRegistry
from tests.support.fixtures_path import OPENDATA_SAMPLES

NOW = datetime(2026, 4, 1, tzinfo=UTC)
REQUIRED = "required item is empty or missing"
FLAG = "must be one of: 1"


@dataclass(frozen=True)
class Expected:
    dataset: str
    accepted: int
    # (reason, JSON pointer) of ingest's verdict on each refused row → rows.
    refused: dict[tuple[str, str], int]
    # (pointer, English text) of every problem the import explains → occurrences.
    problems: dict[tuple[str, str], int]


EXPECTED: dict[str, Expected] = {
    # 36 rows carry the five-digit code 37201, completed to 372013; 133 leave 設置位置 (◎) empty.
    "takamatsu-372013/public_toilet.csv": Expected(
        "public-toilet",
        36,
        {("schema_violation", "/data"): 133},
        {("/設置位置", REQUIRED): 133},
    ),
    # Not public toilets: no id column, no kana name; imported as public facilities they lack both.
    "takamatsu-372013/hospital.csv": Expected(
        "public-facility",
        0,
        {("missing_record_key", "/data/NO"): 628},
        {("/NO", REQUIRED): 628, ("/名称_カナ", REQUIRED): 628},
    ),
    "takamatsu-372013/elderly_welfare_facility.csv": Expected(
        "public-facility",
        0,
        {("missing_record_key", "/data/NO"): 47},
        {("/NO", REQUIRED): 47, ("/名称_カナ", REQUIRED): 47},
    ),
    # The normalised BODIK rows leave 設置位置 (◎) empty.
    "kitakyushu-401005/public-toilet-normalized-first20.csv": Expected(
        "public-toilet",
        0,
        {("schema_violation", "/data"): 20},
        {("/設置位置", REQUIRED): 20},
    ),
    "yaizu-222127/222127_aed.csv": Expected("aed", 82, {}, {}),
    "yaizu-222127/222127_public_facility.csv": Expected("public-facility", 230, {}, {}),
    "yaizu-222127/222127_public_toilet.csv": Expected("public-toilet", 112, {}, {}),
    # One URL without a scheme (www.kusukami.jp).
    "yaizu-222127/222127_tourism.csv": Expected(
        "tourism",
        233,
        {("schema_violation", "/data/URL"): 1},
        {("/URL", "is not a valid uri"): 1},
    ),
    # Hazard flags marked ○ where the 2019 definition allows only "1".
    "yaizu-222127/222127_evacuation_space.csv": Expected(
        "evacuation-space",
        0,
        {
            ("schema_violation", "/data/災害種別_地震"): 26,
            ("schema_violation", "/data/災害種別_崖崩れ、土石流及び地滑り"): 5,
        },
        {
            ("/災害種別_地震", FLAG): 26,
            ("/災害種別_津波", FLAG): 26,
            ("/災害種別_崖崩れ、土石流及び地滑り", FLAG): 5,
            ("/指定避難所との重複", FLAG): 5,
        },
    ),
    # Standard datasets without a schema of their own, in the nearest one.
    "yaizu-222127/222127_public_wireless_lan.csv": Expected("public-facility", 17, {}, {}),
    "yaizu-222127/222127_preschool.csv": Expected("public-facility", 60, {}, {}),
    "yaizu-222127/222127_hinannjo.csv": Expected("evacuation-space", 56, {}, {}),
    # Fire hydrants have no names: not a public-facility file.
    "yaizu-222127/222127_fire_hydrant.csv": Expected(
        "public-facility",
        0,
        {("schema_violation", "/data"): 193},
        {("/名称", REQUIRED): 193, ("/名称_カナ", REQUIRED): 193},
    ),
}


@cache
def _schemas() -> SchemaSet:
    return load_schema_dir(default_schema_dir())


@cache
def _registry() -> ValidatorRegistry:
    return ValidatorRegistry(_schemas())


def _verdict(value: bytes) -> tuple[str, str] | None:
    """What ingest decides for one event: None when accepted, else (reason, pointer)."""
    headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in STRUCTURED_HEADERS]
    decoded = decode_event(value, headers, now=NOW)
    checked = decoded if isinstance(decoded, Rejected) else _registry().validate(decoded)
    if isinstance(checked, Rejected):
        return str(checked.reason), checked.pointer or ""
    return None


def test_every_sample_csv_is_covered() -> None:
    found = {str(p.relative_to(OPENDATA_SAMPLES)) for p in OPENDATA_SAMPLES.rglob("*.csv")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_sample_csv_import_counts_and_reasons(relative: str) -> None:
    expected = EXPECTED[relative]
    summary = ImportSummary()
    events = list(
        csv_events(
            OPENDATA_SAMPLES / relative,
            meta=_schemas().datasets[expected.dataset],
            version=_schemas().latest(expected.dataset),
            summary=summary,
            now=NOW,
        )
    )
    verdicts = {event.line_no: _verdict(event.value) for event in events}
    refused = Counter(v for v in verdicts.values() if v is not None)
    problems = Counter((p.pointer, p.en) for found in summary.problems.values() for p in found)

    assert summary.local_errors == []
    assert len(events) == summary.rows_read
    assert sum(1 for v in verdicts.values() if v is None) == expected.accepted
    assert dict(refused) == expected.refused
    assert dict(problems) == expected.problems
    # The import explains exactly the rows ingest refuses, each in both languages.
    assert set(summary.problems) == {line for line, v in verdicts.items() if v is not None}
    assert all(p.ja and p.en for found in summary.problems.values() for p in found)
