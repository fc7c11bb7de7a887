"""OAuth 2.0 client credentials with ``private_key_jwt`` client assertions (RFC 7523 §3, RFC 7521 §4.2).

A departmental system proves it holds the private key registered for its agency by signing a
short-lived JWT: ``iss`` = ``sub`` = its agency code, ``aud`` = our token endpoint, a unique
``jti`` (refused on reuse) and a short ``exp``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.identity.claims import decode_verified, peek
from gateway.identity.state import ReplayCache
from gateway.policy import AllOf, Refusal
from gateway.trust.pki import PublicKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CODE = "invalid-client"
MAX_JTI = 255


@dataclass(frozen=True)
class Assertion:
    client_id: str
    claims: Mapping[str, Any]
    now: int


class SubjectIsIssuer:
    def verify(self, a: Assertion) -> None:
        if a.claims.get("sub") != a.client_id:
            raise Refusal(CODE, "assertion sub must equal iss (the agency code)")


class AudienceOnlyThisGateway:
    """Every ``aud`` value must name this gateway: an assertion also addressed to another party could be
    replayed there (PyJWT accepts a list when any one value matches; national-ID tokens refuse extras too)."""

    def __init__(self, audiences: Sequence[str]) -> None:
        self._audiences = frozenset(audiences)

    def verify(self, a: Assertion) -> None:
        aud = a.claims.get("aud")
        values = aud if isinstance(aud, list) else [aud]
        strangers = [v for v in values if v not in self._audiences]
        if strangers:
            expected = sorted(self._audiences)[0]
            raise Refusal(
                CODE,
                f"assertion aud must be this gateway's token endpoint {expected} and nothing else "
                f"(it names {str(strangers[0])[:120]!r}); "
                f"make it with `gateway client assertion --audience {expected}`",
            )


class ShortLived:
    def __init__(self, max_lifetime: int) -> None:
        self._max = max_lifetime

    def verify(self, a: Assertion) -> None:
        exp, iat = a.claims.get("exp"), a.claims.get("iat", a.now)
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise Refusal(CODE, "assertion exp and iat must be numbers")
        if exp - iat > self._max or exp - a.now > self._max:
            raise Refusal(CODE, f"assertion lifetime exceeds {self._max} seconds")


class UniqueJti:
    def __init__(self, cache: ReplayCache) -> None:
        self._cache = cache

    def verify(self, a: Assertion) -> None:
        jti = a.claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= MAX_JTI:
            raise Refusal(CODE, f"assertion jti must be a string of 8 to {MAX_JTI} characters")
        if not self._cache.first_use(f"client-assertion:{a.client_id}", jti, int(a.claims["exp"]) + 60):
            raise Refusal(CODE, "assertion jti was already used (replay)")


class ClientAssertionVerifier:
    """Verifies an assertion against the client key registered for the agency it names."""

    def __init__(
        self,
        *,
        token_endpoint: str,
        issuer_url: str,
        client_key: Callable[[str], Sequence[PublicKey]],
        replay: ReplayCache,
        max_lifetime: int = 300,
    ) -> None:
        self._audiences = [token_endpoint, issuer_url]
        self._client_key = client_key
        self._policy: AllOf[Assertion] = AllOf(
            [SubjectIsIssuer(), AudienceOnlyThisGateway(self._audiences), ShortLived(max_lifetime), UniqueJti(replay)]
        )

    def verify(self, assertion: str, client_id: str | None = None) -> str:
        """Return the authenticated agency code or raise :class:`Refusal` ``invalid-client``."""
        unverified = peek(assertion, CODE)
        issuer = unverified.claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise Refusal(CODE, "assertion lacks iss")
        if client_id is not None and client_id != issuer:
            raise Refusal(CODE, "client_id does not match the assertion's iss")
        keys = self._client_key(issuer)
        if not keys:
            raise Refusal(
                CODE,
                "no enabled agency with a client key is registered with this code (one reached through the "
                "national axis has none: it does not log in here)",
            )
        claims: dict[str, Any] | None = None
        failure: Refusal | None = None
        for key in keys:  # the current key, then a rotated-out one still within its overlap
            try:
                claims = decode_verified(
                    assertion,
                    key,
                    str(unverified.header.get("alg")),
                    code=CODE,
                    audience=self._audiences,
                    required=("exp", "iss", "sub", "aud", "jti"),
                )
                break
            except Refusal as refusal:
                failure = failure or refusal
        if claims is None:
            assert failure is not None
            raise failure
        self._policy.verify(Assertion(issuer, claims, int(time.time())))
        return issuer
