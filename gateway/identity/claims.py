"""Reading a compact JWT safely before and after its signature is checked.

PyJWT does the cryptography; these helpers add what a relying party must do around it: a size
cap before any parsing, an algorithm allow-list tied to the key's type, and no trust in header
keys (``jwk``, ``jku``, ``x5u``, ``x5c`` are ignored: keys only ever come from our registry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.policy import Refusal
from gateway.trust.pki import PublicKey

MAX_TOKEN_BYTES = 8 * 1024
RSA_ALGORITHMS = frozenset({"RS256", "PS256"})
EC_ALGORITHMS = frozenset({"ES256"})


@dataclass(frozen=True)
class Unverified:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]


def peek(token: str, code: str) -> Unverified:
    """Header and claims without verification: only to find which key to verify with.

    Read as :mod:`gateway.json_input` reads JSON, once, instead of by PyJWT's unverified decode:
    its ``json.loads`` keeps the last of a member given twice, so ``{"iss": "000.00.04.H29", …,
    "iss": "000.00.00.H29"}`` was one agency to a log that keeps the first and another to us, and
    two ``jti`` hid one from the replay check (issue 11 review, round 2)."""
    from gateway.identity.jws import b64url_decode, strict_json_object

    if len(token) > MAX_TOKEN_BYTES:
        raise Refusal(code, f"token is longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise Refusal(code, "not a well-formed JWT: it must have three dot-separated parts")
    header, claims = (
        strict_json_object(b64url_decode(segment, code, what), code, what)
        for segment, what in zip(parts[:2], ("header", "claims"), strict=True)
    )
    if not isinstance(header.get("kid", ""), str):  # as PyJWT checks it: a kid is looked up by value
        raise Refusal(code, "not a well-formed JWT: the header's kid must be a string")
    if header.get("crit"):
        raise Refusal(code, "critical header parameters are not supported")
    return Unverified(header, claims)


def algorithms_for(key: PublicKey) -> frozenset[str]:
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return EC_ALGORITHMS
    return frozenset()


def decode_verified(
    token: str,
    key: PublicKey,
    alg: str,
    *,
    code: str,
    audience: str | list[str] | None = None,
    issuer: str | None = None,
    required: tuple[str, ...] = ("exp", "iat", "jti"),
    leeway: int = 30,
) -> dict[str, Any]:
    if alg not in algorithms_for(key):
        raise Refusal(code, f"algorithm {alg!r} is not allowed for this key")
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": list(required), "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise Refusal(code, "token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Refusal(code, "token is not valid yet") from None
    except jwt.InvalidAudienceError:
        wanted = audience if isinstance(audience, str) else ", ".join(audience or [])
        raise Refusal(code, f"token audience is not this gateway (expected {wanted[:200]})") from None
    except jwt.InvalidIssuerError:
        raise Refusal(code, "token issuer is not accepted") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Refusal(code, f"token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise Refusal(code, "token signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise Refusal(code, f"token is not valid: {exc}") from None
    except RecursionError:
        raise Refusal(code, "token is not valid: a segment is nested too deeply") from None
