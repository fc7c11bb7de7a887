"""The signature profile: what is accepted, what is refused and why, and that any change to signed content fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner

from gateway.documents import edxml, xmlsafe
from gateway.documents.signing import edxml_header, sign_edxml, sign_enveloped
from gateway.documents.verification import EnvelopedSignatureVerifier, SignatureProfile
from gateway.policy import Refusal
from gateway.services import EDXML_SIGNATURE_PARENT
from gateway.trust import pki
from gateway.trust.chain import TrustStore
from tests.support import sample


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca()


@pytest.fixture(scope="module")
def signer(ca: pki.Issued) -> pki.Issued:
    return pki.issue_signing_certificate(ca, "UBND", "000.00.00.H29")


@pytest.fixture(scope="module")
def verifier(ca: pki.Issued) -> EnvelopedSignatureVerifier:
    return EnvelopedSignatureVerifier(TrustStore([ca.cert]), SignatureProfile(), EDXML_SIGNATURE_PARENT)


@pytest.fixture(scope="module")
def signed(signer: pki.Issued) -> bytes:
    return sign_edxml(sample("cong-van.edxml"), signer.key, [signer.cert])


def refusal_of(verifier: EnvelopedSignatureVerifier, data: bytes, certs: list) -> Refusal:  # type: ignore[type-arg]
    with pytest.raises(Refusal) as caught:
        verifier.verify(data, xmlsafe.parse(data), certs)
    assert caught.value.reason
    return caught.value


def test_valid_signature_yields_only_the_signed_content(verifier, signer, signed):
    result = verifier.verify(signed, xmlsafe.parse(signed), [signer.cert])
    assert result.signature_method == "rsa-sha256" and not result.legacy_algorithm
    assert result.root.find(f".//{{{edxml.DS_NS}}}Signature") is None  # the enveloped signature is excised
    assert edxml.read_document_header(result.root).recipients == ("000.00.04.H29", "000.00.31.H29")


@pytest.mark.parametrize("method", [SignatureMethod.SHA256_RSA_MGF1, SignatureMethod.RSA_SHA512])
def test_rsa_pss_and_sha512_are_accepted(verifier, signer, method):
    data = sign_edxml(sample("cong-van.edxml"), signer.key, [signer.cert], method=method)
    assert verifier.verify(data, xmlsafe.parse(data), [signer.cert]).signer_fingerprint == pki.fingerprint(signer.cert)


def test_ecdsa_p256_is_accepted(verifier, ca):
    ec_signer = pki.issue_signing_certificate(ca, "EC", "000.00.04.H29", key=pki.generate_key("ec"))
    data = sign_edxml(sample("cong-van.edxml"), ec_signer.key, [ec_signer.cert])
    assert verifier.verify(data, xmlsafe.parse(data), [ec_signer.cert]).signature_method == "ecdsa-sha256"


class _LegacySha1Signer(XMLSigner):
    """Signs as 2018-era senders did (rsa-sha1/sha1); signxml rightly refuses this by default."""

    def check_deprecated_methods(self) -> None:
        return None


def _legacy_signed(signer: pki.Issued) -> bytes:
    root = xmlsafe.parse(sample("cong-van.edxml"))
    placeholder = etree.SubElement(edxml_header(root), f"{{{edxml.DS_NS}}}Signature", nsmap={"ds": edxml.DS_NS})
    placeholder.set("Id", "placeholder")
    legacy = _LegacySha1Signer(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA1,
        digest_algorithm=DigestAlgorithm.SHA1,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    return etree.tostring(legacy.sign(root, key=signer.key, cert=[signer.cert]), xml_declaration=True, encoding="UTF-8")


def test_rsa_sha1_is_refused_unless_the_operator_allows_it_and_then_flagged(ca, signer):
    data = _legacy_signed(signer)
    strict = EnvelopedSignatureVerifier(TrustStore([ca.cert]), SignatureProfile(), EDXML_SIGNATURE_PARENT)
    assert refusal_of(strict, data, [signer.cert]).code == "signature-algorithm"
    legacy = EnvelopedSignatureVerifier(
        TrustStore([ca.cert]), SignatureProfile.for_deployment(allow_rsa_sha1=True), EDXML_SIGNATURE_PARENT
    )
    result = legacy.verify(data, xmlsafe.parse(data), [signer.cert])
    assert result.legacy_algorithm and "LEGACY-SHA1" in result.summary


def test_certificate_from_an_unknown_ca_is_refused(verifier):
    rogue_ca = pki.make_ca("Rogue CA")
    rogue = pki.issue_signing_certificate(rogue_ca, "UBND", "000.00.00.H29")
    data = sign_edxml(sample("cong-van.edxml"), rogue.key, [rogue.cert])
    assert refusal_of(verifier, data, [rogue.cert]).code == "certificate-untrusted"


def test_certificate_without_signing_key_usage_is_refused(verifier, ca):
    enc_only = pki.issue_signing_certificate(ca, "enc", "x", key_usage_signing=False)
    data = sign_edxml(sample("cong-van.edxml"), enc_only.key, [enc_only.cert])
    refusal = refusal_of(verifier, data, [enc_only.cert])
    assert refusal.code == "certificate-usage" and "digitalSignature" in refusal.reason


def test_tls_server_only_certificate_may_not_sign_documents(verifier, ca):
    from cryptography.x509.oid import ExtendedKeyUsageOID

    web = pki.issue_signing_certificate(ca, "web", "x", extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    data = sign_edxml(sample("cong-van.edxml"), web.key, [web.cert])
    refusal = refusal_of(verifier, data, [web.cert])
    assert refusal.code == "certificate-usage" and "serverAuth" in refusal.reason


def test_certificate_with_tls_and_signing_purposes_may_sign(verifier, ca):
    from cryptography.x509.oid import ExtendedKeyUsageOID

    purposes = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
    both = pki.issue_signing_certificate(ca, "both", "x", extended_key_usage=purposes)
    data = sign_edxml(sample("cong-van.edxml"), both.key, [both.cert])
    assert verifier.verify(data, xmlsafe.parse(data), [both.cert]).signer == both.cert


def test_end_entity_certificate_with_ca_true_may_not_sign(verifier, ca):
    ca_flagged = pki.issue_signing_certificate(ca, "ca-flagged", "x", ca_flag=True)
    data = sign_edxml(sample("cong-van.edxml"), ca_flagged.key, [ca_flagged.cert])
    refusal = refusal_of(verifier, data, [ca_flagged.cert])
    assert refusal.code == "certificate-usage" and "CA:TRUE" in refusal.reason


def test_weak_rsa_key_is_refused(verifier, ca):
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = pki.issue_signing_certificate(ca, "weak", "x", key=weak_key)
    data = sign_edxml(sample("cong-van.edxml"), weak.key, [weak.cert])
    assert refusal_of(verifier, data, [weak.cert]).code == "certificate-weak-key"


def test_not_yet_valid_certificate_is_refused(verifier, ca):
    future = pki.issue_signing_certificate(ca, "future", "x", not_before=datetime.now(UTC) + timedelta(days=2))
    data = sign_edxml(sample("cong-van.edxml"), future.key, [future.cert])
    assert refusal_of(verifier, data, [future.cert]).code == "certificate-expired"


def test_signature_outside_the_header_is_refused(verifier, signer):
    root = xmlsafe.parse(sample("cong-van.edxml"))
    data = sign_enveloped(root, root, signer.key, [signer.cert])  # last child of the root, not of edXMLHeader
    assert refusal_of(verifier, data, [signer.cert]).code == "signature-misplaced"


def test_a_second_signature_is_refused(verifier, signer, signed):
    root = xmlsafe.parse(signed)
    signature = root.find(f".//{{{edxml.DS_NS}}}Signature")
    root.find(f"{edxml.q('edXMLEnvelope')}/{edxml.q('edXMLBody')}").append(etree.fromstring(etree.tostring(signature)))
    data = etree.tostring(root)
    assert refusal_of(verifier, data, [signer.cert]).code == "signature-ambiguous"


def test_reference_to_an_id_instead_of_the_whole_document_is_refused(verifier, signer, signed):
    data = signed.replace(b'URI=""', b'URI="#x"', 1)
    assert refusal_of(verifier, data, [signer.cert]).code == "signature-profile"


def test_inclusive_c14n_transform_is_refused(verifier, signer, signed):
    data = signed.replace(b"http://www.w3.org/2001/10/xml-exc-c14n#", b"http://www.w3.org/2006/12/xml-c14n11", 1)
    assert refusal_of(verifier, data, [signer.cert]).code == "signature-profile"


def test_no_registered_certificate_means_refusal(verifier, signed):
    assert refusal_of(verifier, signed, []).code == "certificate-not-registered"


def test_trust_decision_is_cached_per_certificate_and_not_shared_across_trust_stores(ca, signer):
    store = TrustStore([ca.cert])
    store.verify(signer.cert)
    assert pki.fingerprint(signer.cert) in store._decisions
    other = TrustStore([pki.make_ca("Other").cert])
    with pytest.raises(Refusal):
        other.verify(signer.cert)


def test_empty_trust_store_is_refused_at_construction():
    with pytest.raises(ValueError):
        TrustStore([])


# --- any change to signed content is refused ----------------------------------------------------

_TEXT_PATHS = [
    "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:From/e:OrganId",
    "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:To/e:OrganId",
    "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:DocumentId",
    "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:Subject",
    "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:Content",
    "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:DueDate",
    "e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList/e:TraceHeader/e:Timestamp",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(_TEXT_PATHS),
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20),
    mode=st.sampled_from(["replace", "append", "add-element", "add-attribute"]),
)
def test_any_change_to_signed_content_is_refused(verifier, signer, signed, path, text, mode):
    root = xmlsafe.parse(signed)
    node = root.find(path, {"e": edxml.NS})
    if mode == "replace":
        if (node.text or "") == text:
            return
        node.text = text
    elif mode == "append":
        node.text = (node.text or "") + text
    elif mode == "add-element":
        etree.SubElement(node.getparent(), edxml.q("Extra")).text = text
    else:
        node.set("note", text)
    mutated = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    assert refusal_of(verifier, mutated, [signer.cert]).code in ("signature-invalid", "xml-malformed")


def test_whitespace_outside_the_root_does_not_matter_but_inside_does(verifier, signer, signed):
    assert verifier.verify(signed + b"\n", xmlsafe.parse(signed + b"\n"), [signer.cert])
    inside = signed.replace(b"<edXML:Subject>", b"<edXML:Subject> ", 1)
    assert refusal_of(verifier, inside, [signer.cert]).code == "signature-invalid"


def test_header_is_required_to_sign():
    with pytest.raises(ValueError):
        edxml_header(etree.fromstring(b"<edXML/>"))


def test_text_inside_signature_structure_is_refused_not_crashed(verifier, signer, signed):
    """Found by the splicing property test: signxml's own XMLDSig schema check raised lxml's DocumentInvalid."""
    data = signed.replace(b"<ds:Transforms>", b"<ds:Transforms>!", 1)
    assert refusal_of(verifier, data, [signer.cert]).code == "signature-profile"


FORGED_HEADER = (
    b'<edXML:MessageHeader xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
    b"<edXML:To><edXML:OrganId>000.00.11.H29</edXML:OrganId></edXML:To></edXML:MessageHeader>"
)


@pytest.mark.parametrize(
    ("anchor", "insertion", "what"),
    [
        (b"</ds:KeyInfo>", b"</ds:KeyInfo><ds:Object>" + FORGED_HEADER + b"</ds:Object>", "Object"),
        (b"</ds:X509Data>", b"</ds:X509Data>" + FORGED_HEADER, "MessageHeader"),
        (b"<ds:X509Data>", b"<ds:X509Data>" + FORGED_HEADER, "MessageHeader"),
        (b"</ds:KeyInfo>", b"<ds:KeyName>forged</ds:KeyName></ds:KeyInfo>", "KeyName"),
        (b"</ds:SignatureValue>", b"</ds:SignatureValue><!-- a note nobody signed -->", "comments"),
        (b"</ds:SignedInfo>", b"</ds:SignedInfo>unsigned words", "text"),
        (b"<ds:Signature ", b'<ds:Signature data-x="1" ', "attribute"),
    ],
    ids=["object", "header-after-x509data", "header-in-x509data", "keyname", "comment", "text", "attribute"],
)
def test_unsigned_content_inside_the_signature_element_is_refused(verifier, signer, signed, anchor, insertion, what):
    """The enveloped transform removes the whole signature from what is signed: anything placed in it after
    signing would be stored and forwarded unsigned (issue 10, finding 3)."""
    assert anchor in signed
    data = signed.replace(anchor, insertion, 1)
    refusal = refusal_of(verifier, data, [signer.cert])
    assert refusal.code == "signature-profile" and what in refusal.reason, refusal.reason


def test_the_profiles_own_signatures_pass_the_element_check(verifier, signer, signed):
    assert verifier.verify(signed, xmlsafe.parse(signed), [signer.cert]).signer == signer.cert
