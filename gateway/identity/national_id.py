"""Verifying national electronic identity tokens (VNeID-style OpenID Connect tokens) as strictly as the
best national e-ID relying parties do.

A token passes the JWS layer (:mod:`gateway.identity.jws`: strict parse, key by ``kid`` from the
issuer's key set, allowed algorithm, signature), then every check of its issuer's policy below,
each refusing with its own stable code and reason.  The result is a :class:`CitizenIdentity`
carrying the assurance level; the full personal ID never leaves it unmasked except to build a
dossier for the agencies that handle it.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.identity.jwks import JwksUnavailable, KeySource
from gateway.identity.jws import CompactJws, parse_compact, strict_json_object, verify_signature
from gateway.identity.personal_id import check_personal_id, hashed, mask
from gateway.identity.state import ReplayCache
from gateway.policy import AllOf, Check, Refusal

DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256")
MAX_LEEWAY = 60


@dataclass(frozen=True)
class ClaimNames:
    personal_id: str = "SoDinhDanh"
    full_name: str = "HoVaTen"
    birth_date: str = "NgayThangNamSinh"
    level: str = "acr"


@dataclass(frozen=True)
class IssuerPolicy:
    """One trusted national-ID issuer, as configured by the operator."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: int = 30
    claims: ClaimNames = field(default_factory=ClaimNames)
    acr_levels: Mapping[str, int] = field(default_factory=lambda: {"1": 1, "2": 2})
    trusted_extra_audiences: tuple[str, ...] = ()
    client_id: str | None = None
    single_use: bool = False
    token_types: tuple[str, ...] = ("JWT", "at+jwt")

    def __post_init__(self) -> None:
        if not self.audiences:
            raise ValueError(f"issuer {self.issuer}: at least one audience is required")
        if not 0 <= self.leeway <= MAX_LEEWAY:
            raise ValueError(f"issuer {self.issuer}: leeway must be between 0 and {MAX_LEEWAY} seconds")
        bad = [a for a in self.algorithms if a == "none" or a.startswith("HS")]
        if bad or not self.algorithms:
            raise ValueError(f"issuer {self.issuer}: algorithms must be asymmetric (never none or HMAC): {bad}")
        if not self.acr_levels or any(level not in (1, 2) for level in self.acr_levels.values()):
            raise ValueError(f"issuer {self.issuer}: acr_levels must map acr values to level 1 or 2")


@dataclass(frozen=True)
class CitizenIdentity:
    issuer: str
    subject: str
    personal_id: str
    full_name: str
    birth_date: str | None
    level: int
    personal_id_hash: str
    expires_at: int | None = None  # the token's exp: a session built on this login ends by then

    @property
    def masked_id(self) -> str:
        return mask(self.personal_id)

    def public_view(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "personal_id": self.masked_id,
            "full_name": self.full_name,
            "birth_date": self.birth_date,
            "level": self.level,
        }


@dataclass(frozen=True)
class Presented:
    """A token after its signature verified: what the claim checks look at."""

    jws: CompactJws
    claims: Mapping[str, Any]
    now: float
    expected_nonce: str | None


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refusal("token-claims", f"{name} must be a number")
    return float(value)


class TypeAllowed:
    def __init__(self, types: Sequence[str]) -> None:
        self._types = types

    def verify(self, p: Presented) -> None:
        typ = p.jws.header.get("typ")
        if typ is not None and typ not in self._types:
            raise Refusal("token-type", f"token type {typ!r} is not accepted")


class IssuerIs:
    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def verify(self, p: Presented) -> None:
        if p.claims.get("iss") != self._issuer:
            raise Refusal("token-issuer", "iss does not match the configured issuer exactly")


class AudienceAccepted:
    def __init__(self, audiences: Sequence[str], trusted_extra: Sequence[str]) -> None:
        self._ours = set(audiences)
        self._allowed = self._ours | set(trusted_extra)

    def verify(self, p: Presented) -> None:
        aud = p.claims.get("aud")
        members = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
        if not members or not all(isinstance(m, str) for m in members):
            raise Refusal("token-audience", "aud is missing or malformed")
        if not self._ours & set(members):
            raise Refusal("token-audience", "the token is not meant for this gateway")
        untrusted = sorted(set(members) - self._allowed)
        if untrusted:
            raise Refusal(
                "token-audience", f"the token is also meant for untrusted audience(s): {', '.join(untrusted)}"
            )


class AuthorizedParty:
    def __init__(self, client_id: str | None, audiences: Sequence[str]) -> None:
        self._expected = {client_id} if client_id else set(audiences)

    def verify(self, p: Presented) -> None:
        azp = p.claims.get("azp")
        aud = p.claims.get("aud")
        if azp is None and isinstance(aud, list) and len(aud) > 1:
            raise Refusal("token-audience", "a token with several audiences must name its azp")
        if azp is not None and azp not in self._expected:
            raise Refusal("token-audience", "azp is not this gateway's client")


class TimeValid:
    def __init__(self, leeway: int) -> None:
        self._leeway = leeway

    def verify(self, p: Presented) -> None:
        exp, nbf, iat = (_number(p.claims, n) for n in ("exp", "nbf", "iat"))
        if exp is None:
            raise Refusal("token-expired", "the token has no exp")
        if p.now >= exp + self._leeway:
            raise Refusal("token-expired", "the token has expired")
        if nbf is not None and p.now + self._leeway < nbf:
            raise Refusal("token-not-yet-valid", "the token is not valid yet (nbf)")
        if iat is not None and p.now + self._leeway < iat:
            raise Refusal("token-not-yet-valid", "the token was issued in the future (iat)")


class NonceMatches:
    def verify(self, p: Presented) -> None:
        if p.expected_nonce is None:
            return
        nonce = p.claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce, p.expected_nonce):
            raise Refusal("token-nonce", "nonce does not match this login")


class NotReplayed:
    """Single-use tokens, keyed by issuer and jti (never by the token bytes)."""

    def __init__(self, issuer: str, cache: ReplayCache, leeway: int) -> None:
        self._issuer, self._cache, self._leeway = issuer, cache, leeway

    def verify(self, p: Presented) -> None:
        jti = p.claims.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= 255:
            raise Refusal("token-replayed", "this issuer's tokens are single-use and need a jti")
        if not self._cache.first_use(f"national-id:{self._issuer}", jti, int(p.claims["exp"]) + self._leeway):
            raise Refusal("token-replayed", "this single-use token was already used")


class PersonalIdWellFormed:
    def __init__(self, names: ClaimNames) -> None:
        self._names = names

    def verify(self, p: Presented) -> None:
        check_personal_id(p.claims.get(self._names.personal_id), p.claims.get(self._names.birth_date))


class LevelKnown:
    def __init__(self, names: ClaimNames, levels: Mapping[str, int]) -> None:
        self._names, self._levels = names, levels

    def verify(self, p: Presented) -> None:
        if str(p.claims.get(self._names.level)) not in self._levels:
            raise Refusal("token-level", "the token's level of assurance (acr) is not one this gateway maps")


def claim_policy(policy: IssuerPolicy, replay: ReplayCache) -> AllOf[Presented]:
    checks: list[Check[Presented]] = [
        TypeAllowed(policy.token_types),
        IssuerIs(policy.issuer),
        AudienceAccepted(policy.audiences, policy.trusted_extra_audiences),
        AuthorizedParty(policy.client_id, policy.audiences),
        TimeValid(policy.leeway),
        NonceMatches(),
        PersonalIdWellFormed(policy.claims),
        LevelKnown(policy.claims, policy.acr_levels),
    ]
    if policy.single_use:
        checks.append(NotReplayed(policy.issuer, replay, policy.leeway))
    return AllOf(checks)


@dataclass(frozen=True)
class TrustedIssuer:
    policy: IssuerPolicy
    keys: KeySource
    checks: AllOf[Presented]


class NationalIdVerifier:
    def __init__(
        self,
        issuers: Sequence[tuple[IssuerPolicy, KeySource]],
        replay: ReplayCache,
        pepper: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {p.issuer: TrustedIssuer(p, keys, claim_policy(p, replay)) for p, keys in issuers}
        self._pepper = pepper
        self._clock = clock

    @property
    def issuers(self) -> Sequence[str]:
        return list(self._issuers)

    def verify(self, token: str, *, nonce: str | None = None) -> CitizenIdentity:
        jws = parse_compact(token, "token-malformed")
        claims = strict_json_object(jws.payload, "token-malformed", "claims")
        trusted = self._issuers.get(str(claims.get("iss")))
        if trusted is None:
            raise Refusal("token-issuer", "the token's issuer is not trusted by this gateway")
        policy = trusted.policy
        try:
            keys = trusted.keys.current()
            try:
                key = keys.select(jws, policy.algorithms, "token-key")
            except Refusal:
                fresher = trusted.keys.refresh_for_unknown_kid() if jws.kid not in keys.keys else None
                if fresher is None:
                    raise
                key = fresher.select(jws, policy.algorithms, "token-key")
        except JwksUnavailable as exc:
            raise Refusal("issuer-unavailable", str(exc)) from None
        verify_signature(jws, key, "token-signature")
        trusted.checks.verify(Presented(jws, claims, self._clock(), nonce))
        names = policy.claims
        personal_id = str(claims[names.personal_id])
        birth = claims.get(names.birth_date)
        return CitizenIdentity(
            issuer=policy.issuer,
            subject=str(claims.get("sub", "")),
            personal_id=personal_id,
            full_name=str(claims.get(names.full_name, "")),
            birth_date=str(birth) if birth else None,
            level=policy.acr_levels[str(claims.get(names.level))],
            personal_id_hash=hashed(personal_id, self._pepper),
            expires_at=int(claims["exp"]),
        )
