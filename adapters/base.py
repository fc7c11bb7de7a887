"""The one interface every transport implements.

A delivery worker hands an adapter one document for one recipient; the adapter answers with a
:class:`DeliveryResult`.  Adapters never decide about retries: they say whether a failure is worth
retrying (``retryable``: timeouts, 5xx, refused connections) or not (``permanent``: the receiver
says the address is wrong or the document invalid), and the worker applies the agency's limits.

Every adapter must make redelivery of the same ``document_uuid`` harmless: a worker that died after
delivering but before recording it will deliver again (at-least-once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

Outcome = Literal["delivered", "awaiting-pull", "awaiting-receipt", "retryable", "permanent"]

# Settings every adapter takes: how often and how patiently the worker retries for this agency.
COMMON_SETTINGS: dict[str, type] = {"max_attempts": int, "retry_base_seconds": int, "retry_max_seconds": int}


class AdapterSettingsError(ValueError):
    """An agency's adapter settings are not valid for that adapter; the message says which."""


@dataclass(frozen=True)
class Delivery:
    """One document for one recipient.  ``document_uuid`` is the id receivers deduplicate on.

    For :meth:`Adapter.check_receipt` the worker leaves ``content`` and ``seal`` empty: a receipt is
    found by the document id and ``reference``, and polls should not read the bytes again.
    """

    document_uuid: str
    recipient: str
    content: bytes
    seal: bytes
    metadata: Mapping[str, Any]
    reference: str | None = None  # what an earlier attempt left, e.g. a stream entry id


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    detail: str = ""
    receipt: bytes | None = None
    reference: str | None = None  # kept with the route for later receipt checks


class GatewaySide(Protocol):
    """What an adapter may ask of the gateway, without knowing how the gateway does it."""

    def bearer_token(self, audience: str, delivery: Delivery) -> str:
        """A short-lived JWT the gateway signs to authenticate itself to the receiver."""
        ...

    def verify_receipt(self, receipt: bytes, delivery: Delivery) -> None:
        """Raise ``ValueError`` unless ``receipt`` is the recipient's signed acknowledgement of ``delivery``."""
        ...


@dataclass(frozen=True)
class SettingSpec:
    kind: type
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Deployment:
    """What the deployment, not the agency's settings, decides for every adapter.

    ``attempt_seconds`` bounds one delivery attempt in wall-clock time; the worker keeps it well
    below its lease so a receiver that drips its answer cannot hold the route past the lease and
    make other workers claim it too (issue 10, finding 5).
    """

    demo: bool = False
    attempt_seconds: float = 30.0


@dataclass
class Adapter:
    """Base class: validated settings in, :class:`DeliveryResult` out."""

    name: ClassVar[str]
    pull: ClassVar[bool] = False  # True: the recipient fetches; no worker delivers
    settings_spec: ClassVar[Mapping[str, SettingSpec]] = {}

    settings: Mapping[str, Any]
    gateway: GatewaySide | None = field(default=None, repr=False)
    deployment: Deployment = field(default_factory=Deployment)

    def __post_init__(self) -> None:
        self.settings = {**self.defaults(), **self.settings}
        self.validate_settings(self.settings, self.deployment)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {k: s.default for k, s in cls.settings_spec.items() if s.default is not None}

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any], deployment: Deployment = Deployment()) -> None:
        allowed = {**{k: SettingSpec(t) for k, t in COMMON_SETTINGS.items()}, **cls.settings_spec}
        unknown = set(settings) - set(allowed)
        if unknown:
            raise AdapterSettingsError(
                f"adapter {cls.name!r} does not take setting(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        for key, spec in allowed.items():
            if key not in settings:
                if spec.required:
                    raise AdapterSettingsError(f"adapter {cls.name!r} needs the setting {key}")
                continue
            value = settings[key]
            if spec.kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise AdapterSettingsError(f"adapter {cls.name!r}: {key} must be a whole number of at least 1")
            if spec.kind is str and (not isinstance(value, str) or not value):
                raise AdapterSettingsError(f"adapter {cls.name!r}: {key} must be a non-empty string")
            if spec.kind is float and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise AdapterSettingsError(f"adapter {cls.name!r}: {key} must be a positive number")
            if spec.kind is bool and not isinstance(value, bool):
                raise AdapterSettingsError(f"adapter {cls.name!r}: {key} must be true or false")
        cls.check_settings(settings, deployment)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], deployment: Deployment) -> None:
        """Adapter-specific checks beyond types (a URL's scheme, a folder's existence)."""

    def deliver(self, delivery: Delivery) -> DeliveryResult:
        raise NotImplementedError

    def check_receipt(self, delivery: Delivery) -> DeliveryResult:
        """For ``awaiting-receipt`` deliveries: ``delivered`` with the receipt once the agency has one."""
        return DeliveryResult("delivered", "no receipt to wait for")

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"
