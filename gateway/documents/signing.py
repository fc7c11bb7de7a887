"""Enveloped XMLDSig in the edXML profile: signature as the last child of a chosen parent element,
``Reference URI=""``, enveloped-signature + exclusive C14N, SHA-256, certificate in KeyInfo.

Used by the gateway for its seals and by operators and tests (``gateway sign``) for documents.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner

from gateway.documents.edxml import DS_NS, q
from gateway.documents.xmlsafe import XmlLimits, parse
from gateway.trust.pki import SigningKey

EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0


def signature_method_for(key: SigningKey, *, pss: bool = False) -> SignatureMethod:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return SignatureMethod.ECDSA_SHA256
    if isinstance(key, rsa.RSAPrivateKey):
        return SignatureMethod.SHA256_RSA_MGF1 if pss else SignatureMethod.RSA_SHA256
    raise TypeError("only RSA and EC keys sign documents")


def sign_enveloped(
    root: etree._Element,
    parent: etree._Element,
    key: SigningKey,
    chain: Sequence[x509.Certificate],
    *,
    method: SignatureMethod | None = None,
) -> bytes:
    """Sign ``root`` with the signature placed as the last child of ``parent``; returns UTF-8 bytes."""
    if root.find(f".//{{{DS_NS}}}Signature") is not None:
        raise ValueError("the document is already signed; sign the unsigned original")
    placeholder = etree.SubElement(parent, f"{{{DS_NS}}}Signature", nsmap={"ds": DS_NS})
    placeholder.set("Id", "placeholder")
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method or signature_method_for(key),
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=EXC_C14N,
    )
    # signxml re-parses a copy of the tree with libxml2's default limits, which refuse the >10 MB text
    # node of a large attachment; the tree was already parsed safely (xmlsafe), so lifting them is safe.
    setattr(signer, "_parser", etree.XMLParser(resolve_entities=False, huge_tree=True))  # noqa: B010
    signed = signer.sign(root, key=key, cert=list(chain))
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def edxml_header(root: etree._Element) -> etree._Element:
    header = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}")
    if header is None:
        raise ValueError("not an edXML document: edXMLEnvelope/edXMLHeader is missing")
    return header


def sign_edxml(
    data: bytes, key: SigningKey, chain: Sequence[x509.Certificate], *, method: SignatureMethod | None = None
) -> bytes:
    """Sign an unsigned edXML document (bytes) the way departmental systems do."""
    root = parse(data, XmlLimits(max_bytes=len(data)))  # the signer's own document: any size it chose
    return sign_enveloped(root, edxml_header(root), key, chain, method=method)
