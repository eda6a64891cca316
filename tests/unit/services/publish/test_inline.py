"""Which records pages are rendered on the event loop: small pages of small datasets on SQLite."""

from __future__ import annotations

from services.publish.inline import INLINE_MAX_LIMIT, INLINE_MAX_RECORDS, DatasetSizes, renders_inline


def test_small_pages_of_small_sqlite_datasets_render_in_place() -> None:
    assert renders_inline(dialect="sqlite", known_records=2_000, limit=100)
    assert renders_inline(dialect="sqlite", known_records=INLINE_MAX_RECORDS, limit=INLINE_MAX_LIMIT)


def test_everything_else_goes_to_a_thread() -> None:
    # A network round trip, a dataset not seen yet, a large dataset, a large page.
    assert not renders_inline(dialect="postgresql", known_records=10, limit=10)
    assert not renders_inline(dialect="sqlite", known_records=None, limit=10)
    assert not renders_inline(dialect="sqlite", known_records=INLINE_MAX_RECORDS + 1, limit=10)
    assert not renders_inline(dialect="sqlite", known_records=10, limit=INLINE_MAX_LIMIT + 1)


def test_sizes_remember_the_last_count_seen() -> None:
    sizes = DatasetSizes()
    assert sizes.known("aed") is None
    sizes.seen("aed", 120)
    sizes.seen("aed", 121)
    assert sizes.known("aed") == 121
