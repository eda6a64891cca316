from collections.abc import Sequence

def plain_counts(raw: bytes, max_depth: int, /) -> tuple[int, int] | None:
    """``(keys, objects)`` -- how many ``":`` and ``{`` the bytes hold -- when they hold no
    ``\\u0000``, no run of 19 digits and no nesting deeper than ``max_depth``; None when the exact
    parser must decide."""

def csv_lines(rows: Sequence[tuple[bytes]], columns: list[str], excel: bool, /) -> bytes | None:
    """CSV lines (CRLF) of ``columns`` for each row's stored JSON object, exactly as the Python
    writer of ``services.publish.stream`` writes them; None when any document needs that writer."""
