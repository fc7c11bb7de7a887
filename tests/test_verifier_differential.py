"""The lean verifier agrees with two independent XMLDSig implementations.

Oracles: signxml (pure Python over lxml) and python-xmlsec (the C xmlsec1 library), both with
the signer's certificate pinned.  The property, on every public vector and on generated
mutations of signed edXML documents:

* **sound**: whatever the gateway accepts, both oracles accept, and the content it hands on is
  byte for byte what signxml says was signed;
* **complete within the profile**: whatever both oracles accept and passes the profile's
  structural rules, the gateway accepts.

The profile is deliberately stricter than either oracle (one whole-document reference, no
unsigned elements inside the signature, no processing instruction beside the root), so the
comparison is on documents that pass the structure: that is where the cryptography decides.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest
import xmlsec  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml.algorithms import SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

from gateway.documents import edxml, xmlsafe
from gateway.documents.signing import sign_edxml
from gateway.documents.verification import SignatureProfile, embedded_certificates, find_signature, profile_structure
from gateway.documents.xmldsig import core_validation, exclusive_c14n
from gateway.policy import Refusal
from gateway.trust import pki
from tests.support import VECTORS, sample

_DS = {"ds": edxml.DS_NS}
LEGACY = SignatureProfile.for_deployment(allow_rsa_sha1=True)
ALL_VECTORS = sorted([*(VECTORS / "xmldsig-interop").rglob("*.xml"), *(VECTORS / "xsw-dss").glob("*.xml")])


@dataclass(frozen=True)
class Verdicts:
    ours: bytes | None  # the canonical signed content, or None when refused
    structure_ok: bool
    signxml: bytes | None
    xmlsec: bool


def ours(data: bytes, cert: x509.Certificate) -> tuple[bytes | None, bool]:
    try:
        root = xmlsafe.parse(data, xmlsafe.XmlLimits(max_depth=64, max_elements=100_000, max_nodes=200_000))
        signature = find_signature(root)
        if signature is None:
            return None, False
        profile_structure(LEGACY).verify(signature)
    except Refusal:
        return None, False
    try:  # as the gateway pins: the certificate the signature carries must decode and be the one given
        carried = embedded_certificates(signature)
        if carried and cert not in carried:
            return None, True
    except Refusal:
        return None, True
    try:
        return exclusive_c14n(core_validation(root, signature, cert), None), True
    except Refusal:
        return None, True


def by_signxml(data: bytes, cert: x509.Certificate) -> bytes | None:
    config = SignatureConfiguration(
        require_x509=True,
        verification_time=cert.not_valid_before_utc,  # the key decides here; time is the trust store's job
        expect_references=1,
        signature_methods=LEGACY.signature_methods,
        digest_algorithms=LEGACY.digest_methods,
    )
    try:
        result = XMLVerifier().verify(data, x509_cert=cert, expect_config=config)
    except (SignXMLException, etree.LxmlError, ValueError, TypeError):
        return None
    return bytes(result.signed_data) if not isinstance(result, list) else None


def by_xmlsec(data: bytes, cert: x509.Certificate) -> bool:
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        node = root if root.tag == f"{{{edxml.DS_NS}}}Signature" else root.find(f".//{{{edxml.DS_NS}}}Signature")
        if node is None:
            return False
        context = xmlsec.SignatureContext()
        context.key = xmlsec.Key.from_memory(
            cert.public_bytes(serialization.Encoding.PEM), xmlsec.constants.KeyDataFormatCertPem
        )
        context.verify(node)
    except (xmlsec.Error, etree.LxmlError, ValueError):
        return False
    return True


def verdicts(data: bytes, cert: x509.Certificate) -> Verdicts:
    content, structure_ok = ours(data, cert)
    return Verdicts(content, structure_ok, by_signxml(data, cert), by_xmlsec(data, cert))


def assert_agreement(v: Verdicts) -> None:
    if v.ours is not None:
        assert v.signxml is not None and v.xmlsec, "the gateway accepted what an oracle refuses"
        assert v.ours == v.signxml, "the content handed on differs from what signxml says was signed"
    if v.structure_ok and v.signxml is not None and v.xmlsec:
        assert v.ours is not None, "both oracles accept a document inside the profile that the gateway refuses"


# --- public vectors ------------------------------------------------------------------------------


def _vector_certificate(data: bytes) -> x509.Certificate | None:
    """The embedded certificate that signed, if an oracle finds one does; else the first (CAs come along)."""
    try:
        root = etree.fromstring(data)
        signature = find_signature(root)
        certs = embedded_certificates(signature) if signature is not None else []
    except (etree.LxmlError, Refusal):
        return None
    for cert in certs:
        if by_xmlsec(data, cert) or by_signxml(data, cert) is not None:
            return cert
    return certs[0] if certs else None


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=lambda p: str(Path(p).relative_to(VECTORS)))
def test_on_every_public_vector_the_gateway_agrees_with_signxml_and_xmlsec(vector: Path):
    data = vector.read_bytes()
    cert = _vector_certificate(data)
    if cert is None:  # keys by KeyValue or by reference only: the gateway never verifies those
        assert ours(data, pki.make_ca().cert)[0] is None
        return
    assert_agreement(verdicts(data, cert))


def test_the_oracles_accept_some_vectors_that_the_profile_refuses():
    """No public vector follows the edXML profile (Id references, inclusive C14N, several references), so on
    them the comparison shows soundness only; each oracle still accepts some, so neither is a dead check."""
    found = [(v, _vector_certificate(v.read_bytes())) for v in ALL_VECTORS]
    by_each = [verdicts(v.read_bytes(), cert) for v, cert in found if cert is not None]
    assert any(v.signxml is not None for v in by_each) and any(v.xmlsec for v in by_each)
    assert not any(v.ours is not None for v in by_each)


# --- signed edXML documents and their mutations -------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca()


@pytest.fixture(scope="module")
def documents(ca: pki.Issued) -> list[tuple[bytes, x509.Certificate]]:
    rsa = pki.issue_signing_certificate(ca, "RSA", "000.00.00.H29")
    ec = pki.issue_signing_certificate(ca, "EC", "000.00.00.H29", key=pki.generate_key("ec"))
    unsigned = sample("cong-van.edxml")
    return [
        (sign_edxml(unsigned, rsa.key, [rsa.cert]), rsa.cert),
        (sign_edxml(unsigned, rsa.key, [rsa.cert], method=SignatureMethod.SHA256_RSA_MGF1), rsa.cert),
        (sign_edxml(unsigned, rsa.key, [rsa.cert], method=SignatureMethod.RSA_SHA512), rsa.cert),
        (sign_edxml(unsigned, ec.key, [ec.cert]), ec.cert),
    ]


def test_every_signing_method_of_the_profile_is_accepted_by_all_three(documents):
    for data, cert in documents:
        v = verdicts(data, cert)
        assert v.ours is not None and v.signxml is not None and v.xmlsec
        assert_agreement(v)


def test_a_document_signed_by_xmlsec_is_accepted(ca):
    """Interoperability the other way round: a signature made by xmlsec1, not by signxml."""
    signer = pki.issue_signing_certificate(ca, "X", "000.00.00.H29")
    root = xmlsafe.parse(sample("cong-van.edxml"))
    header = root.find(f"{edxml.q('edXMLEnvelope')}/{edxml.q('edXMLHeader')}")
    template = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256)
    header.append(template)
    reference = xmlsec.template.add_reference(template, xmlsec.constants.TransformSha256, uri="")
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(template))
    context = xmlsec.SignatureContext()
    key_pem = signer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    context.key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    context.key.load_cert_from_memory(
        signer.cert.public_bytes(serialization.Encoding.PEM), xmlsec.constants.KeyDataFormatCertPem
    )
    context.sign(template)
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    v = verdicts(data, signer.cert)
    assert v.ours is not None and v.xmlsec and v.signxml is not None


def _mutate(data: bytes, where: int, kind: str, text: str) -> bytes:
    """One change an attacker or a careless system could make to signed bytes."""
    root = etree.fromstring(data)
    elements = list(root.iter())
    element = elements[where % len(elements)]
    signature = root.find(".//ds:Signature", _DS)
    assert signature is not None
    if kind == "text":
        element.text = (element.text or "") + text
    elif kind == "tail" and element is not root:
        element.tail = (element.tail or "") + text
    elif kind == "comment":
        element.insert(0, etree.Comment(text.replace("-", "") or "c"))
    elif kind == "pi" and element is not root:
        element.addnext(etree.ProcessingInstruction("note", text))
    elif kind == "attribute":
        element.set("note", text)
    elif kind == "namespace":
        fresh = etree.Element(element.tag, nsmap={**(element.nsmap or {}), "extra": "urn:extra"})
        fresh.attrib.update(element.attrib)
        fresh.text, fresh.tail = element.text, element.tail
        fresh.extend(list(element))
        if element.getparent() is None:
            return bytes(etree.tostring(fresh, xml_declaration=True, encoding="UTF-8"))
        element.getparent().replace(element, fresh)
    elif kind == "digest":
        node = signature.find(".//ds:DigestValue", _DS)
        node.text = _flip(node.text or "", where)
    elif kind == "value":
        node = signature.find("ds:SignatureValue", _DS)
        node.text = _flip(node.text or "", where)
    elif kind == "move-signature" and element is not signature and signature not in element.iterancestors():
        element.append(signature)
    elif kind == "whitespace":
        return data.replace(b"><", b">" + text.encode()[:1].strip() + b" <", 1) if where % 2 else data + b"\n"
    elif kind == "prefix-list":
        transform = signature.findall(".//ds:Transform", _DS)[-1]
        etree.SubElement(transform, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces").set(
            "PrefixList", "edXML ds"
        )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _flip(b64: str, where: int) -> str:
    raw = bytearray(base64.b64decode("".join(b64.split())))
    raw[where % len(raw)] ^= 1 << (where % 8)
    return base64.b64encode(bytes(raw)).decode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(min_value=0, max_value=3),
    where=st.integers(min_value=0, max_value=10_000),
    kind=st.sampled_from(
        [
            "text",
            "tail",
            "comment",
            "pi",
            "attribute",
            "namespace",
            "digest",
            "value",
            "move-signature",
            "whitespace",
            "prefix-list",
        ]
    ),
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8),
)
def test_on_mutated_signed_documents_the_gateway_agrees_with_signxml_and_xmlsec(documents, which, where, kind, text):
    data, cert = documents[which]
    assert_agreement(verdicts(_mutate(data, where, kind, text), cert))


@pytest.mark.parametrize(
    ("kind", "text", "accepted"),
    [
        ("comment", "a note", True),  # C14N without comments: a comment changes nothing signed
        ("namespace", "", True),  # exclusive C14N drops a declaration nothing uses
        ("whitespace", "", True),  # after the root element
        ("text", "x", False),
        ("attribute", "x", False),
        ("digest", "", False),
        ("value", "", False),
    ],
)
def test_changes_that_keep_or_break_the_signature_are_judged_alike(documents, kind, text, accepted):
    data, cert = documents[0]
    where = 3 if kind != "whitespace" else 0
    v = verdicts(_mutate(data, where, kind, text), cert)
    assert_agreement(v)
    assert (v.ours is not None) is accepted and (v.signxml is not None) is accepted and v.xmlsec is accepted


def test_a_comment_inside_signed_text_is_read_as_the_signer_canonicalized_it(documents):
    """``<Subject>A<!-- -->B</Subject>`` is ``AB`` to the signer; the gateway must not read ``A``."""
    data, cert = documents[0]
    start = data.index(b"<edXML:Subject>") + len(b"<edXML:Subject>")
    whole = edxml.read_document_header(xmlsafe.parse(data)).subject
    cut = data[: start + 1] + b"<!-- cut -->" + data[start + 1 :]
    root = xmlsafe.parse(cut)
    signature = find_signature(root)
    assert signature is not None
    assert edxml.read_document_header(core_validation(root, signature, cert)).subject == whole


def test_a_processing_instruction_beside_the_root_is_refused_as_the_oracles_disagree(documents):
    data, cert = documents[0]
    with_pi = data.replace(b"?>", b"?><?xml-stylesheet href='x.xsl'?>", 1)
    v = verdicts(with_pi, cert)
    assert v.ours is None and v.structure_ok
    assert v.signxml is not None and not v.xmlsec  # signxml digests the root element, xmlsec1 the document


@pytest.mark.parametrize("element", ["X509Certificate", "SignatureValue", "DigestValue"])
def test_base64_with_data_after_its_padding_is_refused_like_signxml_does(documents, element):
    """Found by the mutation test above: a character after a value's ``=`` padding was dropped by a lenient
    decoder (and by xmlsec1), refused by signxml; the gateway now refuses it everywhere."""
    data, cert = documents[0]
    root = etree.fromstring(data)
    node = root.find(f".//ds:{element}", _DS)
    assert node is not None and node.text
    padded = "".join(node.text.split())
    if not padded.endswith("="):
        padded = padded[:-4] + "AA=="  # a value whose length needs padding: the check is on what follows it
    node.text = padded + "0"
    v = verdicts(bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8")), cert)
    assert v.ours is None


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_a_seal_signed_by_the_lean_signer_is_accepted_by_all_three(ca, kind):
    """The gateway signs its seals without signxml (gateway.documents.signing.sign_enveloped_lean)."""
    from datetime import UTC, datetime

    from gateway.documents.seal import SealFacts, build_seal

    key = pki.generate_key(kind) if kind == "ec" else None
    signer = pki.issue_signing_certificate(ca, "Gateway", "000.00.00.H29", **({"key": key} if key else {}))
    facts = SealFacts(
        gateway="https://gw.example",
        document_uuid="0b7e4c2e-0000-4000-8000-000000000001",
        kind="document",
        document_id="000.00.00.H29,2026/12/02,1/UBND-VX",
        sha256="ab" * 32,
        size=1234,
        sender="000.00.00.H29",
        recipients=("000.00.04.H29", "Ủy ban"),
        signer_certificate_sha256="cd" * 32,
        received_at=datetime(2026, 12, 2, 8, 30, tzinfo=UTC),
        audit_index=7,
    )
    seal = build_seal(facts, signer.key, [signer.cert])
    v = verdicts(seal, signer.cert)
    assert v.ours is not None and v.signxml is not None and v.xmlsec
    assert_agreement(v)
