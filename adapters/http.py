"""Push delivery over HTTP(S): POST the document and the gateway's seal to the agency's endpoint.

The request is ``multipart/form-data`` with the parts ``document`` (the exact edXML bytes received)
and ``seal`` (the gateway's signed seal), the headers ``X-Document-Id`` and ``Idempotency-Key`` set
to the gateway's document id, and ``Authorization: Bearer`` a short-lived JWT the gateway signs for
this endpoint (``aud`` = the URL).  The receiver answers ``200``/``201``/``202`` with its receipt: a
compact JWS signed with its registered client key (``typ`` ``receipt+jwt``; claims ``iss`` = its
agency code, ``document_id``, ``sha256`` of the document bytes, ``iat``).  A receiver that already
has the document answers the same way again.

Which answers are worth retrying follows Estonia's DHX: time-outs, refused connections, ``408``,
``425``, ``429`` and ``5xx`` are retried with back-off; ``400``/``422`` (invalid document) and
``404``/``410`` (wrong address) are permanent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from urllib3.filepost import encode_multipart_formdata

from adapters.base import Adapter, AdapterSettingsError, Delivery, DeliveryResult, Deployment, SettingSpec
from gateway.fetch import Bounds, FetchError, exchange

RETRYABLE_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))
MAX_RECEIPT_BYTES = 64 * 1024


class HttpAdapter(Adapter):
    """``timeout_seconds`` is the whole attempt (connect, send, answer), never more than the deployment's
    ``attempt_seconds``: a per-read timeout restarts with each byte a dripping receiver sends.
    Outside demo mode the URL must be https unless the agency's settings say ``allow_http=true``
    (a closed network that terminates TLS elsewhere, decided and recorded per agency)."""

    name = "http"
    settings_spec: ClassVar[Mapping[str, SettingSpec]] = {
        "url": SettingSpec(str, required=True),
        "timeout_seconds": SettingSpec(float, default=10),
        "health_url": SettingSpec(str),
        "allow_http": SettingSpec(bool, default=False),
    }

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], deployment: Deployment) -> None:
        for key in ("url", "health_url"):
            if key not in settings:
                continue
            scheme = urlsplit(str(settings[key])).scheme
            if scheme not in ("http", "https"):
                raise AdapterSettingsError(f"adapter 'http': {key} must be an http(s) URL")
            if scheme == "http" and not deployment.demo and settings.get("allow_http") is not True:
                raise AdapterSettingsError(
                    f"adapter 'http': {key} must be https outside demo mode; if this receiver really is "
                    "reached over plain http inside a closed network, add --adapter-setting allow_http=true"
                )

    @property
    def deadline(self) -> float:
        return min(float(self.settings["timeout_seconds"]), self.deployment.attempt_seconds)

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        if self.gateway is None:
            raise RuntimeError("the http adapter needs the gateway side to authenticate and check receipts")
        url = str(self.settings["url"])
        body, content_type = encode_multipart_formdata(
            {
                "document": (f"{delivery.document_uuid}.edxml", delivery.content, "application/xml"),
                "seal": (f"{delivery.document_uuid}.seal.xml", delivery.seal, "application/xml"),
            }
        )
        headers = {
            "Authorization": f"Bearer {self.gateway.bearer_token(url, delivery)}",
            "X-Document-Id": delivery.document_uuid,
            "Idempotency-Key": delivery.document_uuid,
            "Accept": "application/jwt",
            "Content-Type": content_type,
        }
        try:
            answer = exchange(
                url,
                method="POST",
                body=body,
                headers=headers,
                bounds=Bounds(timeout=self.deadline, max_bytes=MAX_RECEIPT_BYTES),
            )
        except FetchError as exc:
            return DeliveryResult("retryable", exc.reason)
        status = answer.status
        if status in RETRYABLE_STATUS:
            return DeliveryResult("retryable", f"{url} answered {status}")
        if status in (404, 410):
            return DeliveryResult("permanent", f"wrong address: {url} answered {status}")
        if status not in (200, 201, 202):
            return DeliveryResult("permanent", f"{url} refused the document with {status}: {_excerpt(answer.body)}")
        try:
            self.gateway.verify_receipt(answer.body.strip(), delivery)
        except ValueError as exc:
            return DeliveryResult("retryable", f"the receipt from {url} is not valid: {exc}")
        return DeliveryResult("delivered", f"{url} answered {status} with a valid receipt", receipt=answer.body.strip())

    def healthy(self) -> tuple[bool, str]:
        url = str(self.settings.get("health_url") or self.settings["url"])
        try:
            status = exchange(url, method="HEAD", bounds=Bounds(timeout=self.deadline)).status
        except FetchError as exc:
            return False, exc.reason
        return status < 500, f"{url} answered {status}"


def _excerpt(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").replace("\n", " ")
