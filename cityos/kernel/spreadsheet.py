"""Text cells that a spreadsheet would run: the guard every CSV meant for Excel applies.

Excel, LibreOffice and Google Sheets treat a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a
formula (a tab or carriage return before one is skipped), so a value published by anyone — a
resident's free text, an audit entry's actor — could run a formula or exfiltrate other cells on
the computer of the official who opens the file. Following OWASP's CSV injection guidance, such a
cell is prefixed with a single quote, which spreadsheets read as "this is text".

A cell that is exactly a decimal number (``-3.5``, ``+81``, ``-1e-3``) is left as it is: a
spreadsheet reads it as that number, never as a formula, and prefixing it would turn every negative
measurement into text. Anything else that starts with a trigger, ``-1+2`` or ``+81-90-1234-5678``
included, is prefixed.
"""

from __future__ import annotations

import re
from typing import Final

FORMULA_TRIGGERS: Final = frozenset("=+-@\t\r")
TEXT_PREFIX: Final = "'"

_PLAIN_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def formula_safe(text: str) -> str:
    """``text`` as a spreadsheet will show it, never run it (see the module's note on numbers)."""
    if not text or text[0] not in FORMULA_TRIGGERS:
        return text
    if _PLAIN_NUMBER.fullmatch(text):
        return text
    return TEXT_PREFIX + text
