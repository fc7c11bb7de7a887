"""JSON from outside is read one way (gateway.json_input): duplicate members and deep nesting are refused.

Issue 11 review: a rating body with ``score`` twice was stored as the last one; looking for the class,
a bearer token whose header segment is a 2,000-deep array reached ``RecursionError`` (not a
``ValueError``) and answered 500 on every authenticated path.
"""

from __future__ import annotations

import base64
import json

import pytest

from gateway.json_input import JsonInputError, Unreadable, parse_json, read_body


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


DEEP = b"[" * 2000 + b"]" * 2000
ES256_HEADER = json.dumps({"alg": "ES256", "typ": "JWT", "kid": "k"}).encode()


@pytest.mark.parametrize("raw", ['{"a": 1, "a": 2}', "[" * 3000, b"\xff{}", "{"], ids=["twice", "deep", "utf8", "cut"])
def test_what_parsers_disagree_on_or_choke_on_is_a_value_error(raw):
    with pytest.raises(JsonInputError) as refused:
        parse_json(raw)
    assert isinstance(refused.value, ValueError)


def test_a_body_not_declared_json_is_unreadable_with_the_fix_named():
    found = read_body(b'{"score": 5}', declared_json=False)
    assert isinstance(found, Unreadable) and "Content-Type: application/json" in found.reason
    assert read_body(b'{"score": 5}', declared_json=True) == {"score": 5}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "token",
    [
        f"{_segment(DEEP)}.{_segment(b'{}')}.{_segment(b'x')}",
        f"{_segment(ES256_HEADER)}.{_segment(DEEP)}.{_segment(b'x')}",
    ],
    ids=["deep-header", "deep-claims"],
)
@pytest.mark.parametrize("path", ["/v1/me", "/v1/dossiers", "/v1/deliveries", "/v1/audit/entries"])
def test_a_deeply_nested_bearer_token_is_a_401_not_a_500(app, path, token):
    answer = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401, answer.get_json()
    assert answer.content_type.startswith("application/problem+json")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("part", ["header", "claims"])
def test_a_deeply_nested_client_assertion_is_refused_as_invalid_client(app, part):
    segments = [_segment(ES256_HEADER), _segment(b'{"iss": "000.00.00.H29"}'), _segment(b"x")]
    segments[0 if part == "header" else 1] = _segment(DEEP)
    answer = app.test_client().post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": ".".join(segments),
        },
    )
    assert answer.status_code in (400, 401), answer.get_json()
    assert answer.get_json()["code"] in ("invalid-client", "invalid-request")


@pytest.mark.parametrize(
    "raw", [b'{"a": "\\ud800"}', b'{"\\udfff": 1}', b"[NaN]", b'{"a": Infinity}'], ids=["value", "key", "nan", "inf"]
)
def test_what_is_not_text_or_not_a_number_in_json_is_refused(raw):
    with pytest.raises(JsonInputError):
        parse_json(raw)
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001f600"  # a surrogate pair is one character


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "body",
    [b'{"procedure": "1.001612\\ud800", "fields": {}}', b'{"procedure": 1.001612, "fields": {}}'],
    ids=["lone-surrogate", "a-number"],
)
def test_a_dossier_whose_procedure_is_not_text_is_refused_and_audited(app, body):
    """Issue 11 review, round 2: a lone surrogate in ``procedure`` answered 500 and the refusal went unrecorded;
    a number was read as the procedure of that name."""
    import sqlalchemy as sa

    from gateway.store.tables import audit_entries
    from tests.test_citizen_flow import bearer, login

    client = app.test_client()
    answer = client.post("/v1/dossiers", data=body, content_type="application/json", headers=bearer(login(client)))
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["code"] in ("dossier-invalid", "unknown-procedure")
    svc = app.extensions["gateway"]
    with svc.db.read() as conn:
        events = conn.execute(sa.select(audit_entries.c.event)).scalars().all()
    assert "dossier.refused" in events


def _resigned(token: str, key, header: str | None = None, claims: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """``token`` with its header or claims replaced by raw JSON text, signed again with ``key`` (ES256)."""
    from jwt.algorithms import ECAlgorithm

    parts = token.split(".")
    if header is not None:
        parts[0] = _segment(header.encode())
    if claims is not None:
        parts[1] = _segment(claims.encode())
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    der = ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input, key)
    return f"{parts[0]}.{parts[1]}.{_segment(der)}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("twice", ["iss", "jti", "alg"])
def test_a_client_assertion_with_a_member_twice_is_refused(app, dev_pki, twice):
    """Issue 11 review, round 2: PyJWT kept the last ``iss``/``jti``/``alg``; a log keeping the first saw another."""
    from tests.support import HCM, Q4, AgencyKeys

    keys: AgencyKeys = dev_pki.agencies[HCM]
    token = keys.assertion()
    header, claims = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in token.split(".")[:2])
    if twice == "alg":
        raw_header, raw_claims = '{"alg": "none", "alg": "ES256", "typ": "JWT"}', json.dumps(claims)
    else:
        first = Q4 if twice == "iss" else "another-jti"
        raw_header, raw_claims = json.dumps(header), "{" + f'"{twice}": "{first}", ' + json.dumps(claims)[1:]

    def exchange(assertion: str):  # type: ignore[no-untyped-def]
        return app.test_client().post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )

    answer = exchange(_resigned(token, keys.client_key, raw_header, raw_claims))
    assert answer.status_code in (400, 401), answer.get_json()
    assert "duplicate" in answer.get_json()["detail"]
    # The same re-signing without the duplicate is an ordinary assertion: the member twice was the reason.
    assert exchange(_resigned(token, keys.client_key, json.dumps(header), json.dumps(claims))).status_code == 200
