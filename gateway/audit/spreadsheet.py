"""Report rows as CSV that a spreadsheet opens as data, never as formulas (CSV injection, OWASP).

An agency name or a subject is text someone else chose.  A spreadsheet runs a cell as a formula
when it starts with ``= + - @`` (or a tab or CR before one), and it may find that start:

- after leading spaces, or in the full-width forms ``＝ ＋ － ＠`` that some spreadsheets fold;
- after a ``;`` inside an unquoted field: where the list separator is ``;`` (locales whose decimal
  mark is a comma, Vietnamese among them) Excel splits ``Sở X;=cmd|…`` into two cells (issue 11 review).

Quoting the field does not help with the last one: split on ``;``, a quote in the middle of a
``,``-separated line is an ordinary character.  So text starting like a formula gets a leading
``'``, so does the text after a separator inside it (``Sở X;'=cmd…``), and every text field is
quoted; numbers stay bare so that they stay numbers.  Files for people carry a UTF-8 byte order
mark, without which Excel shows Vietnamese names as mojibake; the API's CSV, read by scripts, does not.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_SPACES = " \u3000\u00a0"
# A separator some spreadsheet may split on (a line break too: where quotes are ordinary characters
# it ends the row), then what would start a formula in the next cell, spaces between.
_SEPARATED_FORMULA = re.compile(r"([,;\t|\r\n\u2028\u2029][ \u3000\u00a0]*)(?=[=+@\-\uff1d\uff0b\uff20\uff0d])")
BOM = "\ufeff"


def spreadsheet_text(value: Any) -> Any:
    """``value`` as a cell that holds text, not a formula; numbers and empty cells unchanged."""
    if not isinstance(value, str):
        return value
    value = _SEPARATED_FORMULA.sub(r"\1'", value)
    return "'" + value if value.lstrip(_SPACES).startswith(_FORMULA_START) else value


def csv_table(fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]], *, for_people: bool) -> str:
    """A header and one line per row, text quoted and neutralised; a BOM first when people will open it."""
    buffer = io.StringIO()
    if for_people:
        buffer.write(BOM)
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), quoting=csv.QUOTE_NONNUMERIC)
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if value is None else spreadsheet_text(value) for name, value in row.items()})
    return buffer.getvalue()
