"""A development double of the national document axis (VXP), faithful to what its public SDK sends
and reads: the tests' axis, and `gateway vxp dev-axis` for the demo (never a production component).

Built from the Government Office's SDK as published (decompiled ``SDKVXP-2.0.1.jar`` in the GitHub
repository williamdunbar/SDK, commit f3a67b38, ``com/vpcp/services/``; its use in
PVN-Organization/API-Gateway-iOffice):

- every call is a POST to ``<endpoint>/<method>`` but ``downloadEdoc`` (``KnobstickServiceImp``);
- its arguments arrive as ``XroadVnpt-*`` headers signed with ``XroadVnpt-sign-header-key``,
  ``XroadVnpt-sign-header`` (JSON) and ``XroadVnpt-hash-header`` (hex HMAC-SHA256 of that JSON with
  the system's secret) (``VnptService.addXroadVnptHashHeader``);
- ``sendEdoc``'s body is the raw edXML followed by CRLF, with ``hash-file`` the SHA-256 in the
  SDK's lossy hex (``KnobstickServiceImp.getHashFile``; ``MultipartUtility.addInputStreamPart``);
- answers are JSON with ``status`` ``OK``/``FAIL``, ``ErrorCode`` (``"0"`` on success),
  ``ErrorDesc``, and ``DocId`` / ``data`` / ``count`` per method; list items carry ``docId,
  serviceType, messageType, created_time, updated_time, from, to, status, status_desc``; never a
  JSON null (the SDK's ``getAsString`` throws on one).

What the public code does not show — the axis's own error codes and texts, whether it checks the
timestamp — is this double's choice, marked ``# chosen:`` below.  The checks are written here
independently of gateway.vxp.protocol (its own HMAC and hex), so a shared mistake cannot pass.
State is in memory: the axis forgets everything when its process stops.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

VIETNAM = timezone(timedelta(hours=7))  # the axis's clock, as the gateway's façade writes its times


@dataclass
class AxisDocument:
    doc_id: str
    sender: str  # the sending system's agency code ("from")
    to: list[str]
    message_type: str
    content: bytes
    status: str = "inbox"
    status_desc: str = ""
    created: str = field(default_factory=lambda: datetime.now(VIETNAM).strftime("%d/%m/%Y %H:%M:%S"))


@dataclass
class Axis:
    """The axis's state: registered systems (systemid → secret, agency code) and documents."""

    systems: dict[str, tuple[str, str]] = field(default_factory=dict)
    documents: dict[str, AxisDocument] = field(default_factory=dict)
    agencies: list[dict[str, Any]] = field(default_factory=list)  # getAgenciesList items
    agencies_qd20: list[dict[str, Any]] = field(default_factory=list)  # getAgenciesListQD20 items
    units: list[dict[str, Any]] = field(default_factory=list)  # getSynchronizeUnit items
    down: bool = False  # answer 503 to everything, as a proxy in front of a stopped axis would
    refuse_updates: bool = False  # answer 503 to updateStatus only: an answer lost on the way
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    def register(self, systemid: str, secret: str, code: str) -> None:
        self.systems[systemid] = (secret, code)

    def list_agency(self, code: str, name: str, *, parent: str = "") -> None:
        """An agency in the axis's directory, in all three of its lists (the demo's sync-vxp reads them)."""
        n = len(self.units) + 1
        self.agencies.append({"code": code, "id": n, "mail": "", "name": name, "pid": parent, "oldCode": ""})
        self.agencies_qd20.append({"code": code, "id": n, "mail": "", "name": name, "code102": code})
        self.units.append(
            {
                "code": code,
                "id": n,
                "mail": "",
                "name": name,
                "pid": parent,
                "version": 1,
                "centerCode": "",
                "deleted": False,
                "modifyDate": datetime.now(VIETNAM).strftime("%d/%m/%Y"),
                "isAgency": True,
            }
        )

    def deposit(self, sender: str, to: str, content: bytes, message_type: str = "edoc") -> str:
        """A document another province sent through the axis, waiting for ``to``."""
        doc = AxisDocument(str(next(self._ids)), sender, [to], message_type, content)
        self.documents[doc.doc_id] = doc
        return doc.doc_id

    # --- the WSGI application ---

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if self.down:
            return Response("service unavailable", 503)(environ, start_response)
        method = request.path.rstrip("/").rsplit("/", 1)[-1]
        if self.refuse_updates and method == "updateStatus":
            return Response("service unavailable", 503)(environ, start_response)
        try:
            headers, code = self._authenticated(request)
        except _Fail as fail:
            return _json(fail.answer())(environ, start_response)
        self.calls.append((method, headers))
        handler = getattr(self, f"_{method}", None)
        if handler is None or (request.method == "GET") != (method == "downloadEdoc"):
            return _json(_Fail("404", f"no method {method}").answer())(environ, start_response)
        try:
            return _json(handler(request, headers, code))(environ, start_response)
        except _Fail as fail:
            return _json(fail.answer())(environ, start_response)

    def _authenticated(self, request: Request) -> tuple[dict[str, str], str]:
        sign_header = request.headers.get("XroadVnpt-sign-header", "")
        given = request.headers.get("XroadVnpt-hash-header", "")
        try:
            signed = json.loads(sign_header)
        except ValueError:
            raise _Fail("401", "missing or malformed XroadVnpt-sign-header") from None  # chosen: code and text
        systemid = signed.get("XroadVnpt-systemid", "")
        if systemid not in self.systems:
            raise _Fail("401", "systemid is not registered")
        secret, code = self.systems[systemid]
        wanted = hmac.new(secret.encode(), sign_header.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(wanted, given):
            raise _Fail("401", "hash-header does not match")
        names = request.headers.get("XroadVnpt-sign-header-key", "").split(";")
        fields = {}
        for name in names:
            value = request.headers.get(f"XroadVnpt-{name}")
            if value is None or signed.get(f"XroadVnpt-{name}") != value:
                raise _Fail("401", f"header {name} is not the one signed")
            fields[name] = value
        return fields, code

    def _sendEdoc(self, request: Request, fields: dict[str, str], code: str) -> dict[str, Any]:
        body = request.get_data()
        if not body.endswith(b"\r\n"):
            raise _Fail("400", "the body must be the file followed by CRLF")  # chosen: what MultipartUtility writes
        content = body[:-2]
        lossy = "".join(format(b, "x") for b in hashlib.sha256(content).digest())
        if fields.get("hash-file") != lossy:
            raise _Fail("400", "hash-file does not match the file")
        if fields.get("from") != code:
            raise _Fail("403", "from is not this system's agency")
        to = json.loads(fields.get("to", "[]"))
        doc = AxisDocument(
            str(next(self._ids)), code, to if isinstance(to, list) else [to], fields.get("messagetype", ""), content
        )
        self.documents[doc.doc_id] = doc
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "DocId": doc.doc_id}

    def _getReceivedEdocList(self, request: Request, fields: dict[str, str], code: str) -> dict[str, Any]:
        kind = fields.get("messagetype", "edoc")
        items = [
            {
                "docId": d.doc_id,
                "serviceType": "eDoc",
                "messageType": d.message_type,
                "created_time": d.created,
                "updated_time": d.created,
                "from": d.sender,
                "to": code,
                "status": d.status,
                "status_desc": d.status_desc,
            }
            for d in self.documents.values()
            if code in d.to and d.message_type == kind and d.status == "inbox"
        ]
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "data": items}

    def _getEdoc(self, request: Request, fields: dict[str, str], code: str) -> dict[str, Any]:
        doc = self.documents.get(fields.get("docId", ""))
        if doc is None or code not in doc.to:
            raise _Fail("404", "no such document for this system")
        data = base64.b64encode(doc.content).decode()
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "data": data}

    def _updateStatus(self, request: Request, fields: dict[str, str], code: str) -> dict[str, Any]:
        doc = self.documents.get(fields.get("docId", ""))
        if doc is None or code not in doc.to:
            raise _Fail("404", "no such document for this system")
        if fields.get("status") not in ("done", "fail", "processing"):
            raise _Fail("400", "status is done, fail or processing")
        doc.status, doc.status_desc = fields["status"], fields.get("description", "")
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success"}

    def _getAgenciesList(self, request: Request, fields: dict[str, str], code: str) -> dict[str, Any]:
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "data": list(self.agencies)}

    def _getAgenciesListQD20(self, request: Request, fields: dict[str, str], code: str) -> dict[str, Any]:
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "data": list(self.agencies_qd20)}

    def _getSynchronizeUnit(self, request: Request, fields: dict[str, str], code: str) -> dict[str, Any]:
        return {"status": "OK", "ErrorCode": "0", "ErrorDesc": "Success", "data": list(self.units)}


class _Fail(Exception):
    def __init__(self, code: str, desc: str) -> None:
        super().__init__(desc)
        self.code, self.desc = code, desc

    def answer(self) -> dict[str, Any]:
        return {"status": "FAIL", "ErrorCode": self.code, "ErrorDesc": self.desc}


def _json(answer: dict[str, Any]) -> Response:
    return Response(json.dumps(answer, ensure_ascii=False), 200, mimetype="application/json")


@contextmanager
def serving(axis: Axis) -> Iterator[str]:
    """The double on a free local port, in a thread: its endpoint URL."""
    server = make_server("127.0.0.1", 0, axis, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}/XrdAdapter"
    finally:
        server.shutdown()
        thread.join()
