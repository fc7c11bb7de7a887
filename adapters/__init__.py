"""Connector adapters: one module per transport, chosen by name from an agency's registration.

Like kombu's transports: a small base class (:mod:`adapters.base`), one module per transport, a
table from names to classes, and a helpful error naming the closest known name.
"""

from __future__ import annotations

import difflib
import importlib

from adapters.base import Adapter, AdapterSettingsError, Delivery, DeliveryResult, Deployment, GatewaySide

ADAPTERS: dict[str, str] = {
    "inbox": "adapters.inbox:InboxAdapter",
    "http": "adapters.http:HttpAdapter",
    "filesystem": "adapters.filesystem:FilesystemAdapter",
    "redis-stream": "adapters.redis_stream:RedisStreamAdapter",
    "vxp": "adapters.vxp:VxpAdapter",
}


class UnknownAdapter(LookupError):
    pass


def get_adapter_class(name: str) -> type[Adapter]:
    try:
        target = ADAPTERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, ADAPTERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownAdapter(f"unknown adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}.{hint}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert isinstance(cls, type) and issubclass(cls, Adapter)
    return cls


__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterSettingsError",
    "Delivery",
    "DeliveryResult",
    "Deployment",
    "GatewaySide",
    "UnknownAdapter",
    "get_adapter_class",
]
