"""Compact JWS (RFC 7515) read strictly, and the one key allowed to verify it chosen from a JWK Set.

National-ID tokens are the citizen's key to every procedure, so the signature layer accepts less
than general-purpose libraries do: only the compact serialization; canonical unpadded base64url
(so a token has exactly one encoding); JSON without duplicate members; the key chosen *only* by
``kid`` from the issuer's own JWK Set and only when its ``kty``, ``alg``, ``use`` and ``key_ops``
all allow verifying with the token's algorithm (a key published for encryption never verifies);
RSA ≥ 2048 bits and EC ≥ P-256; keys carried in the header (``jwk``, ``jku``, ``x5u``, ``x5c``)
are ignored; an unknown ``crit`` is refused.  The arithmetic is cryptography's.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gateway.json_input import parse_json
from gateway.policy import Refusal
from gateway.trust.keypolicy import check_public_key_strength

MAX_TOKEN_BYTES = 8 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "ES256": (ec.SECP256R1, 32),
    "ES384": (ec.SECP384R1, 48),
    "ES512": (ec.SECP521R1, 66),
}
_CRV: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
SUPPORTED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
UNDERSTOOD_CRIT: frozenset[str] = frozenset()


def b64url_decode(segment: str, code: str, what: str) -> bytes:
    """Unpadded base64url in its one canonical form (RFC 7515 §2), or a :class:`Refusal`."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise Refusal(code, f"{what} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise Refusal(code, f"{what} is not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
        raise Refusal(code, f"{what} is not canonical base64url")
    return raw


def strict_json_object(raw: bytes, code: str, what: str) -> dict[str, Any]:
    try:
        value = parse_json(raw)
    except ValueError as exc:
        raise Refusal(code, f"{what} is not a JSON object without duplicate members: {exc}") from None
    if not isinstance(value, dict):
        raise Refusal(code, f"{what} is not a JSON object")
    return value


@dataclass(frozen=True)
class CompactJws:
    header: Mapping[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header.get("alg", ""))

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def parse_compact(token: str, code: str) -> CompactJws:
    if len(token) > MAX_TOKEN_BYTES:
        raise Refusal(code, f"token is longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise Refusal(code, "token must be a compact JWS (three base64url parts)")
    header = strict_json_object(b64url_decode(parts[0], code, "header"), code, "header")
    payload = b64url_decode(parts[1], code, "payload")
    signature = b64url_decode(parts[2], code, "signature")
    crit = header.get("crit")
    if crit is not None and (
        not isinstance(crit, list) or not crit or any(not isinstance(c, str) or c not in UNDERSTOOD_CRIT for c in crit)
    ):
        raise Refusal(code, f"critical header parameter(s) not understood: {crit!r}")
    return CompactJws(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


# --- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Jwk:
    kid: str
    kty: str
    alg: str | None
    use: str | None
    key_ops: tuple[str, ...] | None
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey

    def allows(self, alg: str) -> str | None:
        """``None`` when this key may verify ``alg``; otherwise why not."""
        if self.use is not None and self.use != "sig":
            return f"key {self.kid!r} is published for use={self.use!r}, not signatures"
        if self.key_ops is not None and "verify" not in self.key_ops:
            return f"key {self.kid!r} key_ops do not include verify"
        if self.alg is not None and self.alg != alg:
            return f"key {self.kid!r} is for {self.alg}, the token says {alg}"
        if alg[:2] in ("RS", "PS") and self.kty != "RSA":
            return f"{alg} needs an RSA key; {self.kid!r} is {self.kty}"
        if alg.startswith("ES"):
            if self.kty != "EC" or not isinstance(self.public_key, ec.EllipticCurvePublicKey):
                return f"{alg} needs an EC key; {self.kid!r} is {self.kty}"
            if not isinstance(self.public_key.curve, _CURVES[alg][0]):
                return f"{alg} needs curve {_CURVES[alg][0].name}; {self.kid!r} is on {self.public_key.curve.name}"
        return None


def _int(member: Any, what: str) -> int:
    if not isinstance(member, str):
        raise ValueError(f"{what} is missing")
    raw = b64url_decode(member, "jwk-invalid", what)
    return int.from_bytes(raw, "big")


def load_jwk(data: Mapping[str, Any]) -> Jwk:
    """A public signing key from its JWK; :class:`Refusal` ``jwk-invalid`` for anything unusable."""
    try:
        kid, kty = data.get("kid"), data.get("kty")
        if not isinstance(kid, str) or not kid:
            raise ValueError("keys without a kid are never selected")
        if any(k in data for k in ("d", "p", "q", "dp", "dq", "qi", "k")):
            raise ValueError("a JWK Set for verification must not contain private or symmetric key material")
        public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
        if kty == "RSA":
            public = rsa.RSAPublicNumbers(_int(data.get("e"), "e"), _int(data.get("n"), "n")).public_key()
        elif kty == "EC":
            curve = _CRV.get(str(data.get("crv")))
            if curve is None:
                raise ValueError(f"curve {data.get('crv')!r} is not allowed; use P-256, P-384 or P-521")
            public = ec.EllipticCurvePublicNumbers(
                _int(data.get("x"), "x"), _int(data.get("y"), "y"), curve
            ).public_key()
        else:
            raise ValueError(f"key type {kty!r} cannot verify asymmetric signatures")
        check_public_key_strength(public, "jwk-invalid")
        ops = data.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or not all(isinstance(o, str) for o in ops)):
            raise ValueError("key_ops must be a list of strings")
        alg, use = data.get("alg"), data.get("use")
        return Jwk(
            kid,
            str(kty),
            alg if isinstance(alg, str) else None,
            use if isinstance(use, str) else None,
            tuple(ops) if ops is not None else None,
            public,
        )
    except Refusal as refusal:
        raise Refusal("jwk-invalid", refusal.reason) from None
    except (ValueError, TypeError) as exc:
        raise Refusal("jwk-invalid", str(exc)) from None


@dataclass(frozen=True)
class JwkSet:
    keys: Mapping[str, Jwk]
    rejected: tuple[str, ...] = ()  # why published keys were left out, for operators

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> JwkSet:
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise Refusal("jwk-invalid", "a JWK Set needs a keys array")
        keys: dict[str, Jwk] = {}
        rejected: list[str] = []
        for entry in entries:
            try:
                key = load_jwk(entry if isinstance(entry, dict) else {})
            except Refusal as refusal:
                rejected.append(refusal.reason)
                continue
            if key.kid in keys:
                rejected.append(f"kid {key.kid!r} appears twice; neither copy is used")
                keys.pop(key.kid)
                continue
            keys[key.kid] = key
        return cls(keys, tuple(rejected))

    def select(self, jws: CompactJws, allowed: Sequence[str], code: str) -> Jwk:
        alg = jws.alg
        if alg not in allowed or alg not in SUPPORTED_ALGORITHMS:
            raise Refusal(code, f"algorithm {alg or 'none'!r} is not allowed (allowed: {', '.join(allowed)})")
        if jws.kid is None:
            raise Refusal(code, "token header has no kid; keys are chosen only by kid")
        key = self.keys.get(jws.kid)
        if key is None:
            raise Refusal(code, "no key with the token's kid in the issuer's key set")
        problem = key.allows(alg)
        if problem is not None:
            raise Refusal(code, problem)
        return key


def verify_signature(jws: CompactJws, key: Jwk, code: str) -> None:
    alg = jws.alg
    digest = _HASHES[alg[2:]]()
    try:
        if alg.startswith("RS") and isinstance(key.public_key, rsa.RSAPublicKey):
            key.public_key.verify(jws.signature, jws.signing_input, padding.PKCS1v15(), digest)
        elif alg.startswith("PS") and isinstance(key.public_key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)  # RFC 7518 §3.5
            key.public_key.verify(jws.signature, jws.signing_input, pss, digest)
        elif alg.startswith("ES") and isinstance(key.public_key, ec.EllipticCurvePublicKey):
            size = _CURVES[alg][1]
            if len(jws.signature) != 2 * size:
                raise InvalidSignature
            r = int.from_bytes(jws.signature[:size], "big")
            s = int.from_bytes(jws.signature[size:], "big")
            key.public_key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(digest))
        else:
            raise InvalidSignature
    except InvalidSignature:
        raise Refusal(code, "token signature does not verify") from None
