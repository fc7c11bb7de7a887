"""Routing permissions: every recipient must be registered, enabled, and one the sender may send to.

``may_send_to`` holds agency codes or prefixes ending in ``*`` (``000.00.*`` for everything under
a province's tree, ``*`` for any registered agency).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.policy import AllOf, Refusal
from gateway.routing.registry import Agency


@dataclass(frozen=True)
class RouteRequest:
    sender: Agency
    recipients: Sequence[str]
    known: Mapping[str, Agency]


class RecipientsRegistered:
    def verify(self, r: RouteRequest) -> None:
        unknown = [code for code in r.recipients if code not in r.known]
        if unknown:
            raise Refusal("unknown-agency", f"recipient(s) not registered with this gateway: {', '.join(unknown)}")


class RecipientsEnabled:
    def verify(self, r: RouteRequest) -> None:
        disabled = [code for code in r.recipients if not r.known[code].enabled]
        if disabled:
            raise Refusal("agency-disabled", f"recipient(s) currently disabled: {', '.join(disabled)}")


class NotToSelf:
    def verify(self, r: RouteRequest) -> None:
        if r.sender.code in r.recipients:
            raise Refusal("not-permitted", "an agency cannot send a document to itself")


class SenderMaySendTo:
    def verify(self, r: RouteRequest) -> None:
        refused = [code for code in r.recipients if not may_send(r.sender.may_send_to, code)]
        if refused:
            raise Refusal("not-permitted", f"{r.sender.code} is not permitted to send to: {', '.join(refused)}")


def may_send(patterns: Sequence[str], code: str) -> bool:
    return any(code == p or (p.endswith("*") and code.startswith(p[:-1])) for p in patterns)


ROUTING_POLICY: AllOf[RouteRequest] = AllOf(
    [RecipientsRegistered(), RecipientsEnabled(), NotToSelf(), SenderMaySendTo()]
)
