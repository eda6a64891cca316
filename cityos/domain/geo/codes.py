"""全国地方公共団体コード (JIS X 0402): the check digit that turns a five-digit body into the code.

The sixth digit is ``(11 - Σ(d_i × (6,5,4,3,2)) mod 11) mod 10``. The national boundary data (国土数値
情報 N03) names a municipality or ward by the five digits alone; open data uses the six-digit code.
"""

from __future__ import annotations

_WEIGHTS = (6, 5, 4, 3, 2)


def check_digit(first_five: str) -> str:
    """The check digit of a five-digit code body, e.g. ``"37201"`` → ``"3"``."""
    if len(first_five) != len(_WEIGHTS) or not first_five.isascii() or not first_five.isdigit():
        raise ValueError(f"not five digits: {first_five!r}")
    total = sum(int(digit) * weight for digit, weight in zip(first_five, _WEIGHTS, strict=True))
    return str((11 - total % 11) % 10)


def with_check_digit(first_five: str) -> str:
    """The six-digit code of a five-digit body (an N03 code), e.g. ``"40101"`` → ``"401013"``."""
    return first_five + check_digit(first_five)
