"""Text from records made safe for where it goes: spreadsheet cells and terminals.

Tariff names, destinations, card batches and CDR fields come from users and switches. Two
places would act on such text instead of showing it:

- **a spreadsheet** (CSV opened in Excel or LibreOffice, or an XLSX cell): a cell starting with
  ``=``, ``+``, ``-``, ``@``, tab or carriage return is read as a formula (formula injection).
  ``cell`` applies OWASP's rule to every text cell written from data: such a cell gets a leading
  apostrophe, so it is shown as text. A text that is a plain number ("-0.5", "+3") cannot be a
  formula and is left alone; int, Decimal and other non-text values pass through unchanged, so
  numbers stay numbers. A text that already looks escaped (an apostrophe, then another or a
  formula start) gets a second apostrophe, which makes the escape reversible: ``uncell`` gives
  back exactly what ``cell`` was given.
- **a terminal**: control characters (ESC sequences recolour, move the cursor, retitle the
  window; a carriage return overwrites what was printed) and the Unicode bidirectional
  overrides (which reorder what is shown). ``terminal`` writes each as a visible escape
  (``\\x1b``, ``\\u202e``); printable text, accents and other scripts are kept as they are.
"""

from __future__ import annotations

import re
from typing import overload

#: first characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

#: what a terminal acts on: the C0 controls, DEL and the C1 controls (Unicode category Cc);
#: the line and paragraph separators; the bidirectional marks, embeddings, overrides, isolates
_OTHERS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_OTHERS}]")
_CONTROL_KEEP_NEWLINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_OTHERS}]")


@overload
def cell(value: str) -> str: ...
@overload
def cell(value: object) -> object: ...
def cell(value: object) -> object:
    """A value for a CSV or XLSX cell: text that a spreadsheet would run as a formula gets a
    leading apostrophe; everything else is returned unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if _looks_escaped(value):
        return _QUOTE + value  # so that uncell gives it back as it was
    if value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return _QUOTE + value
    return value


def uncell(text: str) -> str:
    """The inverse of ``cell`` for a text read back from a CSV or XLSX file."""
    return text[1:] if _looks_escaped(text) else text


def _looks_escaped(text: str) -> bool:
    """An apostrophe followed by another or by a formula start: what ``cell`` writes."""
    return len(text) > 1 and text[0] == _QUOTE and text[1] in (_QUOTE, *FORMULA_STARTS)


def terminal(text: object, *, newlines: bool = False) -> str:
    """``str(text)`` with every control character written as a visible escape.

    newlines=True keeps line feeds (a message of several lines); by default they are escaped
    too, so one record stays on one line.
    """
    pattern = _CONTROL_KEEP_NEWLINES if newlines else _CONTROL
    return pattern.sub(_visible, str(text))


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
