"""Talking to OCSP responders, CRL distribution points and timestamp authorities within bounds.

A responder that answers slowly, hugely or not at all must not stall a request or fill memory: every
call has a connect+read deadline and a total deadline, reads at most ``max_bytes``, follows no
redirects, and turns every failure into :class:`FetchError` with a reason fit for the audit log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

DEFAULT_TIMEOUT = 3.0
DEFAULT_MAX_BYTES = 1024 * 1024


class FetchError(Exception):
    """The source could not be read; ``reason`` says why in a few words (no secrets: URLs are public)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Bounds:
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES


def _read(response: requests.Response, url: str, bounds: Bounds, deadline: float) -> bytes:
    if response.status_code != 200:
        raise FetchError(f"{url} answered HTTP {response.status_code}")
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > bounds.max_bytes:
        raise FetchError(f"{url} sent {declared} bytes; at most {bounds.max_bytes} are read")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > bounds.max_bytes:
            raise FetchError(f"{url} sent more than {bounds.max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchError(f"{url} took longer than {bounds.timeout:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch(
    session: requests.Session,
    url: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    accept: str | None = None,
    bounds: Bounds = Bounds(),
) -> bytes:
    """GET ``url`` (or POST ``body`` when given) and return the body of a 200 answer."""
    if not url.startswith(("http://", "https://")):
        raise FetchError(f"{url!r} is not an http(s) URL")
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    deadline = time.monotonic() + bounds.timeout
    try:
        with session.request(
            "POST" if body is not None else "GET",
            url,
            data=body,
            headers=headers,
            timeout=(bounds.timeout, bounds.timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            return _read(response, url, bounds, deadline)
    except requests.Timeout:
        raise FetchError(f"{url} did not answer within {bounds.timeout:g} s") from None
    except requests.ConnectionError:
        raise FetchError(f"{url} cannot be reached") from None
    except requests.RequestException as exc:
        raise FetchError(f"{url}: {type(exc).__name__}") from None
