"""National-ID token verification: the composable policy, one refusal code per failure, and hand-made attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from gateway.identity.jwks import StaticKeySource
from gateway.identity.jws import JwkSet
from gateway.identity.national_id import IssuerPolicy, NationalIdVerifier
from gateway.identity.personal_id import check_personal_id, hashed, mask
from gateway.identity.state import ReplayCache
from gateway.policy import Refusal
from gateway.trust import pki

ISSUER = "https://sso.example.gov.vn"
AUDIENCE = "interconnect-gateway"
KID = "vneid-2026"
PID = "079203001234"


class MemoryReplay(ReplayCache):
    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def first_use(self, namespace: str, key: str, expires_at: int) -> bool:
        if (namespace, key) in self.seen:
            return False
        self.seen.add((namespace, key))
        return True


@pytest.fixture(scope="module")
def issuer_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key: rsa.RSAPrivateKey, kid: str = KID, **extra: Any) -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256", **extra})
    return {k: v for k, v in jwk.items() if v is not None}


def verifier_for(key: rsa.RSAPrivateKey, *, jwks: dict[str, Any] | None = None, **policy: Any) -> NationalIdVerifier:
    settings = {"issuer": ISSUER, "audiences": (AUDIENCE,), **policy}
    source = StaticKeySource(JwkSet.from_json(jwks or {"keys": [jwk_of(key)]}))
    return NationalIdVerifier([(IssuerPolicy(**settings), source)], MemoryReplay(), b"pepper" * 6)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u-1",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "SoDinhDanh": PID,
        "HoVaTen": "Nguyễn Văn An",
        "NgayThangNamSinh": "20030412",
        "acr": "2",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(
    key: Any, body: dict[str, Any] | None = None, *, alg: str = "RS256", headers: dict[str, Any] | None = None
) -> str:
    return jwt.encode(body or claims(), key, algorithm=alg, headers={"kid": KID, **(headers or {})})


def code_of(verifier: NationalIdVerifier, value: str, **kwargs: Any) -> str:
    with pytest.raises(Refusal) as caught:
        verifier.verify(value, **kwargs)
    assert caught.value.reason
    return caught.value.code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_valid_token_gives_a_level_2_identity_with_a_masked_and_hashed_id(issuer_key):
    identity = verifier_for(issuer_key).verify(token(issuer_key))
    assert (identity.level, identity.full_name, identity.masked_id) == (2, "Nguyễn Văn An", "********1234")
    assert identity.personal_id_hash == hashed(PID, b"pepper" * 6) and PID not in json.dumps(identity.public_view())


def test_alg_none_is_refused(issuer_key):
    unsigned = f"{_b64(json.dumps({'alg': 'none', 'kid': KID}).encode())}.{_b64(json.dumps(claims()).encode())}."
    assert code_of(verifier_for(issuer_key), unsigned) in ("token-key", "token-malformed")


def test_hs256_signed_with_the_issuers_public_key_is_refused(issuer_key):
    public_pem = pki.public_pem(issuer_key).encode()
    header = _b64(json.dumps({"alg": "HS256", "kid": KID}).encode())
    payload = _b64(json.dumps(claims()).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert code_of(verifier_for(issuer_key), f"{header}.{payload}.{_b64(mac)}") == "token-key"


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
def test_keys_offered_in_the_header_are_ignored(issuer_key, member):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    offered = {
        "jwk": jwk_of(attacker),
        "jku": "https://evil.example/jwks",
        "x5u": "https://evil.example/c.pem",
        "x5c": ["MIIB"],
    }[member]
    forged = token(attacker, headers={member: offered})
    assert code_of(verifier_for(issuer_key), forged) == "token-signature"


@pytest.mark.parametrize("kid", ["../../../../etc/passwd", "' OR '1'='1", "vneid-2026\x00", "", "a" * 300])
def test_unknown_or_hostile_kid_never_selects_a_key(issuer_key, kid):
    assert code_of(verifier_for(issuer_key), token(issuer_key, headers={"kid": kid})) in (
        "token-key",
        "token-malformed",
    )


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"exp": int(time.time()) - 120}, "token-expired"),
        ({"exp": None}, "token-expired"),
        ({"nbf": int(time.time()) + 3600}, "token-not-yet-valid"),
        ({"iat": int(time.time()) + 3600}, "token-not-yet-valid"),
        ({"iss": ISSUER + "/"}, "token-issuer"),
        ({"iss": "https://other.example"}, "token-issuer"),
        ({"aud": "someone-else"}, "token-audience"),
        ({"aud": [AUDIENCE, "untrusted-app"]}, "token-audience"),
        ({"azp": "another-client"}, "token-audience"),
        ({"SoDinhDanh": "07920300123"}, "personal-id-invalid"),
        ({"SoDinhDanh": "079903001234"}, "personal-id-invalid"),
        ({"SoDinhDanh": "079203001234", "NgayThangNamSinh": "19030412"}, "personal-id-invalid"),
        ({"SoDinhDanh": 79203001234}, "personal-id-invalid"),
        ({"acr": "3"}, "token-level"),
        ({"exp": "tomorrow"}, "token-claims"),
    ],
)
def test_each_claim_failure_has_its_own_code(issuer_key, override, code):
    assert code_of(verifier_for(issuer_key), token(issuer_key, claims(**override))) == code


def test_leeway_tolerates_small_clock_skew_only(issuer_key):
    verifier = verifier_for(issuer_key, leeway=30)
    assert verifier.verify(token(issuer_key, claims(exp=int(time.time()) - 10)))
    assert code_of(verifier, token(issuer_key, claims(exp=int(time.time()) - 40))) == "token-expired"
    with pytest.raises(ValueError):
        IssuerPolicy(issuer=ISSUER, audiences=(AUDIENCE,), leeway=120)


def test_trusted_extra_audience_with_azp_is_accepted(issuer_key):
    verifier = verifier_for(issuer_key, trusted_extra_audiences=("portal-app",), client_id=AUDIENCE)
    assert verifier.verify(token(issuer_key, claims(aud=[AUDIENCE, "portal-app"], azp=AUDIENCE)))
    assert code_of(verifier, token(issuer_key, claims(aud=[AUDIENCE, "portal-app"]))) == "token-audience"


def test_single_use_tokens_are_refused_on_replay_by_issuer_and_jti(issuer_key):
    verifier = verifier_for(issuer_key, single_use=True)
    value = token(issuer_key)
    verifier.verify(value)
    assert code_of(verifier, value) == "token-replayed"
    assert code_of(verifier, token(issuer_key, claims(jti=None))) == "token-replayed"


def test_nonce_is_checked_when_the_flow_has_one(issuer_key):
    verifier = verifier_for(issuer_key)
    assert verifier.verify(token(issuer_key, claims(nonce="n-123")), nonce="n-123")
    assert code_of(verifier, token(issuer_key, claims(nonce="n-999")), nonce="n-123") == "token-nonce"


def test_oversize_duplicate_members_crit_and_type_are_refused(issuer_key):
    verifier = verifier_for(issuer_key)
    assert code_of(verifier, token(issuer_key, claims(pad="x" * 9000))) == "token-malformed"
    assert code_of(verifier, token(issuer_key, headers={"crit": ["exp"], "exp": 1})) == "token-malformed"
    assert code_of(verifier, token(issuer_key, headers={"typ": "dpop+jwt"})) == "token-type"
    header = _b64(json.dumps({"alg": "RS256", "kid": KID}).encode())
    body = json.dumps(claims())[:-1] + ', "iss": "https://evil.example"}'
    assert code_of(verifier, f"{header}.{_b64(body.encode())}.AAAA") == "token-malformed"


def test_keys_for_encryption_or_without_verify_never_verify(issuer_key):
    for extra in ({"use": "enc"}, {"key_ops": ["encrypt"]}):
        jwk = jwk_of(issuer_key, **extra)
        if "key_ops" in extra:
            jwk.pop("use")
        assert code_of(verifier_for(issuer_key, jwks={"keys": [jwk]}), token(issuer_key)) == "token-key"


def test_weak_issuer_keys_are_left_out_of_the_set():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    keyset = JwkSet.from_json({"keys": [jwk_of(weak)]})
    assert not keyset.keys and "1024" in keyset.rejected[0]


def test_empty_or_hmac_algorithm_lists_are_configuration_errors():
    for algorithms in ((), ("HS256",), ("none",)):
        with pytest.raises(ValueError):
            IssuerPolicy(issuer=ISSUER, audiences=(AUDIENCE,), algorithms=algorithms)
    with pytest.raises(ValueError):
        IssuerPolicy(issuer=ISSUER, audiences=())


def test_ps256_and_es256_issuers(issuer_key):
    assert code_of(verifier_for(issuer_key), token(issuer_key, alg="PS256")) == "token-key"  # key is bound to RS256
    ps_verifier = verifier_for(issuer_key, jwks={"keys": [jwk_of(issuer_key, alg="PS256")]})
    assert ps_verifier.verify(token(issuer_key, alg="PS256")).level == 2
    ec_key = pki.generate_key("ec")
    ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    ec_jwk.update(kid=KID, use="sig", alg="ES256")
    assert verifier_for(issuer_key, jwks={"keys": [ec_jwk]}).verify(token(ec_key, alg="ES256")).level == 2


# --- the personal ID itself --------------------------------------------------------------------


@given(
    province=st.integers(0, 999), gender=st.sampled_from("0123"), year=st.integers(0, 99), rest=st.integers(0, 999999)
)
def test_well_formed_ids_consistent_with_their_birth_date_pass(province, gender, year, rest):
    pid = f"{province:03d}{gender}{year:02d}{rest:06d}"
    full_year = (1900 if gender in "01" else 2000) + year
    if full_year > 2026:
        return
    assert check_personal_id(pid, f"{full_year}0101") == pid
    other_century = full_year + 100 if full_year < 2000 else full_year - 100
    with pytest.raises(Refusal):
        check_personal_id(pid, f"{other_century}0101")


def test_masking_keeps_only_the_last_four_digits():
    assert mask(PID) == "********1234"
