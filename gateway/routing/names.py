"""Agency names as people read them: one line of visible text.

Names reach pages, CSV and XLSX reports and the terminal.  A control character broke the city's
whole XLSX report (openpyxl refuses C0 characters), a line break inside a name split a CSV row for
a spreadsheet that ignores quotes, and a bidirectional override reorders what an auditor reads
(issue 11 review, round 2).  The operator's names are refused with the reason; names from the
national axis's directory, which the city cannot correct, are made printable.
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 255  # the agencies.name column
# Control (Cc), format (Cf: zero-width and bidi controls), line/paragraph separators (Zl, Zp),
# surrogates (Cs), private use (Co) and unassigned (Cn) characters.
_NOT_IN_A_NAME = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _NOT_IN_A_NAME


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an agency's name, or None when it can."""
    if not name.strip():
        return "the name is empty"
    if len(name) > MAX_NAME:
        return f"the name is longer than {MAX_NAME} characters"
    hidden = next((c for c in name if _hidden(c)), None)
    if hidden is not None:
        return (
            f"the name holds an invisible or control character (U+{ord(hidden):04X}): type it as one line of "
            "visible text"
        )
    return None


def printable_name(name: str) -> str:
    """``name`` with every character :func:`name_problem` refuses turned into a space, one line, trimmed."""
    return " ".join("".join(" " if _hidden(c) else c for c in name).split())[:MAX_NAME]
