"""Client credentials with private_key_jwt (RFC 7523) and the gateway's access tokens."""

from __future__ import annotations

import json
import time

import jwt
import pytest
import sqlalchemy as sa

from gateway.store.tables import audit_entries
from gateway.trust import pki
from tests.support import ASSERTION_TYPE, HCM, PUBLIC_URL, Q4, TOKEN_ENDPOINT, summarise_refusals


def _token_request(client, assertion, **extra):  # type: ignore[no-untyped-def]
    data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    data.update(extra)
    return client.post("/oauth/token", data=data)


def test_valid_assertion_gets_a_short_lived_es256_access_token_listed_in_jwks(app, dev_pki):
    client = app.test_client()
    response = _token_request(client, dev_pki.agencies[HCM].assertion())
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer" and 30 <= body["expires_in"] <= 3600
    jwks = client.get("/.well-known/jwks.json").get_json()
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert "d" not in key  # never the private part
    claims = jwt.decode(body["access_token"], jwt.PyJWK(key).key, algorithms=["ES256"], audience=PUBLIC_URL)
    assert claims["sub"] == HCM


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"aud": "https://elsewhere.example/oauth/token"}, "audience"),
        ({"aud": [TOKEN_ENDPOINT, "https://elsewhere.example/oauth/token"]}, "and nothing else"),  # issue 10, 8
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"sub": Q4}, "sub must equal iss"),
        ({"exp": int(time.time()) + 3600}, "lifetime"),
        ({"jti": None}, "jti"),
        ({"jti": "short"}, "jti"),
        ({"iss": "000.00.98.H29", "sub": "000.00.98.H29"}, "no enabled agency"),
    ],
)
def test_bad_assertions_are_refused_and_audited(app, svc, dev_pki, overrides, why):
    response = _token_request(app.test_client(), dev_pki.agencies[HCM].assertion(**overrides))
    assert response.status_code == 401
    problem = response.get_json()
    assert problem["code"] == "invalid-client" and problem["error"] == "invalid_client"
    assert why in problem["detail"]
    summarise_refusals(svc)
    with svc.db.read() as conn:
        body = conn.execute(sa.select(audit_entries.c.body).order_by(audit_entries.c.idx.desc()).limit(1)).scalar_one()
    entry = json.loads(body)
    assert (entry["event"], entry["outcome"], entry["code"]) == ("auth.token.refused", "refused", "invalid-client")
    assert "actor" not in entry  # who the request claimed to be is never the actor (issue 13)
    assert entry["count"] == 1 and entry["source"] == "127.0.0.1"


def test_replayed_assertion_is_refused(app, dev_pki):
    client = app.test_client()
    assertion = dev_pki.agencies[HCM].assertion()
    assert _token_request(client, assertion).status_code == 200
    replay = _token_request(client, assertion)
    assert replay.status_code == 401 and "replay" in replay.get_json()["detail"]


def test_assertion_signed_with_another_agencys_key_is_refused(app, dev_pki):
    forged = jwt.encode(
        {
            "iss": HCM,
            "sub": HCM,
            "aud": PUBLIC_URL + "/oauth/token",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "jti": "a" * 16,
        },
        dev_pki.agencies[Q4].client_key,
        algorithm="ES256",
    )
    response = _token_request(app.test_client(), forged)
    assert response.status_code == 401 and "signature" in response.get_json()["detail"]


def test_alg_none_and_hmac_with_the_public_key_are_refused(app, dev_pki):
    claims = {
        "iss": HCM,
        "sub": HCM,
        "aud": PUBLIC_URL + "/oauth/token",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "jti": "b" * 16,
    }
    unsigned = jwt.encode(claims, None, algorithm="none")
    public_pem = pki.public_pem(dev_pki.agencies[HCM].client_key).encode()
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode()).decode()
    import hashlib
    import hmac

    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{payload}.{jwt.utils.base64url_encode(mac).decode()}"
    for token in (unsigned, confused):
        response = _token_request(app.test_client(), token)
        assert response.status_code == 401 and response.get_json()["code"] == "invalid-client"


def test_oversized_assertion_is_refused_before_parsing(app):
    response = _token_request(app.test_client(), "a" * 9000)
    assert response.status_code == 401 and "longer than" in response.get_json()["detail"]


def test_wrong_grant_type_and_missing_assertion_are_invalid_requests(app, dev_pki):
    client = app.test_client()
    wrong = client.post("/oauth/token", data={"grant_type": "password"})
    assert (wrong.status_code, wrong.get_json()["error"]) == (400, "unsupported_grant_type")
    missing = client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
    )
    assert (missing.status_code, missing.get_json()["code"]) == (400, "invalid-request")


def test_client_id_must_match_the_assertion(app, dev_pki):
    response = _token_request(app.test_client(), dev_pki.agencies[HCM].assertion(), client_id=Q4)
    assert response.status_code == 401


def test_access_token_of_another_gateway_is_refused(app, dev_pki):
    other_key = pki.generate_key("ec")
    token = jwt.encode(
        {
            "iss": PUBLIC_URL,
            "sub": HCM,
            "aud": PUBLIC_URL,
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "jti": "c" * 16,
        },
        other_key,
        algorithm="ES256",
        headers={"typ": "at+jwt", "kid": "whatever"},
    )
    response = app.test_client().get("/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


def test_client_assertion_cannot_be_used_as_an_access_token(app, dev_pki):
    assertion = dev_pki.agencies[HCM].assertion(aud=PUBLIC_URL)
    response = app.test_client().get("/v1/inbox", headers={"Authorization": f"Bearer {assertion}"})
    assert response.status_code == 401
