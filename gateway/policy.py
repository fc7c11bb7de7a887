"""Small verification objects composed with ``AllOf`` / ``AnyOf``.

Every trust decision the gateway makes (client assertions, access tokens, signatures, routing
permissions) is written as a list of checks that each either pass silently or raise a
:class:`Refusal` carrying a stable machine-readable code and a human reason.  Composing them
keeps each rule small enough to read on its own, in the manner of sigstore-python's
``verify/policy.py``.  An empty policy is refused at construction: "no rules" must never mean
"everything passes".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

S = TypeVar("S", contravariant=True)
T = TypeVar("T")


class Refusal(Exception):
    """A decision not to accept some input, with the stable ``code`` clients script against.

    ``reason`` is for people (and the audit log); it never contains secrets, tokens or full
    citizen ID numbers.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class RateLimited(Refusal):
    """Too many requests: the refusal says when to try again."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__("rate-limited", reason)
        self.retry_after = retry_after


class Check(Protocol[S]):
    """One rule: ``verify`` returns when the subject satisfies it and raises :class:`Refusal` otherwise."""

    def verify(self, subject: S) -> None: ...


class AllOf(Generic[T]):
    """Every check must pass; the first failure is reported."""

    def __init__(self, checks: Sequence[Check[T]]) -> None:
        if not checks:
            raise ValueError("AllOf needs at least one check: an empty policy would accept anything")
        self._checks = tuple(checks)

    def verify(self, subject: T) -> None:
        for check in self._checks:
            check.verify(subject)


class AnyOf(Generic[T]):
    """At least one check must pass; when none does, every reason is reported together."""

    def __init__(self, checks: Sequence[Check[T]], *, code: str) -> None:
        if not checks:
            raise ValueError("AnyOf needs at least one check: an empty policy would refuse everything")
        self._checks = tuple(checks)
        self._code = code

    def verify(self, subject: T) -> None:
        reasons: list[str] = []
        for check in self._checks:
            try:
                check.verify(subject)
            except Refusal as refusal:
                reasons.append(refusal.reason)
            else:
                return
        raise Refusal(self._code, "; ".join(reasons))
