"""The OpenAPI document: ``schemas/openapi.json`` plus the answers every operation can give.

The file describes what each endpoint decides.  Some answers come from layers every request passes
through — the HTTP front (malformed requests, slow clients, oversized heads, too many connections),
the bearer-token check, the path parameter lookup, the rate limits — and are added here, once, so
that the document lists every status a client can meet (issue 10, finding 9) without repeating
them in forty places.  Responses the file gives an operation explicitly are never replaced.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from gateway.documents.schema import schemas_dir

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

# The HTTP front's own refusals (gateway.serving) and the app's, for any operation.
EVERY_OPERATION = {
    "400": "malformed-request or invalid-request: the request is not valid HTTP or not a valid request",
    "408": "request-timeout: the request did not arrive within the read deadlines",
    "413": "too-large: the request body is larger than the gateway accepts",
    "414": "uri-too-long: the request target is longer than 8 KiB",
    "431": "headers-too-large: the request head is larger than 16 KiB",
    "503": "too-many-connections, database-unavailable, state-unavailable or checkpoint-pending (no checkpoint "
    "signer answered): retry after Retry-After",
}
AUTHENTICATED = {"401": "invalid-token: the bearer token is missing, invalid or expired"}
WITH_PATH_PARAMETER = {"404": "not found (or not visible to this caller)"}
# Operations behind a rate limit (429 with Retry-After): per agency, per citizen, and per source
# address where nobody is authenticated yet (the token endpoint, every citizen call: issue 13).
RATE_LIMITED = {("post", "/v1/documents"), ("post", "/v1/status"), ("post", "/oauth/token")}
RATE_LIMITED_PREFIXES = ("/v1/me", "/v1/dossiers")
RATE_LIMIT = {"429": "rate-limited: too many requests; retry after Retry-After seconds"}


def _add(responses: dict[str, Any], answers: dict[str, str]) -> None:
    """These statuses may come as problem+json too, beside what the operation itself documents."""
    for status, description in answers.items():
        found = responses.setdefault(status, {"description": description, "content": {}})
        found.setdefault("content", {}).update(copy.deepcopy(_PROBLEM))


@cache
def openapi_document() -> dict[str, Any]:
    document = json.loads((schemas_dir() / "openapi.json").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            _add(responses, EVERY_OPERATION)
            if operation.get("security", document.get("security")):
                _add(responses, AUTHENTICATED)
            if "{" in path:
                _add(responses, WITH_PATH_PARAMETER)
            if (method, path) in RATE_LIMITED or path.startswith(RATE_LIMITED_PREFIXES):
                _add(responses, RATE_LIMIT)
    return document
