"""Schemathesis against ``/openapi.json`` as an agency, a citizen, an auditor and anonymous (issue 10).

Every generated request must get an answer that is not a 5xx and that conforms to the document:
a documented status, the documented content type, a body matching the documented schema.  The
suite runs a few examples per operation and identity; a long run is the same test with more:

    GATEWAY_FUZZ_EXAMPLES=300 .venv/bin/pytest tests/test_api_fuzz.py -p no:randomly -q
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway import create_app
from gateway.api.openapi import openapi_document
from gateway.store import upgrade
from tests.conftest import make_config, register_agencies
from tests.support import DEMO_AUDITOR_ID, HCM, NOIVU, GatewayClient, Pki
from tests.test_citizen_flow import login

for binary in ("application/ocsp-request", "application/timestamp-query"):  # DER bodies: any bytes
    schemathesis.serializer.alias(binary, "application/octet-stream")

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "4"))
IDENTITIES = ("anonymous", "agency", "citizen", "auditor")


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory, dev_pki: Pki) -> Iterator[Flask]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'gateway.db'}"
    upgrade(url)
    config = make_config(
        url,
        dev_pki,
        auditors=(NOIVU, DEMO_AUDITOR_ID),
        operators=(NOIVU,),
        citizen_dossiers_per_hour=10**6,
        agency_submissions_per_minute=10**6,
        access_token_ttl=3600,
    )
    app = create_app(config)
    register_agencies(app.extensions["gateway"], dev_pki)
    yield app
    app.extensions["gateway"].db.dispose()


@pytest.fixture(scope="module")
def tokens(fuzzed_app: Flask, dev_pki: Pki) -> dict[str, dict[str, str]]:
    def agency(code: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {GatewayClient(fuzzed_app.test_client(), dev_pki.agencies[code]).token()}"}

    citizen = login(fuzzed_app.test_client())["access_token"]
    return {
        "anonymous": {},
        "agency": agency(HCM),
        "citizen": {"Authorization": f"Bearer {citizen}"},
        "auditor": agency(NOIVU),
    }


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app)


OPERATIONS = [
    (path, method)
    for path, operations in openapi_document()["paths"].items()
    for method in operations
    if method in ("get", "post", "put", "patch", "delete")
]


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_the_api_answers_every_generated_request_as_documented(
    api_schema: Any, tokens: Any, path: str, method: str
) -> None:
    """Each generated request is sent once per identity: anonymous, agency, citizen, auditor."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def answers(case: Any) -> None:
        for identity in IDENTITIES:
            case.call_and_validate(
                headers={**(case.headers or {}), **tokens[identity]},
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

    answers()
