"""Calls to the national document axis as the SDK makes them (KnobstickServiceImp), for the receiver.

Each call is a POST to ``<endpoint>/<method>`` with freshly signed headers (gateway.vxp.protocol)
and the body the SDK sends (``{}`` for getEdoc and updateStatus, nothing for the lists); the answer
is the axis's JSON, read as the SDK reads it: ``status`` ``OK`` or anything else a failure.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from gateway.fetch import Bounds, FetchError, exchange
from gateway.json_input import parse_json
from gateway.vxp.protocol import SERVICE_TYPE, sdk_timestamp, sign_call

log = logging.getLogger("gateway.vxp")
VIETNAM = timezone(timedelta(hours=7))  # the SDK's timestamps carry no zone: the axis's, Vietnam's
MAX_ANSWER_BYTES = 600 * 1024 * 1024  # getEdoc carries the whole document, base64
RETRYABLE_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))


def header_text(text: str) -> str:
    """Vietnamese reasons as header-safe ASCII (diacritics dropped, đ → d): what bytes the SDK's
    server expects beyond ASCII is not in the public code, and latin-1 would garble them anyway."""
    folded = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in folded if c.isascii() and (c.isprintable() or c == " "))


class AxisUnavailable(Exception):
    """No answer, or not the axis's JSON: try again later."""


class AxisRefused(Exception):
    """The axis answered FAIL: ``code`` and ``desc`` are its ErrorCode and ErrorDesc."""

    def __init__(self, code: str, desc: str) -> None:
        super().__init__(f"{code} {desc}".strip())
        self.code, self.desc = code, desc


@dataclass(frozen=True)
class Received:
    doc_id: str
    sender: str  # "from": the sending agency's code
    message_type: str  # edoc | status


_DOC_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CODE = re.compile(r"[A-Za-z0-9.]{1,35}")


def _received(item: Any, wanted: str) -> Received | None:
    """One list entry, only when every field is what the tables and the submission path can hold."""
    if not isinstance(item, dict):
        return None
    doc_id, sender, kind = item.get("docId"), item.get("from"), item.get("messageType") or wanted
    if not (isinstance(doc_id, str | int) and _DOC_ID.fullmatch(str(doc_id))):
        return None
    if not (isinstance(sender, str) and _CODE.fullmatch(sender)) or kind not in ("edoc", "status"):
        return None
    return Received(str(doc_id), sender, str(kind))


@dataclass(frozen=True)
class AxisClient:
    endpoint: str
    systemid: str
    secret: str
    timeout: float = 30.0

    def call(
        self,
        method: str,
        fields: dict[str, str],
        *,
        body: bytes = b"",
        content_type: str = "application/json",
        max_answer: int = MAX_ANSWER_BYTES,
    ) -> dict[str, Any]:
        """One signed call; its JSON when ``status`` is OK.  :class:`AxisUnavailable` for what is worth
        trying again (no answer, 408/425/429/5xx, not the axis's JSON), :class:`AxisRefused` for FAIL."""
        headers = sign_call(
            self.systemid,
            self.secret,
            fields,
            content_type=content_type,
            timestamp=sdk_timestamp(datetime.now(VIETNAM)),
        )
        url = f"{self.endpoint.rstrip('/')}/{method}"
        try:
            answer = exchange(
                url,
                method="POST",
                body=body,
                headers=dict(headers),
                bounds=Bounds(timeout=self.timeout, max_bytes=max_answer),
            )
        except FetchError as exc:
            raise AxisUnavailable(f"{method}: {exc.reason}") from None
        if answer.status in RETRYABLE_STATUS:
            raise AxisUnavailable(f"{method}: the axis answered HTTP {answer.status}")
        try:
            found = parse_json(answer.body)
            status = found["status"]
        except (ValueError, KeyError, TypeError):
            raise AxisUnavailable(f"{method}: HTTP {answer.status} without the axis's JSON") from None
        if status != "OK":
            raise AxisRefused(str(found.get("ErrorCode", "?")), str(found.get("ErrorDesc", ""))[:500])
        return dict(found)

    def received(self, message_type: str) -> list[Received]:
        """getReceivedEdocList: what waits for this system, of one message type."""
        answer = self.call("getReceivedEdocList", {"servicetype": SERVICE_TYPE, "messagetype": message_type})
        items = answer.get("data") or []
        if not isinstance(items, list):
            raise AxisUnavailable("getReceivedEdocList: data is not a list")
        found = []
        for item in items:
            received = _received(item, message_type)
            if received is None:
                log.warning("the axis listed an entry this gateway cannot use; skipped: %.200r", item)
            else:
                found.append(received)
        return found

    def document(self, doc_id: str) -> bytes:
        """getEdoc: the edXML bytes (``data`` is their base64)."""
        found = self.call("getEdoc", {"docId": doc_id}, body=b"{}")
        try:
            return base64.b64decode(str(found.get("data", "")), validate=True)
        except (ValueError, binascii.Error):
            raise AxisUnavailable(f"getEdoc {doc_id}: data is not base64") from None

    def update_status(self, doc_id: str, status: str, description: str = "") -> None:
        """updateStatus done | fail | processing, with the reason when it failed."""
        fields = {"docId": doc_id, "status": status}
        if description:
            fields["description"] = header_text(description)[:1000]
        self.call("updateStatus", fields, body=b"{}")
