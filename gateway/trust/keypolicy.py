"""Which public keys are strong enough to verify anything: RSA ≥ 2048 bits without the ROCA flaw,
ECDSA on P-256, P-384 or P-521 (Circular 15/2025/TT-BKHCN; CVE-2017-15361).

One place for the rule, used by the certificate trust store and by JWK Sets alike.
"""

from __future__ import annotations

from functools import cache

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.policy import Refusal

MIN_RSA_BITS = 2048
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)

# Nemec et al., "The Return of Coppersmith's Attack" (CCS 2017): Infineon-generated moduli are
# products of primes of the form k·M + (65537^a mod M), so n mod each small prime p lies in the
# subgroup that 65537 generates mod p.  Random moduli pass all of these with negligible probability.
_ROCA_PRIMES = (
    3,
    5,
    7,
    11,
    13,
    17,
    19,
    23,
    29,
    31,
    37,
    41,
    43,
    47,
    53,
    59,
    61,
    67,
    71,
    73,
    79,
    83,
    89,
    97,
    101,
    103,
    107,
    109,
    113,
    127,
    131,
    137,
    139,
    149,
    151,
    157,
    163,
    167,
)


@cache
def _subgroup_of_65537(p: int) -> frozenset[int]:
    members, value = set(), 1
    while value not in members:
        members.add(value)
        value = value * 65537 % p
    return frozenset(members)


def has_roca_fingerprint(modulus: int) -> bool:
    return all(modulus % p in _subgroup_of_65537(p) for p in _ROCA_PRIMES)


def check_public_key_strength(key: object, code: str = "certificate-weak-key") -> None:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise Refusal(code, f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required")
        if has_roca_fingerprint(key.public_numbers().n):
            raise Refusal(code, "RSA key has the ROCA fingerprint (CVE-2017-15361): it must be replaced")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise Refusal(code, f"EC curve {key.curve.name} is not allowed; use P-256 or stronger")
    else:
        raise Refusal(code, f"{type(key).__name__} keys are not allowed; use RSA or ECDSA")
