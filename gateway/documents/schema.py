"""Validation against our XSDs in ``schemas/``, compiled once per process."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from gateway.policy import Refusal

Kind = Literal["document", "status", "seal"]
_FILES: dict[Kind, str] = {
    "document": "edxml-document.xsd",
    "status": "edxml-status.xsd",
    "seal": "seal.xsd",
}


def schemas_dir() -> Path:
    """The checkout's ``schemas/`` in development, the installed copy (data-files) otherwise."""
    for candidate in (
        Path(__file__).resolve().parents[2] / "schemas",
        Path(sys.prefix) / "share" / "interconnect-gateway" / "schemas",
    ):
        if (candidate / _FILES["document"]).is_file():
            return candidate
    raise FileNotFoundError("schemas/ not found next to the gateway package nor under sys.prefix/share")


@cache
def _schema(kind: Kind) -> etree.XMLSchema:
    # Our own files: the parser may follow xs:include to sibling files, never the network.
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    path = schemas_dir() / _FILES[kind]
    return etree.XMLSchema(etree.parse(str(path), parser=parser))


def validate(root: etree._Element, kind: Kind) -> None:
    """Raise :class:`Refusal` ``schema-invalid`` naming the first problem and its line."""
    schema = _schema(kind)
    if not schema.validate(root):
        errors: list[Any] = list(schema.error_log)  # type: ignore[call-overload]
        error = errors[0] if errors else None
        where = f"line {error.line}: " if error and error.line else ""
        message = error.message if error else "does not match the schema"
        raise Refusal("schema-invalid", f"{where}{message}")
