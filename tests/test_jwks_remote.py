"""Remote issuer keys against a real local HTTP server: discovery, caching, rotation, outage, redirects."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.identity.jwks import MAX_MAX_AGE, REFRESH_INTERVAL, JwksUnavailable, RemoteKeySource
from gateway.identity.national_id import IssuerPolicy, NationalIdVerifier
from gateway.policy import Refusal
from tests.test_national_id import AUDIENCE, MemoryReplay, claims


class FakeIssuer:
    """A real HTTP server whose answers the test changes: JWKS document, status, headers, redirects."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.status = 200
        self.cache_control = "max-age=600"
        self.redirect_jwks_to: str | None = None
        self.discovery_override: dict[str, Any] = {}
        self.requests: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks", **issuer.discovery_override}
                elif self.path == "/jwks" and issuer.redirect_jwks_to:
                    self.send_response(302)
                    self.send_header("Location", issuer.redirect_jwks_to)
                    self.end_headers()
                    return
                elif self.path == "/jwks":
                    body = issuer.jwks
                else:
                    body = {}
                data = json.dumps(body).encode()
                self.send_response(issuer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", issuer.cache_control)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    server = FakeIssuer()
    yield server
    server.stop()


def publish(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg="RS256")
    return jwk


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(key: rsa.RSAPrivateKey, kid: str, iss: str) -> str:
    return jwt.encode(claims(iss=iss), key, algorithm="RS256", headers={"kid": kid})


def verifier(issuer: FakeIssuer, source: RemoteKeySource) -> NationalIdVerifier:
    return NationalIdVerifier(
        [(IssuerPolicy(issuer=issuer.url, audiences=(AUDIENCE,)), source)], MemoryReplay(), b"p" * 32
    )


def test_discovery_then_cache_for_max_age(issuer):
    old = new_key()
    issuer.jwks = {"keys": [publish(old, "k1")]}
    clock = Clock()
    source = RemoteKeySource(issuer.url, clock=clock)
    check = verifier(issuer, source)
    for _ in range(5):
        check.verify(sign(old, "k1", issuer.url))
    assert issuer.requests == ["/.well-known/openid-configuration", "/jwks"]
    clock.now += 601
    check.verify(sign(old, "k1", issuer.url))
    assert issuer.requests.count("/jwks") == 2


def test_rotation_both_keys_valid_and_new_kid_fetched_once(issuer):
    old, new = new_key(), new_key()
    issuer.jwks = {"keys": [publish(old, "k1")]}
    clock = Clock()
    check = verifier(issuer, RemoteKeySource(issuer.url, clock=clock))
    check.verify(sign(old, "k1", issuer.url))
    issuer.jwks = {"keys": [publish(old, "k1"), publish(new, "k2")]}  # the issuer rotates
    clock.now += REFRESH_INTERVAL + 1
    check.verify(sign(new, "k2", issuer.url))  # unknown kid → one refresh
    check.verify(sign(old, "k1", issuer.url))  # the old key still verifies during the rotation
    assert issuer.requests.count("/jwks") == 2


def test_forged_kids_cannot_make_us_hammer_the_issuer(issuer):
    key = new_key()
    issuer.jwks = {"keys": [publish(key, "k1")]}
    clock = Clock()
    check = verifier(issuer, RemoteKeySource(issuer.url, clock=clock))
    check.verify(sign(key, "k1", issuer.url))
    for n in range(20):
        with pytest.raises(Refusal):
            check.verify(sign(key, f"forged-{n}", issuer.url))
    assert issuer.requests.count("/jwks") == 1  # within REFRESH_INTERVAL of the last fetch: no refetch


def test_outage_keeps_the_last_good_key_set(issuer):
    key = new_key()
    issuer.jwks = {"keys": [publish(key, "k1")]}
    clock = Clock()
    source = RemoteKeySource(issuer.url, clock=clock, timeout=0.5)
    check = verifier(issuer, source)
    check.verify(sign(key, "k1", issuer.url))
    issuer.status = 503
    clock.now += 601
    assert check.verify(sign(key, "k1", issuer.url))
    assert source.last_error and "503" in source.last_error
    issuer.stop()
    clock.now += 601
    assert check.verify(sign(key, "k1", issuer.url))


def test_never_reachable_issuer_is_a_clear_refusal(issuer):
    url = issuer.url
    issuer.stop()
    source = RemoteKeySource(url, timeout=0.5)
    with pytest.raises(JwksUnavailable):
        source.current()
    check = NationalIdVerifier([(IssuerPolicy(issuer=url, audiences=(AUDIENCE,)), source)], MemoryReplay(), b"p" * 32)
    with pytest.raises(Refusal) as caught:
        check.verify(sign(new_key(), "k1", url))
    assert caught.value.code == "issuer-unavailable"


def test_redirects_are_not_followed(issuer):
    issuer.redirect_jwks_to = "http://127.0.0.1:1/elsewhere"
    source = RemoteKeySource(issuer.url, timeout=0.5)
    with pytest.raises(JwksUnavailable, match="302"):
        source.current()


def test_discovery_pointing_to_another_origin_or_issuer_is_refused(issuer):
    issuer.discovery_override = {"jwks_uri": "http://127.0.0.2:9/jwks"}
    with pytest.raises(JwksUnavailable, match="origin"):
        RemoteKeySource(issuer.url, timeout=0.5).current()
    issuer.discovery_override = {"issuer": "https://impostor.example"}
    with pytest.raises(JwksUnavailable, match="different issuer"):
        RemoteKeySource(issuer.url, timeout=0.5).current()


def test_file_urls_are_never_fetched():
    with pytest.raises(JwksUnavailable, match="http"):
        RemoteKeySource("https://issuer.example", jwks_url="file:///etc/passwd").current()


def test_cache_lifetime_is_bounded(issuer):
    key = new_key()
    issuer.jwks = {"keys": [publish(key, "k1")]}
    issuer.cache_control = "public, max-age=99999999"
    clock = Clock()
    source = RemoteKeySource(issuer.url, clock=clock)
    source.current()
    clock.now += MAX_MAX_AGE + 1
    source.current()
    assert issuer.requests.count("/jwks") == 2
    assert time  # the clock is injected: nothing here sleeps
