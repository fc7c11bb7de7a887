"""Validation against our XSDs in ``schemas/``, compiled once per process.

Threaded gunicorn workers validate concurrently.  Under load, a first request compiling an XSD
while other threads parsed failed with "Document is not valid XML Schema" (found by the fault test),
so schemas are compiled under a lock, ahead of traffic by :func:`warm_up`, and each validation holds
its schema's lock: an lxml validator keeps one error log, and one request must not report another's
problem.  Validating a document takes well under a millisecond, so the lock costs little.
"""

from __future__ import annotations

import sys
import threading
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


_compiling = threading.Lock()
_compiled: dict[Kind, tuple[etree.XMLSchema, threading.Lock]] = {}


def _schema(kind: Kind) -> tuple[etree.XMLSchema, threading.Lock]:
    with _compiling:
        if kind not in _compiled:
            # Our own files: the parser may follow xs:include to sibling files, never the network.
            parser = etree.XMLParser(no_network=True, resolve_entities=False)
            path = schemas_dir() / _FILES[kind]
            _compiled[kind] = (etree.XMLSchema(etree.parse(str(path), parser=parser)), threading.Lock())
        return _compiled[kind]


def warm_up() -> None:
    """Compile every schema now, before requests arrive."""
    for kind in _FILES:
        _schema(kind)


def validate(root: etree._Element, kind: Kind) -> None:
    """Raise :class:`Refusal` ``schema-invalid`` naming the first problem and its line."""
    schema, lock = _schema(kind)
    with lock:
        if schema.validate(root):
            return
        errors: list[Any] = list(schema.error_log)  # type: ignore[call-overload]
    error = errors[0] if errors else None
    where = f"line {error.line}: " if error and error.line else ""
    message = error.message if error else "does not match the schema"
    raise Refusal("schema-invalid", f"{where}{message}")
