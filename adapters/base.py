"""The one interface every transport implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal


class AdapterSettingsError(ValueError):
    """An agency's adapter settings are not valid for that adapter; the message says which."""


@dataclass(frozen=True)
class Delivery:
    """One document for one recipient.  ``document_uuid`` is the id receivers deduplicate on."""

    document_uuid: str
    recipient: str
    content: bytes
    seal: bytes
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["delivered", "awaiting-pull", "retryable", "permanent"]
    detail: str = ""
    receipt: bytes | None = None


class Adapter:
    name: ClassVar[str]
    settings_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.validate_settings(settings)
        self.settings = dict(settings)

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> None:
        unknown = set(settings) - cls.settings_keys
        if unknown:
            allowed = ", ".join(sorted(cls.settings_keys)) or "none"
            raise AdapterSettingsError(
                f"adapter {cls.name!r} does not take setting(s) {', '.join(sorted(unknown))}; allowed: {allowed}"
            )

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        raise NotImplementedError

    def healthy(self) -> bool:
        return True
