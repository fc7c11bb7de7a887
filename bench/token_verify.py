"""National-ID token verification per core: our full policy against plain PyJWT decode of the same token.

Method: one RS256 token shaped like a VNeID access token (2048-bit key, the usual claims), verified
in a loop for a fixed time on one core by (a) the gateway's verifier — strict compact-JWS parse,
duplicate-member check, key by kid, signature, every claim check, personal-ID rules, keyed hash of
the ID — (b) ``jwt.decode`` with the key, algorithm and audience given, and (c) the raw RSA
verification alone (the floor).  Ratios are against (b) and (c), measured in the same run.

    .venv/bin/python bench/token_verify.py [--seconds 2] [--quick]
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bench.measure import Figure, rate
from bench.report import timed_command
from gateway.identity.jwks import StaticKeySource
from gateway.identity.jws import JwkSet
from gateway.identity.national_id import IssuerPolicy, NationalIdVerifier

NAME = "token"
ISSUER, AUDIENCE, KID = "https://sso.example.gov.vn", "interconnect-gateway", "k1"


class NoReplay:
    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        return True


def figures(*, seconds: float = 2.0, repetitions: int = 3) -> list[Figure]:
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
    timing = {"seconds": seconds, "repetitions": repetitions}
    ours = rate(lambda: verifier.verify(token), **timing)
    plain = rate(lambda: jwt.decode(token, public, algorithms=["RS256"], audience=AUDIENCE), **timing)
    floor = rate(
        lambda: public.verify(signature, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()), **timing
    )
    common = {
        "benchmark": NAME,
        "unit": "/s",
        "value": ours.median,
        "spread": ours.spread,
        "method": f"RS256 2048-bit, token of {len(token)} bytes, one core, warm-up 0.5 s, "
        f"{repetitions} × {seconds:g} s, median (min–max)",
    }
    return [
        Figure(
            name="national-ID token, full policy", baseline="PyJWT jwt.decode", baseline_value=plain.median, **common
        ),
        Figure(
            name="national-ID token, against the floor",
            baseline="raw RSA PKCS#1 v1.5 verify",
            baseline_value=floor.median,
            **common,
        ),
    ]


def run(quick: bool) -> list[Figure]:
    return figures(seconds=0.2, repetitions=1) if quick else figures()


def main() -> None:
    timed_command(__doc__.split("\n")[0], figures)


if __name__ == "__main__":
    main()
