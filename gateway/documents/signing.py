"""Enveloped XMLDSig in the edXML profile: signature as the last child of a chosen parent element,
``Reference URI=""``, enveloped-signature + exclusive C14N, SHA-256, certificate in KeyInfo.

Documents are signed with signxml (``gateway sign``, the demo, the tests); the gateway's own seals,
signed inside every submission's transaction, with the lean :func:`sign_enveloped_lean`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
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


_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
_EXC_C14N_URI = "http://www.w3.org/2001/10/xml-exc-c14n#"
_LEAN_METHODS = {
    ec.EllipticCurvePrivateKey: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    rsa.RSAPrivateKey: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
}


def sign_enveloped_lean(root: etree._Element, key: SigningKey, chain: Sequence[x509.Certificate]) -> bytes:
    """The profile's enveloped signature as the last child of ``root``, made directly with lxml and cryptography.

    For the gateway's own seals, signed inside the storing transaction of every document: signxml's
    generic machinery (two tree copies and re-parses) was an eighth of a submission's time.  The steps
    are XMLDSig §3.1 core generation: digest the document's exclusive C14N (the signature is not yet
    in it: the enveloped transform's result), build SignedInfo, canonicalize it, sign it.  Documents
    of agencies are signed with signxml (:func:`sign_enveloped`); both are checked by the same verifier
    and by signxml and xmlsec1 in the tests."""
    method = next((uri for kind, uri in _LEAN_METHODS.items() if isinstance(key, kind)), None)
    if method is None:
        raise TypeError("only RSA and EC keys sign seals")
    digest = hashlib.sha256(etree.tostring(root, method="c14n", exclusive=True, with_comments=False)).digest()
    ds = f"{{{DS_NS}}}"
    signature = etree.SubElement(root, f"{ds}Signature", nsmap={"ds": DS_NS})
    signed_info = etree.SubElement(signature, f"{ds}SignedInfo")
    etree.SubElement(signed_info, f"{ds}CanonicalizationMethod", Algorithm=_EXC_C14N_URI)
    etree.SubElement(signed_info, f"{ds}SignatureMethod", Algorithm=method)
    reference = etree.SubElement(signed_info, f"{ds}Reference", URI="")
    transforms = etree.SubElement(reference, f"{ds}Transforms")
    etree.SubElement(transforms, f"{ds}Transform", Algorithm=_ENVELOPED)
    etree.SubElement(transforms, f"{ds}Transform", Algorithm=_EXC_C14N_URI)
    etree.SubElement(reference, f"{ds}DigestMethod", Algorithm=_SHA256)
    etree.SubElement(reference, f"{ds}DigestValue").text = base64.b64encode(digest).decode()
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(canonical, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        value = r.to_bytes(size, "big") + s.to_bytes(size, "big")  # XMLDSig 1.1 §6.4.3: r || s
    else:
        value = key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
    etree.SubElement(signature, f"{ds}SignatureValue").text = base64.b64encode(value).decode()
    x509_data = etree.SubElement(etree.SubElement(signature, f"{ds}KeyInfo"), f"{ds}X509Data")
    for cert in chain:
        der = cert.public_bytes(serialization.Encoding.DER)
        etree.SubElement(x509_data, f"{ds}X509Certificate").text = base64.b64encode(der).decode()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
