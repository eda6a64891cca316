def plain_counts(raw: bytes, max_depth: int, /) -> tuple[int, int] | None:
    """``(keys, objects)`` -- how many ``":`` and ``{`` the bytes hold -- when they hold no
    ``\\u0000``, no run of 19 digits and no nesting deeper than ``max_depth``; None when the exact
    parser must decide."""
