"""The history reader's pure parts: which instant a date's snapshot stands for, what it refuses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from cityos.domain.analysis.history import as_of_query, current_records, end_of_day_jst, records_as_of

JAPAN = timezone(timedelta(hours=9))  # Japan has kept UTC+9 all year since 1951: no daylight saving


@pytest.mark.parametrize(
    "day",
    [date(2025, 4, 1), date(2025, 12, 31), date(2024, 2, 29), date(2026, 3, 31), date(2000, 1, 1)],
)
def test_end_of_day_is_the_last_microsecond_of_the_date_in_japan(day: date) -> None:
    at = end_of_day_jst(day)
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
    in_japan = at.astimezone(JAPAN)
    assert in_japan.date() == day
    assert (in_japan.hour, in_japan.minute, in_japan.second, in_japan.microsecond) == (23, 59, 59, 999_999)
    # One microsecond later it is the next day in Japan: a change then belongs to the next snapshot.
    assert (at + timedelta(microseconds=1)).astimezone(JAPAN).date() == day + timedelta(days=1)


def test_end_of_day_is_15_utc_less_a_microsecond() -> None:
    # Independent arithmetic: midnight in Japan is 15:00 UTC of the day before.
    day = date(2025, 4, 1)
    expected = datetime(2025, 4, 1, 15, 0, tzinfo=UTC) - timedelta(microseconds=1)
    assert end_of_day_jst(day) == expected


def test_end_of_day_orders_like_the_dates() -> None:
    days = [date(2025, 3, 30) + timedelta(days=n) for n in range(5)]
    instants = [end_of_day_jst(day) for day in days]
    assert instants == sorted(instants)
    assert all(later - earlier == timedelta(days=1) for earlier, later in pairwise(instants))


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        as_of_query("aed", datetime(2025, 4, 1, 12, 0))


def test_a_batch_size_below_one_is_refused() -> None:
    engine = create_engine("sqlite://")
    with Session(engine) as session:
        with pytest.raises(ValueError, match="batch_size"):
            records_as_of(session, dataset_id="aed", at=datetime.now(UTC), batch_size=0)
        with pytest.raises(ValueError, match="batch_size"):
            current_records(session, dataset_id="aed", batch_size=-1)


def test_the_as_of_query_ranks_by_time_then_topic_position_and_keeps_only_live_winners() -> None:
    sql = str(
        as_of_query("aed", datetime(2025, 4, 1, tzinfo=UTC)).compile(compile_kwargs={"literal_binds": True})
    )
    ranking = sql[sql.index("row_number()") : sql.index(") AS rank")]
    assert ranking.index("event_time DESC") < ranking.index("kafka_partition DESC")
    assert ranking.index("kafka_partition DESC") < ranking.index("kafka_offset DESC")
    assert "PARTITION BY record_changes.record_key" in ranking
    assert "record_changes.event_time <=" in sql
    assert sql.rstrip().endswith("ORDER BY ranked.record_key")
