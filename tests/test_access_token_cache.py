"""Access tokens are checked in full once per process, then only for expiry and their key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.identity import access_tokens
from gateway.policy import Refusal
from tests.support import HCM


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each full verification (signature and claims) the token authority makes."""
    seen: list[str] = []
    original = access_tokens.decode_verified

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return original(token, *args, **kwargs)

    monkeypatch.setattr(access_tokens, "decode_verified", counting)
    return seen


def test_a_token_presented_again_is_not_checked_in_full_again(svc, full_checks):
    token = svc.tokens.issue(HCM).token
    assert [svc.tokens.verify(token) for _ in range(3)] == [HCM] * 3
    assert full_checks == [token]


def test_a_cached_token_past_its_expiry_is_checked_in_full_again(svc, full_checks, monkeypatch):
    issued = svc.tokens.issue(HCM)
    assert svc.tokens.verify(issued.token) == HCM
    real = access_tokens.time.time
    monkeypatch.setattr(access_tokens.time, "time", lambda: real() + issued.expires_in + 10)
    svc.tokens.verify(issued.token)  # the real clock still says valid: the full check passes
    assert full_checks == [issued.token, issued.token]


def test_a_cached_token_whose_key_left_the_ring_is_refused(svc, monkeypatch):
    token = svc.tokens.issue(HCM).token
    assert svc.tokens.verify(token) == HCM
    monkeypatch.setattr(svc.ring, "snapshot", dataclasses.replace(svc.ring.snapshot, token_keys={}))
    with pytest.raises(Refusal) as refused:
        svc.tokens.verify(token)
    assert refused.value.code == "invalid-token"


def test_a_forged_token_is_never_cached(svc, full_checks):
    token = svc.tokens.issue(HCM).token
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(Refusal):
            svc.tokens.verify(forged)
    assert full_checks == [forged, forged]
