"""A client that writes its requests the way the national SDK (SDKVXP 2.0.1) does, to test the façade.

From the decompiled SDK (williamdunbar/SDK, commit f3a67b38, ``com/vpcp/services/``): the
timestamp is fixed when the service object is made (``VnptService`` constructor); each call's JSON
argument becomes ``XroadVnpt-<key>`` headers, signed in the order of a Java ``HashMap`` of their
names, with ``Content-Type`` among them (``addXroadVnptHashHeader``); the JSON of the signed headers
is HMAC-SHA256'd with the secret and sent hex; ``sendEdoc`` posts the raw file followed by CRLF
with ``hash-file`` in ``Integer.toHexString`` hex (``KnobstickServiceImp.getHashFile``,
``MultipartUtility``); getEdoc, updateStatus and the counts post ``{}``, the lists nothing.

Written apart from gateway.vxp.protocol (its own HMAC, JSON and hex; only the HashMap order is
shared, which the server never depends on), so a mistake in the product's signing cannot pass here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from gateway.vxp.protocol import java_hashmap_order

VIETNAM = timezone(timedelta(hours=7))


class SdkClient:
    """One SDK service object: ``post(method, headers, body)`` is the HTTP call (a Flask test client's)."""

    def __init__(self, http: Any, systemid: str, secret: str, *, created: datetime | None = None) -> None:
        self.http, self.systemid, self.secret = http, systemid, secret
        moment = created or datetime.now(VIETNAM)
        self.timestamp = moment.strftime("%d%m%YT%H%M%S") + f"+{moment.microsecond // 1000:04d}"

    def headers(self, args: dict[str, str], content_type: str) -> list[tuple[str, str]]:
        values = {"timestamp": self.timestamp, "systemid": self.systemid, "Content-Type": content_type, **args}
        names = java_hashmap_order(list(values))
        signed = "{" + ",".join(f'"XroadVnpt-{n}":{json.dumps(values[n], ensure_ascii=False)}' for n in names) + "}"
        digest = hmac.new(self.secret.encode("utf-8"), signed.encode("utf-8"), hashlib.sha256).hexdigest()
        return [
            ("Content-Type", content_type),
            *((f"XroadVnpt-{n}", _wire(values[n])) for n in names),
            ("XroadVnpt-sign-header-key", ";".join(names)),
            ("XroadVnpt-sign-header", _wire(signed)),
            ("XroadVnpt-hash-header", digest),
            ("User-Agent", "JAVASDKAgent/1.0.0 XRoad/VPCP"),
            ("XroadVnpt-version", "3.0.201608"),
        ]

    def call(self, method: str, args: dict[str, str], *, body: bytes = b"", get: bool = False) -> Any:
        headers = self.headers(args, "application/json")
        send = self.http.get if get else self.http.post
        return send(f"/vxp/{method}", data=body, headers=headers)

    def json(self, method: str, args: dict[str, str], *, body: bytes = b"{}") -> dict[str, Any]:
        return dict(self.call(method, args, body=body).get_json())

    def send_edoc(self, data: bytes, *, sender: str, message_type: str = "edoc", **extra: str) -> dict[str, Any]:
        lossy = "".join(format(b, "x") for b in hashlib.sha256(data).digest())  # Integer.toHexString(0xFF & b)
        args = {"from": sender, "servicetype": "eDoc", "messagetype": message_type, "hash-file": lossy, **extra}
        headers = self.headers(args, "application/octet-stream")
        return dict(self.http.post("/vxp/sendEdoc", data=data + b"\r\n", headers=headers).get_json())


def _wire(text: str) -> str:
    """The UTF-8 bytes the SDK's HttpClient puts on the wire, as the test client's latin-1 headers carry them."""
    return text.encode("utf-8").decode("latin-1")
