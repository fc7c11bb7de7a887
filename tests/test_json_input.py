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
