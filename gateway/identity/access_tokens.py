"""The gateway's own short-lived access tokens (JWT, ES256, RFC 9068 ``at+jwt``), and their JWKS."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
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
            leeway=5,
        )
        return str(claims["sub"])

    def jwks(self) -> dict[str, Any]:
        """Every key that verifies now, the current one first: receivers and agencies pick by ``kid``."""
        keys = []
        for kid, public in self.ring.snapshot.token_keys.items():
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
            jwk.update(kid=kid, use="sig", alg="ES256")
            keys.append(jwk)
        return {"keys": keys}
