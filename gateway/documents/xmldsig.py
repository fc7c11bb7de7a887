"""XMLDSig core validation for the one shape the gateway accepts, on the tree already parsed.

W3C XML Signature Syntax and Processing 1.1, §3.2 "Core Validation", in its two steps:
reference validation (§3.2.1: apply the transforms, digest, compare with ``DigestValue``) and
signature validation (§3.2.2: canonicalize ``SignedInfo``, check ``SignatureValue`` with the
signer's key).  The structure was checked before (``verification.py``: one ``Reference URI=""``,
enveloped-signature then exclusive C14N, allowed algorithms), so this module implements only
that profile, on the tree the hardened parser produced: no re-parse, no copy of the document,
no Id lookup, and the content handed back is exactly the node set that was digested.

Each function is one step named after the specification; failures are :class:`Refusal` with
the reasons the gateway has always given.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from gateway.documents.edxml import DS_NS
from gateway.policy import Refusal

_DS = {"ds": DS_NS}
EXC_C14N_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"

DIGESTS: dict[str, str] = {  # DigestMethod URI (RFC 6931 §2.1) -> hashlib name
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}


@dataclass(frozen=True)
class Method:
    """A SignatureMethod: the key family it needs, its padding, and its hash (RFC 6931 §2.3)."""

    family: str  # "rsa", "rsa-pss" or "ecdsa"
    hash: type[hashes.HashAlgorithm]


_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_MORE07 = "http://www.w3.org/2007/05/xmldsig-more#"
METHODS: dict[str, Method] = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": Method("rsa", hashes.SHA1),
    f"{_MORE}rsa-sha256": Method("rsa", hashes.SHA256),
    f"{_MORE}rsa-sha384": Method("rsa", hashes.SHA384),
    f"{_MORE}rsa-sha512": Method("rsa", hashes.SHA512),
    f"{_MORE07}sha256-rsa-MGF1": Method("rsa-pss", hashes.SHA256),
    f"{_MORE07}sha384-rsa-MGF1": Method("rsa-pss", hashes.SHA384),
    f"{_MORE07}sha512-rsa-MGF1": Method("rsa-pss", hashes.SHA512),
    f"{_MORE}ecdsa-sha256": Method("ecdsa", hashes.SHA256),
    f"{_MORE}ecdsa-sha384": Method("ecdsa", hashes.SHA384),
    f"{_MORE}ecdsa-sha512": Method("ecdsa", hashes.SHA512),
}


def decode_base64(text: str | None, what: str) -> bytes:
    """A base64 element value (whitespace allowed between characters, XMLDSig §4.5); anything else refused."""
    try:  # strict: data after the padding, or misplaced padding, is refused rather than quietly dropped
        return binascii.a2b_base64("".join((text or "").split()), strict_mode=True)
    except (ValueError, binascii.Error):
        raise Refusal("signature-invalid", f"{what} is not base64") from None


def inclusive_prefixes(method: etree._Element | None) -> list[str] | None:
    """Exclusive C14N's InclusiveNamespaces PrefixList (Exc-C14N §3), if the method element carries one."""
    if method is None:
        return None
    found = method.find(f"{{{EXC_C14N_NS}}}InclusiveNamespaces")
    if found is None or found.get("PrefixList") is None:
        return None
    return (found.get("PrefixList") or "").split()


def exclusive_c14n(element: etree._Element, prefixes: list[str] | None) -> bytes:
    """Exclusive XML Canonicalization 1.0 without comments of ``element``'s subtree, by libxml2."""
    with _canonicalizable():
        return etree.tostring(
            element, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=prefixes
        )


@contextmanager
def _canonicalizable() -> Iterator[None]:
    """libxml2 refuses to canonicalize some well-formed documents (a relative namespace URI, C14N §2.1)."""
    try:
        yield
    except etree.C14NError as exc:
        raise Refusal(
            "signature-invalid", f"the document cannot be canonicalized (a relative namespace URI?): {exc}"
        ) from None


class _Digesting:
    """A file for libxml2's C14N writer that hashes what it is given: a 200 MB document is never held twice."""

    def __init__(self, algorithm: str) -> None:
        self.hash = hashlib.new(algorithm)

    def write(self, chunk: bytes) -> int:
        self.hash.update(chunk)
        return len(chunk)


# A text node longer than this is digested by the spliced path below.  libxml2's C14N writer makes
# escaped copies of a text node and hands it over whole: a 50 MB base64 attachment cost 150 MB more.
SPLICE_TEXT_CHARS = 1 << 20
# Only a text node that is its element's one child: lxml's ``.text`` joins adjacent text and CDATA nodes,
# so setting it where there are several would drop the others from the digest (review finding: CDATA
# beside a large attachment was left unsigned).  Anything else takes the plain path.
# Selected from Python, not by an XPath ``text()`` test: that hands back each node's text as a new string
# and casts it to a string once more for ``string-length()``, two copies of every attachment at once.
_NODE_COUNT = etree.XPath("count(node())")
_PIECE = 1 << 20


def document_digest(
    root: etree._Element, algorithm: str, prefixes: list[str] | None, *, large_text: bool = False
) -> bytes:
    """The digest of the document's exclusive C14N, computed while it is written out.

    With ``large_text`` (the document may hold text nodes over ``SPLICE_TEXT_CHARS``), each such node
    that is all its element holds (an attachment's base64) is swapped for a random marker, the rest is
    canonicalized by libxml2, and the hash is fed the output with each marker replaced by the node's
    canonical form (C14N §2.3: ``&`` ``<`` ``>`` and carriage return escaped, UTF-8) a megabyte at a
    time.  The bytes hashed are the same; the tree is restored."""
    tree = root.getroottree() if root.getparent() is None else etree.ElementTree(root)
    if large_text:
        spliced = _spliced_digest(tree, root, algorithm, prefixes)
        if spliced is not None:
            return spliced
    sink = _Digesting(algorithm)
    with _canonicalizable():
        write: Any = tree.write_c14n  # lxml-stubs predate the exclusive and inclusive_ns_prefixes arguments
        write(cast(IO[bytes], sink), exclusive=True, with_comments=False, inclusive_ns_prefixes=prefixes)
    return sink.hash.digest()


def _spliced_digest(tree: Any, root: etree._Element, algorithm: str, prefixes: list[str] | None) -> bytes | None:
    """The digest with each large text node hashed piecewise, or None when there is none to splice.

    Each large text is taken out of the tree as it is found (the tree's copy freed at once), so an
    attachment is held once while the rest is canonicalized, and put back before returning (a CDATA
    section comes back as the same characters in a text node: C14N and every reader see them alike)."""
    nonce = secrets.token_hex(16)
    taken: list[tuple[etree._Element, bytes, bytes]] = []
    try:
        for element in root.iter(etree.Element):
            if len(element) or _NODE_COUNT(element) != 1:
                continue
            text = element.text
            if text is not None and len(text) > SPLICE_TEXT_CHARS:
                placeholder = f"gateway-c14n-{nonce}-{len(taken)}-"
                element.text = placeholder  # frees the tree's copy before the encoded one is made
                try:
                    data = text.encode("utf-8")
                except BaseException:  # MemoryError: this element is not yet in ``taken``
                    element.text = text
                    raise
                taken.append((element, placeholder.encode(), data))
                del data
            del text
        if not taken:
            return None
        with _canonicalizable():
            canonical = etree.tostring(
                tree, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=prefixes
            )
        places = sorted((canonical.find(marker), marker, data) for _, marker, data in taken)
        if any(at < 0 or canonical.count(marker) != 1 for at, marker, _ in places):
            return None
        digest, done = hashlib.new(algorithm), 0
        for at, marker, data in places:
            digest.update(canonical[done:at])
            for start in range(0, len(data), _PIECE):  # UTF-8: no multi-byte sequence holds these bytes
                piece = data[start : start + _PIECE]
                digest.update(
                    piece.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;").replace(b"\r", b"&#xD;")
                )
            done = at + len(marker)
        digest.update(canonical[done:])
        del places
        return digest.digest()
    finally:
        while taken:
            element, _, data = taken.pop()
            # lxml takes ASCII bytes as they are (one copy, into the tree); other text goes back as str.
            element.text = data if data.isascii() else data.decode("utf-8")  # type: ignore[assignment]
            del element, data


def refuse_content_outside_the_root(root: etree._Element) -> None:
    """Processing instructions beside the root element: the document node of ``URI=""`` contains them, but
    implementations disagree (some digest the root element only), so such a document would verify or not
    depending on who checks it.  Comments there are harmless: C14N without comments drops them everywhere."""
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if isinstance(sibling, etree._ProcessingInstruction):
            raise Refusal(
                "signature-profile",
                "a processing instruction stands outside the root element; remove it and sign the document again",
            )


@contextmanager
def enveloped_signature_removed(signature: etree._Element) -> Iterator[None]:
    """The enveloped-signature transform (XMLDSig §6.6.4): the document without the Signature element.

    The element is detached in place for the duration (lxml moves an element's tail text with it, so the
    tail stays where it was), and put back if the block fails so a refused tree is left as it came."""
    parent = signature.getparent()
    if parent is None:
        raise Refusal("signature-misplaced", "an enveloped signature needs a parent element")
    position = parent.index(signature)
    previous = signature.getprevious()
    tail = signature.tail
    before = previous.tail if previous is not None else parent.text
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    signature.tail = None
    parent.remove(signature)
    try:
        yield
    except BaseException:
        if previous is not None:
            previous.tail = before
        else:
            parent.text = before
        signature.tail = tail
        parent.insert(position, signature)
        raise


def strip_comments(root: etree._Element) -> None:
    """The signed node set has no comments (C14N without comments): neither may what callers read, or a
    comment would cut ``<Subject>A<!-- -->B</Subject>`` to ``A`` for us and ``AB`` for the signer."""
    etree.strip_elements(root, etree.Comment, with_tail=False)


def reference_digest_matches(reference: etree._Element, root: etree._Element, *, large_text: bool = False) -> None:
    """Reference validation (§3.2.1): the digest of the transformed document equals ``DigestValue``.

    The transforms are the profile's: enveloped-signature (the caller removed the signature) then
    exclusive C14N with the Transform's own InclusiveNamespaces."""
    method = reference.find("ds:DigestMethod", _DS)
    algorithm = DIGESTS.get(method.get("Algorithm", "") if method is not None else "")
    if algorithm is None:
        raise Refusal("signature-algorithm", "the digest algorithm is not supported")
    expected = decode_base64(reference.findtext("ds:DigestValue", namespaces=_DS), "DigestValue")
    transforms = reference.findall("ds:Transforms/ds:Transform", _DS)
    prefixes = inclusive_prefixes(transforms[-1] if transforms else None)
    digest = document_digest(root, algorithm, prefixes, large_text=large_text)
    if not hmac.compare_digest(digest, expected):
        raise Refusal("signature-invalid", "digest mismatch: the signed content was changed after signing")


def _ecdsa_der(raw: bytes, key: ec.EllipticCurvePublicKey) -> bytes:
    """XMLDSig 1.1 §6.4.3: an ECDSA SignatureValue is r and s, each as long as the curve's order, concatenated."""
    size = (key.curve.key_size + 7) // 8
    if len(raw) != 2 * size:
        raise Refusal(
            "signature-invalid", f"an ECDSA {key.curve.name} SignatureValue is {2 * size} bytes, not {len(raw)}"
        )
    return encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))


def _key_family(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA-{key.key_size} key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC {key.curve.name} key"
    return f"a {type(key).__name__} key"


def signature_value_matches(method_uri: str, certificate: x509.Certificate, signed_info: bytes, value: bytes) -> None:
    """Signature validation (§3.2.2): ``SignatureValue`` over the canonical SignedInfo, with the signer's key."""
    method = METHODS.get(method_uri)
    if method is None:
        raise Refusal("signature-algorithm", "the signature algorithm is not supported")
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise Refusal("signature-invalid", "the signing certificate's public key cannot be read") from None
    digest = method.hash()
    try:
        if method.family in ("rsa", "rsa-pss") and isinstance(key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if method.family == "rsa"
                else padding.PSS(mgf=padding.MGF1(method.hash()), salt_length=digest.digest_size)
            )
            key.verify(value, signed_info, pad, digest)
        elif method.family == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(_ecdsa_der(value, key), signed_info, ec.ECDSA(digest))
        else:
            raise Refusal(
                "signature-invalid",
                f"the signature method is {method.family.upper()} but the signing certificate holds "
                f"{_key_family(key)}: sign with the method that fits the key",
            )
    except InvalidSignature:
        raise Refusal(
            "signature-invalid",
            "the signature value does not verify with the signing certificate's key: the document was signed "
            "with another key, or SignedInfo was changed after signing",
        ) from None


def core_validation(
    root: etree._Element, signature: etree._Element, signer: x509.Certificate, *, large_text: bool = False
) -> etree._Element:
    """§3.2 on a signature whose structure the profile already checked; returns the signed content.

    Signature validation comes first (it is cheap, and a forged SignedInfo should not cost a pass over
    a large document), then reference validation over the document without the signature.  On success
    the tree *is* the signed node set: the signature is detached and comments are gone, so nothing a
    caller reads can differ from what was digested.  A refused tree is left as it came."""
    refuse_content_outside_the_root(root)
    signed_info = signature.find("ds:SignedInfo", _DS)
    reference = signed_info.find("ds:Reference", _DS) if signed_info is not None else None
    method = signed_info.find("ds:SignatureMethod", _DS) if signed_info is not None else None
    if signed_info is None or reference is None or method is None:
        raise Refusal("signature-profile", "ds:SignedInfo must hold a SignatureMethod and a Reference")
    canonical = exclusive_c14n(signed_info, inclusive_prefixes(signed_info.find("ds:CanonicalizationMethod", _DS)))
    value = decode_base64(signature.findtext("ds:SignatureValue", namespaces=_DS), "SignatureValue")
    signature_value_matches(method.get("Algorithm", ""), signer, canonical, value)
    with enveloped_signature_removed(signature):
        reference_digest_matches(reference, root, large_text=large_text)
    strip_comments(root)
    return root
