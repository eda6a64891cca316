"""What a database error may tell an operator: never a value the statement carried."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.exc import IntegrityError

from cityos.kernel.db.engine import make_engine, refusal_text

MARKER = "山田花子-1958-機微"


def test_a_refused_row_is_described_without_its_values() -> None:
    engine = make_engine("sqlite://")
    table = Table(
        "residents",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String(50), nullable=False, unique=True),
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), {"id": 1, "name": MARKER})
    with pytest.raises(IntegrityError) as refused, engine.begin() as connection:
        connection.execute(insert(table), {"id": 2, "name": MARKER})
    assert MARKER not in str(refused.value)  # the engine hides parameters from every error's text
    text = refusal_text(refused.value)
    assert MARKER not in text
    assert text.startswith("sqlite3.IntegrityError UNIQUE constraint failed: residents.name")
    assert "[SQL: INSERT INTO residents (id, name) VALUES (?, ?)]" in text
    engine.dispose()


class _Diagnostics:
    sqlstate = "23502"
    table_name = "records"
    column_name = "data"
    constraint_name = None
    message_primary = f'invalid input syntax for type integer: "{MARKER}"'


class NotNullViolation(Exception):
    """Shaped like psycopg's errors: the message quotes the row, the diagnostics name objects."""

    diag = _Diagnostics()


def test_a_driver_message_that_quotes_the_row_is_replaced_by_its_diagnostics() -> None:
    error = NotNullViolation(f"null value in column\nDETAIL:  Failing row contains ({MARKER}, null).")
    text = refusal_text(error)
    assert MARKER not in text
    assert "sqlstate=23502 table_name=records column_name=data" in text


def test_an_unknown_driver_says_only_its_kind() -> None:
    assert refusal_text(ValueError(MARKER)) == "builtins.ValueError"
