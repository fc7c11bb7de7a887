"""URL converters that read paths the way the rest of the gateway reads identifiers: ASCII only.

Werkzeug's ``int`` matches ``\\d``, which is every script's digits, so ``/audit/entries/٣`` (an
Arabic-Indic three) opened entry 3 (issue 11 review): one entry with many spellings, in the access
log and the audit trail of reads alike.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter


class AsciiIntegerConverter(IntegerConverter):
    regex = r"[0-9]+"


def install_converters(app: Flask) -> None:
    """Before any blueprint is registered: rules pick their converters up when they are added."""
    app.url_map.converters["int"] = AsciiIntegerConverter
