"""A file fetched from the gateway that holds its error answer instead is named as such by every verifier.

Issue 11 newcomer: a receipt saved with an expired token (``curl -s … > receipt.json``) verified as
"invalid: not a receipt", which reads like tampering; the file held ``{"code": "invalid-token", …}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.checkpoint import NoteSigner
from gateway.cli import main
from gateway.json_input import saved_problem

EXPIRED = {
    "type": "urn:vn-gov:interconnect-gateway:problem:invalid-token",
    "title": "Access token missing or invalid",
    "status": 401,
    "detail": "token has expired",
    "code": "invalid-token",
}
VKEY = NoteSigner("127.0.0.1:8080/audit", Ed25519PrivateKey.generate()).vkey


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "verify-receipt", "{file}", "--vkey", VKEY],
        ["audit", "verify", "{file}", "--vkey", VKEY],
        ["verify", "--evidence", "{file}", "--anchors", "{ca}", "--gateway-cert", "{ca}", "--vkey", VKEY],
        ["verify", "{file}", "--anchors", "{ca}", "--gateway-cert", "{ca}", "--seal", "{file}"],
    ],
    ids=["receipt", "audit-export", "evidence", "document"],
)
def test_a_saved_error_answer_is_reported_as_what_the_gateway_said(tmp_path: Path, dev_pki, args):
    saved = tmp_path / "download"
    saved.write_text(json.dumps(EXPIRED))
    ca = dev_pki.keys_dir / "ca.crt"
    argv = [a.format(file=saved, ca=ca) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code != 0
    assert "error answer" in result.output and "invalid-token: token has expired" in result.output, result.output
    assert "fresh token" in result.output


def test_only_a_problem_document_counts_as_an_error_answer():
    assert saved_problem(json.dumps(EXPIRED).encode()) == "invalid-token: token has expired"
    assert saved_problem(b'{"size": 12, "entries": []}') is None  # a receipt-like object
    assert saved_problem(b"PK\x03\x04") is None and saved_problem(b'{"code": ') is None
