"""No client input produces a 500, and a database outage is a 503 that stores nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway import create_app
from gateway.documents import xmlsafe
from gateway.documents.verification import (
    EnvelopedSignatureVerifier,
    SignatureProfile,
    embedded_certificates,
    find_signature,
)
from gateway.services import EDXML_SIGNATURE_PARENT
from tests.conftest import make_config
from tests.support import DEMO_AUDITOR_ID, HCM, sample, sign_in_workbench

_signed_cache: dict[str, bytes] = {}

xmlish = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(
        lambda t: t.encode("utf-8", "surrogatepass") if t.isprintable() else t.encode("utf-8", "replace")
    ),
    st.builds(
        lambda a, b: f"<{a}>{b}</{a}>".encode(),
        st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}", fullmatch=True),
        st.text(max_size=50),
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=xmlish, path=st.sampled_from(["/v1/documents", "/v1/status"]))
def test_random_bodies_get_a_problem_never_a_500(agency, body, path):
    response = agency(HCM).submit(body, path)
    assert 400 <= response.status_code < 500
    assert response.mimetype == "application/problem+json" and response.get_json()["code"]


def _signed_content(svc, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    verifier = EnvelopedSignatureVerifier(svc.keys.trust, SignatureProfile(), EDXML_SIGNATURE_PARENT)
    certs = [c for c in embedded_certificates(find_signature(xmlsafe.parse(data)))]
    return etree.tostring(verifier.verify(data, xmlsafe.parse(data), certs).root, method="c14n", exclusive=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=6000), junk=st.binary(min_size=1, max_size=8))
def test_truncated_or_spliced_documents_are_refused_unless_the_signed_content_is_unchanged(agency, svc, cut, junk):
    """Byte changes that exclusive C14N discards (an unused namespace declaration, white space inside a
    tag) leave the signed content as it was, so the signature still holds; every other change is refused."""
    sender = agency(HCM)
    signed = _signed_cache.setdefault("doc", sender.keys.sign(sample("cong-van.edxml")))
    for body in (signed[:cut], signed[:cut] + junk + signed[cut:]):
        response = sender.submit(body)
        assert response.status_code < 500
        if response.status_code < 300:
            assert _signed_content(svc, body) == _signed_content(svc, signed)
        elif response.status_code != 409:  # 409: signed content kept, bytes differ from an earlier accepted copy
            assert response.get_json()["code"] != "duplicate-document-id"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(after=st.text(max_size=25), limit=st.text(max_size=25))
def test_inbox_paging_parameters_never_break_the_server(agency, after, limit):
    response = agency(HCM).client.get(
        "/v1/inbox", query_string={"after": after, "limit": limit}, headers=agency(HCM).headers()
    )
    assert response.status_code in (200, 400)


def test_huge_cursor_is_a_client_error(agency):
    response = agency(HCM).get("/v1/inbox?after=99999999999999999999999")
    assert response.status_code == 400 and response.get_json()["code"] == "invalid-request"


def test_database_outage_answers_503_and_readiness_fails(dev_pki):
    app = create_app(make_config("postgresql+psycopg://postgres@127.0.0.1:1/unreachable", dev_pki))
    client = app.test_client()
    token = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": dev_pki.agencies[HCM].assertion(),
        },
    )
    assert token.status_code == 503 and token.get_json()["code"] == "database-unavailable"
    assert token.headers["Retry-After"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


query_text = st.one_of(
    st.text(max_size=25),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["99999999999999999999999", "9223372036854775808", "-2", "-1", "0", "2026-11-23", "+07:00"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        ["/v1/inbox", "/v1/deliveries", "/v1/deliveries/dead-letters", "/v1/audit/entries", "/audit/"]
    ),
    params=st.dictionaries(
        st.sampled_from(["after", "limit", "state", "agency", "from", "to", "event", "document"]), query_text
    ),
)
def test_operator_and_auditor_query_parameters_never_break_the_server(app, agency, path, params):
    svc = app.extensions["gateway"]
    object.__setattr__(svc.config, "operators", (HCM,))
    object.__setattr__(svc.config, "auditors", (HCM, DEMO_AUDITOR_ID))
    client = agency(HCM).client
    if path.startswith("/audit/"):
        sign_in_workbench(client, svc)
        response = client.get(path, query_string=params)
    else:
        response = client.get(path, query_string=params, headers=agency(HCM).headers())
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    if response.status_code == 400:
        assert response.mimetype == "application/problem+json"


def test_nul_characters_and_out_of_range_ids_get_a_problem_not_a_500(app, agency):
    svc = app.extensions["gateway"]
    object.__setattr__(svc.config, "operators", (HCM,))
    sender = agency(HCM)
    sign_in_workbench(sender.client, svc)
    for method, url, status in [
        ("POST", "/v1/deliveries/99999999999999999999999/retry", 409),
        ("GET", "/audit/documents/%00", 400),
        ("GET", "/audit/?document=%00", 400),
        ("GET", "/v1/deliveries?agency=%00", 400),
        ("GET", "/v1/documents/%00", 400),
        ("POST", "/v1/inbox/%00/ack", 400),
    ]:
        response = sender.client.open(url, method=method, headers=sender.headers())
        assert response.status_code == status and response.mimetype == "application/problem+json", url
