"""Delivery to the national document interconnection axis (VXP) with its SDK's ``sendEdoc`` call.

Agencies outside the city (ministries, other provinces) are registered with this adapter: the
worker hands it a document or status message for one of them, and it posts the exact edXML bytes
to ``<endpoint>/sendEdoc`` the way the Government Office's SDK does (gateway.vxp.protocol: the
signed ``XroadVnpt-*`` headers built fresh for every call, ``hash-file`` with the SDK's hex).  The
axis answers ``{"status": "OK", "DocId": …}`` (delivered; its DocId kept as the route's
reference) or ``{"status": "FAIL", "ErrorCode": …, "ErrorDesc": …}``.

Which answers are retried: no answer, a time-out, HTTP 408/429/5xx, or a body that is not the
axis's JSON (a proxy's error page) — the worker backs off and dead-letters after the agency's
attempts.  A ``FAIL`` is permanent: the public SDK documents no error codes, so a refusal is
taken as the axis's word about this document or these credentials, and an operator requeues it
(`gateway deliveries retry`) once the cause is fixed.  Redelivery after a crash between the axis's
answer and the worker's record sends the document again: whether the axis deduplicates on the
edXML DocumentId is not in the public code (said in the README).

The secret is never stored in the registry: ``secret_file`` names a file on the worker's host.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from adapters.base import Adapter, AdapterSettingsError, Delivery, DeliveryResult, Deployment, SettingSpec
from gateway.vxp.client import AxisClient, AxisRefused, AxisUnavailable
from gateway.vxp.protocol import SERVICE_TYPE, sdk_file_hash

MAX_ANSWER_BYTES = 64 * 1024


class VxpAdapter(Adapter):
    name = "vxp"
    settings_spec: ClassVar[Mapping[str, SettingSpec]] = {
        "endpoint": SettingSpec(str, required=True),  # the axis's service.endpoint, e.g. https://…/XrdAdapter
        "systemid": SettingSpec(str, required=True),  # this city's system id at the axis
        "secret_file": SettingSpec(str, required=True),  # a file holding the secret the axis issued
        "from_code": SettingSpec(str, required=True),  # this city's agency code at the axis
        "to_code": SettingSpec(str),  # the recipient's code at the axis, when it is not its code here
        "timeout_seconds": SettingSpec(float, default=20),
        "allow_http": SettingSpec(bool, default=False),
    }

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], deployment: Deployment) -> None:
        scheme = urlsplit(str(settings["endpoint"])).scheme
        if scheme not in ("http", "https"):
            raise AdapterSettingsError("adapter 'vxp': endpoint must be an http(s) URL")
        if scheme == "http" and not deployment.demo and settings.get("allow_http") is not True:
            raise AdapterSettingsError(
                "adapter 'vxp': endpoint must be https outside demo mode (or allow_http=true inside a closed network)"
            )
        secret = Path(str(settings["secret_file"]))
        if not secret.is_file():
            raise AdapterSettingsError(
                f"adapter 'vxp': secret_file {secret} does not exist on this host; write the secret the "
                "Government Office issued into it (readable by the gateway's worker only)"
            )

    @property
    def deadline(self) -> float:
        return min(float(self.settings["timeout_seconds"]), self.deployment.attempt_seconds)

    def _secret(self) -> str:
        return Path(str(self.settings["secret_file"])).read_text(encoding="utf-8").strip()

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        endpoint = str(self.settings["endpoint"]).rstrip("/")
        kind = "status" if delivery.metadata.get("kind") == "status" else "edoc"
        fields = {
            "from": str(self.settings["from_code"]),
            "to": json.dumps(str(self.settings.get("to_code") or delivery.recipient)),  # JsonElement.toString()
            "servicetype": SERVICE_TYPE,
            "messagetype": kind,
            "hash-file": sdk_file_hash(delivery.content),
        }
        try:
            secret = self._secret()
        except OSError as exc:
            return DeliveryResult("retryable", f"the axis secret cannot be read ({exc.strerror}): fix secret_file")
        client = AxisClient(endpoint, str(self.settings["systemid"]), secret, timeout=self.deadline)
        try:
            found = client.call(
                "sendEdoc",
                fields,
                body=delivery.content + b"\r\n",  # what the SDK's MultipartUtility writes: the bytes, then CRLF
                content_type="application/octet-stream",
                max_answer=MAX_ANSWER_BYTES,
            )
        except AxisUnavailable as exc:
            return DeliveryResult("retryable", f"the axis did not take it: {exc}")
        except AxisRefused as exc:
            return DeliveryResult("permanent", f"the axis refused it: {exc}")
        if not found.get("DocId"):
            return DeliveryResult("retryable", "the axis answered OK without a DocId")
        doc_id = str(found["DocId"])
        return DeliveryResult("delivered", f"the axis accepted it as {doc_id}", reference=doc_id)
