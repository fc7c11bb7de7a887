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

import requests

from adapters.base import Adapter, AdapterSettingsError, Delivery, DeliveryResult, SettingSpec

RETRYABLE_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))
MAX_RECEIPT_BYTES = 64 * 1024


class HttpAdapter(Adapter):
    name = "http"
    settings_spec: ClassVar[Mapping[str, SettingSpec]] = {
        "url": SettingSpec(str, required=True),
        "timeout_seconds": SettingSpec(float, default=10),
        "health_url": SettingSpec(str),
    }

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        for key in ("url", "health_url"):
            if key in settings and urlsplit(str(settings[key])).scheme not in ("http", "https"):
                raise AdapterSettingsError(f"adapter 'http': {key} must be an http(s) URL")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._session = requests.Session()

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        if self.gateway is None:
            raise RuntimeError("the http adapter needs the gateway side to authenticate and check receipts")
        url = str(self.settings["url"])
        headers = {
            "Authorization": f"Bearer {self.gateway.bearer_token(url, delivery)}",
            "X-Document-Id": delivery.document_uuid,
            "Idempotency-Key": delivery.document_uuid,
            "Accept": "application/jwt",
        }
        files = {
            "document": (f"{delivery.document_uuid}.edxml", delivery.content, "application/xml"),
            "seal": (f"{delivery.document_uuid}.seal.xml", delivery.seal, "application/xml"),
        }
        try:
            with self._session.post(
                url,
                headers=headers,
                files=files,
                timeout=float(self.settings["timeout_seconds"]),
                allow_redirects=False,
                stream=True,
            ) as response:
                body = response.raw.read(MAX_RECEIPT_BYTES + 1, decode_content=True)
                status = response.status_code
        except requests.Timeout:
            return DeliveryResult("retryable", f"no answer from {url} within {self.settings['timeout_seconds']} s")
        except requests.ConnectionError as exc:
            return DeliveryResult("retryable", f"cannot connect to {url}: {type(exc).__name__}")
        except requests.RequestException as exc:
            return DeliveryResult("retryable", f"request to {url} failed: {type(exc).__name__}")
        if status in RETRYABLE_STATUS:
            return DeliveryResult("retryable", f"{url} answered {status}")
        if status in (404, 410):
            return DeliveryResult("permanent", f"wrong address: {url} answered {status}")
        if status not in (200, 201, 202):
            return DeliveryResult("permanent", f"{url} refused the document with {status}: {_excerpt(body)}")
        if len(body) > MAX_RECEIPT_BYTES:
            return DeliveryResult("retryable", f"the receipt from {url} is larger than {MAX_RECEIPT_BYTES} bytes")
        try:
            self.gateway.verify_receipt(body.strip(), delivery)
        except ValueError as exc:
            return DeliveryResult("retryable", f"the receipt from {url} is not valid: {exc}")
        return DeliveryResult("delivered", f"{url} answered {status} with a valid receipt", receipt=body.strip())

    def healthy(self) -> tuple[bool, str]:
        url = str(self.settings.get("health_url") or self.settings["url"])
        try:
            status = self._session.head(url, timeout=float(self.settings["timeout_seconds"])).status_code
        except requests.RequestException as exc:
            return False, f"{url}: {type(exc).__name__}"
        return status < 500, f"{url} answered {status}"


def _excerpt(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").replace("\n", " ")
