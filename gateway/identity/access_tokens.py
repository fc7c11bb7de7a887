"""The gateway's own short-lived access tokens (JWT, ES256, RFC 9068 ``at+jwt``), and their JWKS."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.identity.claims import decode_verified, peek
from gateway.policy import Refusal

if TYPE_CHECKING:
    from gateway.keyring import KeyRing

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
DELIVERY_TOKEN_TYPE = "gateway-delivery+jwt"  # noqa: S105 - a media type, not a secret
DELIVERY_TOKEN_TTL = 120
CODE = "invalid-token"
LEEWAY = 5
VERIFIED_CACHE = 4096  # tokens whose signature and claims were checked, per process


@dataclass(frozen=True)
class _Verified:
    agency: str
    expires: int
    key: object  # the ring's key object it verified with: gone from the ring, the token stops working


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int
    scope: str


@dataclass(frozen=True)
class TokenAuthority:
    """Signs with the ring's current token key; verifies with every key the ring accepts now (a rotation's
    old and new key during its overlap), so tokens issued before a rotation keep working until they expire."""

    ring: KeyRing
    issuer: str
    ttl: int
    # An agency presents the same token with every request for up to an hour: its signature and claims
    # are checked once, then only its expiry and that its key is still in the ring (a rotation's end or
    # a removed key ends it as before).  Refusals are never cached.
    _verified: dict[str, _Verified] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        return self.ring.keys.token_key

    @property
    def kid(self) -> str:
        return self.ring.keys.token_kid

    def issue(self, agency: str, scope: str = "documents") -> AccessToken:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": agency,
            "aud": self.issuer,
            "client_id": agency,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
            "scope": scope,
        }
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid, "typ": TOKEN_TYPE})
        return AccessToken(token, self.ttl, scope)

    def delivery_token(self, audience: str, recipient: str, document_id: str, sha256: str) -> str:
        """What the gateway presents when it pushes a document: receivers check it against our JWKS."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": recipient,
            "aud": audience,
            "iat": now,
            "exp": now + DELIVERY_TOKEN_TTL,
            "jti": uuid.uuid4().hex,
            "document_id": document_id,
            "sha256": sha256,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid, "typ": DELIVERY_TOKEN_TYPE})

    def verify(self, token: str) -> str:
        """Return the agency code the token was issued to, or raise :class:`Refusal` ``invalid-token``."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known.expires + LEEWAY and known.key in self.ring.snapshot.token_keys.values():
                return known.agency
            self._verified.pop(token, None)  # expired or its key left the ring: checked in full again
        header = peek(token, CODE).header
        key = self.ring.snapshot.token_keys.get(str(header.get("kid")))
        if header.get("typ") != TOKEN_TYPE or key is None:
            raise Refusal(CODE, "not an access token issued by this gateway")
        claims = decode_verified(
            token,
            key,
            str(header.get("alg")),
            code=CODE,
            audience=self.issuer,
            issuer=self.issuer,
            required=("exp", "iat", "sub", "jti"),
            leeway=LEEWAY,
        )
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.pop(next(iter(self._verified), ""), None)  # the oldest
        self._verified[token] = _Verified(str(claims["sub"]), int(claims["exp"]), key)
        return str(claims["sub"])

    def jwks(self) -> dict[str, Any]:
        """Every key that verifies now, the current one first: receivers and agencies pick by ``kid``."""
        keys = []
        for kid, public in self.ring.snapshot.token_keys.items():
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
            jwk.update(kid=kid, use="sig", alg="ES256")
            keys.append(jwk)
        return {"keys": keys}
