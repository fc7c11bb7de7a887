"""Parser fuzzing with hypothesis, seeded from the suite's vectors and samples (issue 10).

Three entry points take bytes from outside: the XML path a document or status takes (hardened
parse, edXML schema, enveloped-signature verification), the token layers (compact JWS, JWK, the
national-ID verifier, client assertions) and the signed-note parser (checkpoints and verifier
keys).  Each is fed seeds mutated by flips, insertions of hostile fragments, deletions, splices
and truncations; the only acceptable outcome besides success is a :class:`Refusal` (which the API
turns into problem+json) — any other exception is a 500 waiting to happen.

The suite runs a time-boxed pass; a long one is the same tests with more examples:

    GATEWAY_PARSER_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/test_parser_fuzz.py -q -s
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.audit.checkpoint import NoteSigner, NoteVerifier, open_checkpoint
from gateway.documents import edxml, schema, xmlsafe
from gateway.documents.verification import EnvelopedSignatureVerifier, SignatureProfile
from gateway.identity.jws import JwkSet, load_jwk, parse_compact, strict_json_object
from gateway.policy import Refusal
from gateway.trust import pki
from gateway.trust.chain import TrustStore
from tests.support import sample

EXAMPLES = int(os.environ.get("GATEWAY_PARSER_FUZZ_EXAMPLES", "600"))
VECTORS = Path(__file__).parent / "vectors"
EXECUTIONS: Counter[str] = Counter()

HOSTILE = [
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"&a;",
    b"<![CDATA[",
    b"]]>",
    b"<?xml-stylesheet href='x'?>",
    b"<ds:Object>",
    b'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"',
    b"\x00",
    b"\xff\xfe",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xef\xbb\xbf",
    b"'\"<>",
    b"=" * 3,
    b".",
    b"{}",
    b'{"alg":"none"}',
    b"9" * 40,
    "\u2014 ".encode(),
    b"\n\n",
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        where = draw(st.integers(min_value=0, max_value=len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "splice", "truncate", "repeat"]))
        if op == "flip" and data:
            i = min(where, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "insert":
            data[where:where] = draw(st.sampled_from(HOSTILE) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[where : where + draw(st.integers(min_value=1, max_value=64))]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            start = draw(st.integers(min_value=0, max_value=len(other)))
            data[where:where] = other[start : start + draw(st.integers(min_value=1, max_value=256))]
        elif op == "truncate":
            del data[where:]
        elif op == "repeat" and data:
            piece = data[where : where + draw(st.integers(min_value=1, max_value=32))]
            data[where:where] = piece * draw(st.integers(min_value=1, max_value=50))
    return bytes(data)


def refused_or_fine(target: str, call: Callable[[], Any]) -> None:
    EXECUTIONS[target] += 1
    with contextlib.suppress(Refusal):
        call()


FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)


# --- the XML entry point -------------------------------------------------------------------------------


def _xml_seeds() -> list[bytes]:
    seeds = [sample(n) for n in ("cong-van.edxml", "status-03.edxml")]
    for folder in ("xml-bombs", "xsw-dss", "xmldsig-interop"):
        seeds += [p.read_bytes() for p in sorted((VECTORS / folder).rglob("*.xml")) if p.stat().st_size < 200_000]
    return seeds


XML_SEEDS: list[bytes] = []


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture(scope="module")
def xml_verifier(dev_pki: Any) -> Iterator[tuple[EnvelopedSignatureVerifier, list[Any], list[bytes]]]:
    keys = dev_pki.agencies["000.00.00.H29"]
    signed = [keys.sign(sample("cong-van.edxml")), keys.sign(sample("status-03.edxml"))]
    XML_SEEDS[:] = [*signed, *_xml_seeds()]
    verifier = EnvelopedSignatureVerifier(
        TrustStore(pki.load_certificates(dev_pki.keys_dir / "ca.crt")),
        SignatureProfile(),
        f"{edxml.q('edXMLEnvelope')}/{edxml.q('edXMLHeader')}",
    )
    yield verifier, [keys.signing.cert], signed


def test_the_xml_entry_point_refuses_or_accepts_but_never_crashes(xml_verifier: Any) -> None:
    verifier, certificates, _signed = xml_verifier

    @FUZZ
    @given(data=mutated(XML_SEEDS))
    def entry_point(data: bytes) -> None:
        def run() -> None:
            root = xmlsafe.parse(data)
            for kind in ("document", "status"):
                try:
                    schema.validate(root, kind)  # type: ignore[arg-type]
                except Refusal:
                    continue
                verifier.verify(data, root, certificates)

        refused_or_fine("xml", run)

    entry_point()


# --- the token layers ----------------------------------------------------------------------------------


def _token_seeds(dev_pki: Any) -> list[bytes]:
    keys = dev_pki.agencies["000.00.00.H29"]
    seeds = [keys.assertion().encode(), keys.assertion(aud=["a", "b"]).encode()]
    wycheproof = json.loads((VECTORS / "wycheproof" / "json_web_signature_test.json").read_text())
    for group in wycheproof["testGroups"]:
        for test in group["tests"]:
            jws = test.get("jws")
            if isinstance(jws, str):
                seeds.append(jws.encode())
    return seeds


def test_token_layers_refuse_or_accept_but_never_crash(app: Any, dev_pki: Any) -> None:
    svc = app.extensions["gateway"]
    seeds = _token_seeds(dev_pki)
    keys = json.loads((VECTORS / "wycheproof" / "json_web_key_test.json").read_text())
    jwk_seeds = [json.dumps(g[k]).encode() for g in keys["testGroups"] for k in ("private", "public") if k in g]

    @FUZZ
    @given(token=mutated(seeds), jwk=mutated(jwk_seeds))
    def layers(token: bytes, jwk: bytes) -> None:
        text = token.decode("utf-8", "replace")
        refused_or_fine("jws", lambda: parse_compact(text, "token-malformed"))
        refused_or_fine("json", lambda: strict_json_object(token, "token-malformed", "claims"))
        refused_or_fine("national-id", lambda: svc.national_id.verify(text))
        refused_or_fine("client-assertion", lambda: svc.client_auth.verify(text))
        refused_or_fine("access-token", lambda: svc.tokens.verify(text))

        def key() -> None:
            loaded = strict_json_object(jwk, "jwk-invalid", "key")
            load_jwk(loaded)
            JwkSet.from_json({"keys": [loaded]})

        refused_or_fine("jwk", key)

    layers()


# --- the signed-note parser ----------------------------------------------------------------------------


def test_the_signed_note_parser_refuses_or_accepts_but_never_crashes() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = NoteSigner("gateway.test/audit", Ed25519PrivateKey.generate())
    verifier = NoteVerifier.parse(signer.vkey)
    root = base64.b64encode(bytes(32)).decode()
    notes = [signer.sign(f"gateway.test/audit\n{n}\n{root}\n").encode() for n in (0, 1, 4096)]
    seeds = [*notes, signer.vkey.encode()]

    @FUZZ
    @given(data=mutated(seeds))
    def notes_and_keys(data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        refused_or_fine("note", lambda: open_checkpoint(text, verifier))
        refused_or_fine("vkey", lambda: NoteVerifier.parse(text))

    notes_and_keys()


def test_report_fuzzing_executions() -> None:
    """Not a check: prints how many inputs each entry point saw (run with -s), for the release note."""
    print("\nparser fuzzing executions:", dict(EXECUTIONS), "seeds:", len(XML_SEEDS))
