"""Delivery into a Redis stream that the agency's system consumes with a consumer group.

``XADD`` puts one entry per document with the fields ``document_id``, ``recipient``, ``document``,
``seal`` and ``metadata`` (JSON).  A small Lua script adds the entry only when no entry for that
document id was added before (a marker key per document, kept for ``dedupe_days``), so a redelivery
returns the first entry's id instead of adding a second copy.  The receipt is the agency's consumer
acknowledging the entry: the group has read past it and it is no longer pending (``XACK``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import redis

from adapters.base import Adapter, AdapterSettingsError, Delivery, DeliveryResult, Deployment, SettingSpec

ADD_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
return id
"""


def _stream_id(value: str) -> tuple[int, int]:
    millis, _, sequence = value.partition("-")
    return int(millis), int(sequence or 0)


class RedisStreamAdapter(Adapter):
    name = "redis-stream"
    settings_spec: ClassVar[Mapping[str, SettingSpec]] = {
        "url": SettingSpec(str, required=True),
        "stream": SettingSpec(str, required=True),
        "group": SettingSpec(str, required=True),
        "dedupe_days": SettingSpec(int, default=90),
        "timeout_seconds": SettingSpec(float, default=5),
    }

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], deployment: Deployment) -> None:
        if not str(settings.get("url", "")).startswith(("redis://", "rediss://", "unix://")):
            raise AdapterSettingsError("adapter 'redis-stream': url must be a redis://, rediss:// or unix:// URL")

    def __post_init__(self) -> None:
        super().__post_init__()
        timeout = float(self.settings["timeout_seconds"])
        self._redis = redis.Redis.from_url(
            str(self.settings["url"]), socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._add_once = self._redis.register_script(ADD_ONCE)

    @property
    def stream(self) -> str:
        return str(self.settings["stream"])

    def _marker(self, delivery: Delivery) -> str:
        # The hash tag keeps the marker in the stream's slot on a Redis Cluster.
        return f"{{{self.stream}}}:delivered:{delivery.document_uuid}"

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        marker = self._marker(delivery)
        fields: list[str | bytes] = [
            "document_id", delivery.document_uuid,
            "recipient", delivery.recipient,
            "document", delivery.content,
            "seal", delivery.seal,
            "metadata", json.dumps(dict(delivery.metadata), ensure_ascii=False),
        ]  # fmt: skip
        try:
            entry = self._add_once(
                keys=[self.stream, marker], args=[int(self.settings["dedupe_days"]) * 86400, *fields]
            )
        except redis.RedisError as exc:
            return DeliveryResult("retryable", f"cannot add to stream {self.stream}: {type(exc).__name__}")
        reference = entry.decode() if isinstance(entry, bytes) else str(entry)
        return DeliveryResult("awaiting-receipt", f"added to {self.stream} as {reference}", reference=reference)

    def check_receipt(self, delivery: Delivery) -> DeliveryResult:
        if delivery.reference is None:
            return DeliveryResult("retryable", "no stream entry recorded for this delivery; adding it again")
        group = str(self.settings["group"])
        try:
            groups = {g["name"].decode(): g for g in self._redis.xinfo_groups(self.stream)}
            read_past = group in groups and _stream_id(groups[group]["last-delivered-id"].decode()) >= _stream_id(
                delivery.reference
            )
            if read_past:
                pending = self._redis.xpending_range(self.stream, group, delivery.reference, delivery.reference, 1)
            elif not self._redis.xrange(self.stream, delivery.reference, delivery.reference, count=1):
                # Unread and gone: lost with a Redis that keeps nothing on disk, or trimmed.  Add it again.
                self._redis.delete(self._marker(delivery))
                return DeliveryResult("retryable", f"entry {delivery.reference} is no longer in {self.stream}")
        except redis.ResponseError as exc:
            if "no such key" in str(exc).lower():  # the whole stream is gone: add the entry again
                self._redis.delete(self._marker(delivery))
                return DeliveryResult("retryable", f"stream {self.stream} no longer exists")
            return DeliveryResult("awaiting-receipt", f"stream {self.stream}: {exc}")
        except redis.RedisError as exc:
            return DeliveryResult("awaiting-receipt", f"cannot read stream {self.stream}: {type(exc).__name__}")
        if not read_past or pending:
            return DeliveryResult("awaiting-receipt", f"{group} has not acknowledged {delivery.reference} yet")
        receipt = json.dumps({"stream": self.stream, "group": group, "entry": delivery.reference})
        return DeliveryResult("delivered", f"{group} acknowledged {delivery.reference}", receipt=receipt.encode())

    def healthy(self) -> tuple[bool, str]:
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            return False, f"redis: {type(exc).__name__}"
        return True, "redis answers"
