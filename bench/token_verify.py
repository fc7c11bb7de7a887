"""National-ID token verification per core: our full policy against plain PyJWT decode of the same token.

Method: one RS256 token shaped like a VNeID access token (2048-bit key, the usual claims), verified
in a loop for a fixed time on one core by (a) the gateway's verifier — strict compact-JWS parse,
duplicate-member check, key by kid, signature, every claim check, personal-ID rules, keyed hash of
the ID — (b) ``jwt.decode`` with the key, algorithm and audience given, and (c) the raw RSA
verification alone (the floor).  Ratios are against (b) and (c), measured in the same run.

    .venv/bin/python bench/token_verify.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.identity.jwks import StaticKeySource
from gateway.identity.jws import JwkSet
from gateway.identity.national_id import IssuerPolicy, NationalIdVerifier

ISSUER, AUDIENCE, KID = "https://sso.example.gov.vn", "interconnect-gateway", "k1"


class NoReplay:
    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        return True


def rate(label: str, work: Callable[[], object], seconds: float) -> float:
    work()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            work()
        count += 50
    per_second = count / (time.perf_counter() - start)
    print(f"{label:<44} {per_second:9.0f} /s", flush=True)
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u-1",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "SoDinhDanh": "079203001234",
        "HoVaTen": "Nguyễn Văn An",
        "NgayThangNamSinh": "20030412",
        "acr": "2",
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID, "typ": "at+jwt"})
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=KID, use="sig", alg="RS256")
    verifier = NationalIdVerifier(
        [(IssuerPolicy(issuer=ISSUER, audiences=(AUDIENCE,)), StaticKeySource(JwkSet.from_json({"keys": [jwk]})))],
        NoReplay(),
        b"p" * 32,
    )
    public = key.public_key()
    signing_input, _, signature_b64 = token.rpartition(".")
    signature = jwt.utils.base64url_decode(signature_b64)

    print(f"RS256, 2048-bit key, token of {len(token)} bytes, one core, {args.seconds:.0f} s each")
    ours = rate("gateway NationalIdVerifier.verify", lambda: verifier.verify(token), args.seconds)
    plain = rate(
        "PyJWT jwt.decode (key, alg, aud given)",
        lambda: jwt.decode(token, public, algorithms=["RS256"], audience=AUDIENCE),
        args.seconds,
    )
    floor = rate(
        "raw RSA PKCS#1 v1.5 verify (floor)",
        lambda: public.verify(signature, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()),
        args.seconds,
    )
    print(f"{'ratio gateway / PyJWT':<44} {ours / plain:9.2f}")
    print(f"{'ratio gateway / raw RSA':<44} {ours / floor:9.2f}")


if __name__ == "__main__":
    main()
