"""Every Wycheproof JWS and JWK case through our JWS layer (strict parse, key selection by kid, signature).

Decisions on what the vectors call ``valid`` but our allow-list excludes: HS256/384/512 (never HMAC
for an asymmetric issuer), RS384/RS512/PS384/PS512/ES512 (outside the default RS256, PS256, ES256
allow-list) are refused; the suite asserts that too.  There are no ``acceptable`` cases in these files.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.identity.jws import JwkSet, parse_compact, verify_signature
from gateway.policy import Refusal
from tests.support import VECTORS

ALLOWED = ("RS256", "PS256", "ES256")


def _cases(name: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    data = json.loads((VECTORS / "wycheproof" / name).read_text())
    out = []
    for group in data["testGroups"]:
        public = group.get("public")
        keyset = public if public is None or "keys" in public else {"keys": [public]}
        for test in group["tests"]:
            out.append((f"{group['comment']}-{test['tcId']}-{test['comment']}", keyset or {"keys": []}, test))
    return out


def _accepts(keyset: dict[str, Any], jws: Any) -> bool:
    try:
        if not isinstance(jws, str):
            raise Refusal("token-malformed", "JSON serialization is not accepted")
        parsed = parse_compact(jws, "token-malformed")
        verify_signature(parsed, JwkSet.from_json(keyset).select(parsed, ALLOWED, "token-key"), "token-signature")
    except Refusal as refusal:
        assert refusal.reason
        return False
    return True


def _alg(jws: Any) -> str | None:
    try:
        return parse_compact(jws, "x").alg if isinstance(jws, str) else None
    except Refusal:
        return None


@pytest.mark.parametrize(
    ("name", "keyset", "test"),
    _cases("json_web_signature_test.json") + _cases("json_web_key_test.json"),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_wycheproof_case(name, keyset, test):
    expected = test["result"] == "valid" and _alg(test["jws"]) in ALLOWED
    assert test["result"] in ("valid", "invalid")
    assert _accepts(keyset, test["jws"]) is expected


def test_the_vectors_exercise_acceptance_in_our_allow_list():
    accepted = [n for n, k, t in _cases("json_web_signature_test.json") if _accepts(k, t["jws"])]
    assert len(accepted) >= 15


def test_roca_and_weak_keys_are_left_out_of_a_key_set_with_the_reason():
    data = json.loads((VECTORS / "wycheproof" / "json_web_key_test.json").read_text())
    groups = {g["comment"]: g for g in data["testGroups"]}
    assert "ROCA" in JwkSet.from_json(groups["jws_rsa_roca_key"]["public"]).rejected[0]
    assert "1024 bits" in JwkSet.from_json(groups["keysize_too_small"]["public"]).rejected[0]
