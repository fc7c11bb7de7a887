"""Requests the front refuses before the app sees them: a malformed request line, headers too large, too slow.

They get the same ``application/problem+json`` body, with a stable code, as every refusal the app
makes (issue 10, finding 9: gunicorn answered them with HTML pages).  The codes and titles live in
``gateway.api.problems.CODES`` with the app's own, so the OpenAPI document and clients see one table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.api.problems import CODES, PROBLEM_TYPE


@dataclass(frozen=True)
class FrontRefusal(Exception):
    """Why a request was answered by the front itself; ``code`` is one of ``CODES``."""

    code: str
    detail: str

    @property
    def status(self) -> int:
        return CODES[self.code][0]


# What the front answers a request with before the app sees it: a browser may meet these on a page.
PAGE_CODES = ("malformed-request", "uri-too-long", "headers-too-large", "request-timeout", "too-large")

# h11's status hints for what it refuses while parsing, mapped to our codes.
_BY_STATUS = {400: "malformed-request", 413: "too-large", 414: "uri-too-long", 431: "headers-too-large"}


def from_parser(status_hint: int, detail: str) -> FrontRefusal:
    """A refusal for what the HTTP parser reported; anything it cannot frame is a malformed request."""
    return FrontRefusal(_BY_STATUS.get(status_hint, "malformed-request"), detail)


def problem_body(refusal: FrontRefusal, instance: str) -> bytes:
    return json.dumps(
        {
            "type": PROBLEM_TYPE + refusal.code,
            "title": CODES[refusal.code][1],
            "status": refusal.status,
            "detail": refusal.detail,
            "code": refusal.code,
            "instance": instance,
        },
        ensure_ascii=False,
    ).encode()
