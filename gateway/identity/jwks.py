"""Where an issuer's signing keys come from: a static JWK Set file, or its URL (directly or by discovery).

A remote set is cached for the ``max-age`` the issuer sends, bounded to [1 minute, 1 day] (5 minutes
without one).  A token naming an unknown ``kid`` triggers at most one refresh per
``REFRESH_INTERVAL`` (so forged kids cannot make us hammer the issuer), which is how a new key is
picked up during a rotation while the old one, still published, keeps verifying.  When the issuer
is unreachable the last good set is kept.  Only http(s) URLs on the issuer's own origin are fetched
(no ``file://``), redirects are never followed, and responses are size-capped.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from gateway.identity.jws import JwkSet
from gateway.json_input import parse_json
from gateway.policy import Refusal

DEFAULT_MAX_AGE = 300
MIN_MAX_AGE, MAX_MAX_AGE = 60, 86_400
REFRESH_INTERVAL = 30
MAX_RESPONSE_BYTES = 256 * 1024
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*([0-9]+)", re.IGNORECASE)


class JwksUnavailable(Exception):
    """No key set could ever be fetched for this issuer."""


class KeySource(Protocol):
    def current(self) -> JwkSet: ...

    def refresh_for_unknown_kid(self) -> JwkSet | None:
        """A fresher set when one may be fetched now, else ``None``."""
        ...


@dataclass(frozen=True)
class StaticKeySource:
    keys: JwkSet

    @classmethod
    def from_file(cls, path: Path) -> StaticKeySource:
        return cls(JwkSet.from_json(json.loads(path.read_text(encoding="utf-8"))))

    def current(self) -> JwkSet:
        return self.keys

    def refresh_for_unknown_kid(self) -> JwkSet | None:
        return None


def same_origin(url: str, reference: str) -> bool:
    a, b = urlsplit(url), urlsplit(reference)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def fetch_json(session: requests.Session, url: str, timeout: float) -> tuple[dict[str, Any], int]:
    """GET a JSON object: no redirects, bounded size; returns it with the max-age to cache it for."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"only http(s) URLs are fetched, not {url!r}")
    with session.get(
        url, timeout=timeout, allow_redirects=False, stream=True, headers={"Accept": "application/json"}
    ) as response:
        if response.status_code != 200:
            raise ValueError(f"{url} answered {response.status_code}")
        body = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
        if len(body) > MAX_RESPONSE_BYTES:
            raise ValueError(f"{url} sent more than {MAX_RESPONSE_BYTES} bytes")
        document = parse_json(body)
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not send a JSON object")
        match = _MAX_AGE.search(response.headers.get("Cache-Control", ""))
        max_age = int(match.group(1)) if match else DEFAULT_MAX_AGE
        return document, min(max(max_age, MIN_MAX_AGE), MAX_MAX_AGE)


class RemoteKeySource:
    """An issuer's JWK Set fetched over HTTP, by ``jwks_url`` or by OIDC discovery from ``issuer``."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks_url: str | None = None,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._jwks_url = jwks_url
        self._timeout = timeout
        self._clock = clock
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._keys: JwkSet | None = None
        self._expires = 0.0
        self._last_fetch = -float("inf")
        self.last_error: str | None = None

    def _discover(self) -> str:
        document, _ = fetch_json(self._session, self._issuer + "/.well-known/openid-configuration", self._timeout)
        if document.get("issuer", "").rstrip("/") != self._issuer:
            raise ValueError("discovery document names a different issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not same_origin(jwks_uri, self._issuer):
            raise ValueError("discovery jwks_uri is missing or not on the issuer's origin")
        return jwks_uri

    def _fetch(self) -> None:
        self._last_fetch = self._clock()
        try:
            url = self._jwks_url or self._discover()
            document, max_age = fetch_json(self._session, url, self._timeout)
            self._keys = JwkSet.from_json(document)
            self._expires = self._clock() + max_age
            self._jwks_url = url
            self.last_error = None
        except (requests.RequestException, ValueError, Refusal) as exc:
            # keep the last good set; try again no sooner than REFRESH_INTERVAL
            self.last_error = str(exc)[:300]
            self._expires = self._clock() + REFRESH_INTERVAL

    def current(self) -> JwkSet:
        with self._lock:
            if self._keys is None or self._clock() >= self._expires:
                self._fetch()
            if self._keys is None:
                raise JwksUnavailable(f"no keys from {self._issuer}: {self.last_error}")
            return self._keys

    def refresh_for_unknown_kid(self) -> JwkSet | None:
        with self._lock:
            if self._clock() - self._last_fetch < REFRESH_INTERVAL:
                return None
            before = self._keys
            self._fetch()
            return self._keys if self._keys is not before else None
