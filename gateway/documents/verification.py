"""Verifying an enveloped XML signature against the gateway's profile.

The profile (DESIGN.md §3, Circular 15/2025/TT-BKHCN) is checked on the signature's structure
*before* any cryptography, each rule a small check with its own reason: exactly one signature,
at the pinned place, one ``Reference URI=""`` (the whole document: no Id lookups, hence no
signature wrapping through ambiguous or misplaced references), enveloped + exclusive C14N
transforms only, allowed algorithms only.  Then the signer is pinned to the sender's registered
certificates, its chain decided by the :class:`TrustStore`, and :mod:`xmldsig` checks the
signature value and the digest on the one parsed tree.  Callers receive only the signed node set.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from gateway.documents.edxml import DS_NS
from gateway.documents.xmldsig import EXC_C14N_NS, SPLICE_TEXT_CHARS, core_validation, decode_base64
from gateway.policy import AllOf, Refusal
from gateway.trust.chain import Chain, TrustStore
from gateway.trust.pki import fingerprint
from gateway.trust.revocation import Decision, RevocationChecker

_DS = {"ds": DS_NS}
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

_STRONG_SIGNATURES = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.SHA256_RSA_MGF1,
        SignatureMethod.SHA384_RSA_MGF1,
        SignatureMethod.SHA512_RSA_MGF1,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
_STRONG_DIGESTS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})


@dataclass(frozen=True)
class SignatureProfile:
    """Allowed algorithms.  rsa-sha1 only when the operator enables legacy senders; it is then flagged."""

    signature_methods: frozenset[SignatureMethod] = _STRONG_SIGNATURES
    digest_methods: frozenset[DigestAlgorithm] = _STRONG_DIGESTS

    @classmethod
    def for_deployment(cls, allow_rsa_sha1: bool) -> SignatureProfile:
        if not allow_rsa_sha1:
            return cls()
        return cls(_STRONG_SIGNATURES | {SignatureMethod.RSA_SHA1}, _STRONG_DIGESTS | {DigestAlgorithm.SHA1})

    @property
    def method_uris(self) -> frozenset[str]:
        return frozenset(m.value for m in self.signature_methods)

    @property
    def digest_uris(self) -> frozenset[str]:
        return frozenset(d.value for d in self.digest_methods)


@dataclass(frozen=True)
class SignedContent:
    """What the verifier says was signed, and by whom."""

    root: etree._Element
    signer: x509.Certificate
    signer_fingerprint: str
    signature_method: str
    legacy_algorithm: bool
    signature_value: bytes = b""  # the decoded ds:SignatureValue: what a trusted timestamp covers
    chain: Chain | None = None
    revocation: Decision | None = None  # None when the verifier checks no status (offline seal checks)

    def without_tree(self) -> SignedContent:
        """The same facts with an empty stand-in for the document tree.  A tree is as large as its document
        and the storing transaction needs none of it: letting it go first keeps a large attachment in memory
        once (the body) rather than three times (body, tree, the database driver's copy)."""
        return replace(self, root=etree.Element(self.root.tag))

    @property
    def summary(self) -> str:
        flag = " LEGACY-SHA1" if self.legacy_algorithm else ""
        status = ""
        if self.revocation is not None:
            found = self.revocation.status
            status = f" status={found.state}/{found.source}" if found else " status=UNKNOWN-ACCEPTED"
        return f"valid {self.signature_method}{flag} signer={self.signer_fingerprint}{status}"


def _short(uri: str) -> str:
    return uri.rsplit("#", 1)[-1] or uri


# --- structural checks on the one ds:Signature element ------------------------------------------

# Exactly what each element of the profile may contain, in order ("+" one or more, "?" optional).
_PROFILE_CHILDREN: dict[str, tuple[tuple[str, str], ...]] = {
    "Signature": (("SignedInfo", ""), ("SignatureValue", ""), ("KeyInfo", "?")),
    "SignedInfo": (("CanonicalizationMethod", ""), ("SignatureMethod", ""), ("Reference", "+")),
    "Reference": (("Transforms", "?"), ("DigestMethod", ""), ("DigestValue", "")),
    "Transforms": (("Transform", "+"),),
    "KeyInfo": (("X509Data", ""),),
    "X509Data": (("X509Certificate", "+"),),
}
_TEXT_ELEMENTS = frozenset({"SignatureValue", "DigestValue", "X509Certificate"})
_ATTRIBUTES = {"Signature": {"Id"}, "SignatureValue": {"Id"}, "SignedInfo": {"Id"}, "KeyInfo": {"Id"}}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class OnlyProfileElements:
    """The signature element holds exactly what the profile allows and nothing unsigned besides.

    An ``ds:Object``, a second header in ``KeyInfo``, a comment or any foreign element inside the
    signature is not covered by ``Reference URI=""`` (the enveloped transform removes the whole
    signature), yet it would be stored and forwarded with the signed bytes (issue 10, finding 3)."""

    def verify(self, signature: etree._Element) -> None:
        self._check(signature)

    def _check(self, element: etree._Element) -> None:
        name = _local(str(element.tag))
        for attribute in element.attrib:
            if attribute not in _ATTRIBUTES.get(name, set()) | {"Algorithm", "URI"}:
                raise Refusal("signature-profile", f"ds:{name} may not carry the attribute {_local(str(attribute))}")
        if name not in _TEXT_ELEMENTS and (element.text or "").strip():
            raise Refusal("signature-profile", f"ds:{name} may not hold text")
        children = list(element)
        for child in children:
            if not isinstance(child.tag, str):
                raise Refusal("signature-profile", f"ds:{name} may not hold comments or processing instructions")
            if (child.tail or "").strip():
                raise Refusal("signature-profile", f"ds:{name} may not hold text between its elements")
        allowed = _PROFILE_CHILDREN.get(name)
        if allowed is None:  # a leaf of the profile: methods and values hold no elements
            extra = [c for c in children if not _inclusive_namespaces(name, c)]
            if extra:
                raise Refusal("signature-profile", f"ds:{name} may not contain {_local(str(extra[0].tag))}")
            return
        position = 0
        for expected, arity in allowed:
            count = 0
            while position < len(children) and children[position].tag == f"{{{DS_NS}}}{expected}":
                self._check(children[position])
                position += 1
                count += 1
            if count == 0 and arity != "?":
                instead = f", not {_local(str(children[position].tag))}" if position < len(children) else ""
                raise Refusal("signature-profile", f"ds:{name} must contain ds:{expected}{instead}")
            if count > 1 and arity != "+":
                raise Refusal("signature-profile", f"ds:{name} may contain only one ds:{expected}")
        if position < len(children):
            found = children[position]
            where = "" if str(found.tag).startswith(f"{{{DS_NS}}}") else " (a foreign element)"
            raise Refusal(
                "signature-profile",
                f"ds:{name} may not contain {_local(str(found.tag))}{where}: the profile allows "
                + ", ".join(f"ds:{e}" for e, _ in allowed),
            )


def _inclusive_namespaces(parent: str, child: etree._Element) -> bool:
    """Exclusive C14N's optional InclusiveNamespaces PrefixList, the one child a method may have."""
    return parent in ("Transform", "CanonicalizationMethod") and child.tag == f"{{{EXC_C14N_NS}}}InclusiveNamespaces"


class SingleWholeDocumentReference:
    def verify(self, signature: etree._Element) -> None:
        references = signature.findall("ds:SignedInfo/ds:Reference", _DS)
        if len(references) != 1:
            raise Refusal("signature-profile", f"expected exactly one Reference, found {len(references)}")
        if references[0].get("URI") != "":
            raise Refusal(
                "signature-profile",
                f'Reference URI must be "" (the whole document), not {references[0].get("URI")!r}',
            )


class EnvelopedExclusiveTransforms:
    def verify(self, signature: etree._Element) -> None:
        transforms = [
            t.get("Algorithm") for t in signature.findall("ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform", _DS)
        ]
        if transforms != [ENVELOPED, EXC_C14N]:
            raise Refusal(
                "signature-profile",
                "transforms must be enveloped-signature then exclusive C14N, found "
                + (", ".join(_short(t or "?") for t in transforms) or "none"),
            )
        c14n = signature.find("ds:SignedInfo/ds:CanonicalizationMethod", _DS)
        if c14n is None or c14n.get("Algorithm") != EXC_C14N:
            found = _short(c14n.get("Algorithm") or "?") if c14n is not None else "none"
            raise Refusal("signature-profile", f"SignedInfo canonicalization must be exclusive C14N, found {found}")


class AllowedAlgorithms:
    def __init__(self, profile: SignatureProfile) -> None:
        self._profile = profile

    def verify(self, signature: etree._Element) -> None:
        method = signature.find("ds:SignedInfo/ds:SignatureMethod", _DS)
        uri = method.get("Algorithm", "") if method is not None else ""
        if uri not in self._profile.method_uris:
            raise Refusal("signature-algorithm", f"signature algorithm {_short(uri) or 'none'} is not allowed")
        for digest in signature.findall("ds:SignedInfo/ds:Reference/ds:DigestMethod", _DS):
            if digest.get("Algorithm", "") not in self._profile.digest_uris:
                raise Refusal(
                    "signature-algorithm", f"digest algorithm {_short(digest.get('Algorithm', ''))} is not allowed"
                )


def embedded_certificates(signature: etree._Element) -> list[x509.Certificate]:
    """The certificates a signature carries in KeyInfo/X509Data (untrusted until pinned or chained)."""
    found: list[x509.Certificate] = []
    for node in signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _DS):
        try:
            found.append(_certificate(decode_base64(node.text, "X509Certificate")))
        except ValueError:
            raise Refusal("signature-invalid", "KeyInfo holds an X509Certificate that cannot be decoded") from None
    return found


@functools.lru_cache(maxsize=512)
def _certificate(der: bytes) -> x509.Certificate:
    """Parsed once per process: an agency's every document carries the same certificate (the bytes are the key)."""
    return x509.load_der_x509_certificate(der)


def signature_value(signature: etree._Element) -> bytes:
    node = signature.find("ds:SignatureValue", _DS)
    return decode_base64(node.text, "SignatureValue") if node is not None else b""


def profile_structure(profile: SignatureProfile) -> AllOf[etree._Element]:
    """The structural rules, checked on the signature element before any cryptography."""
    return AllOf(
        [
            OnlyProfileElements(),
            SingleWholeDocumentReference(),
            EnvelopedExclusiveTransforms(),
            AllowedAlgorithms(profile),
        ]
    )


def find_signature(root: etree._Element) -> etree._Element | None:
    return root if root.tag == f"{{{DS_NS}}}Signature" else root.find(f".//{{{DS_NS}}}Signature")


# --- the verifier ------------------------------------------------------------------------------


class EnvelopedSignatureVerifier:
    """Verifies documents whose signature must sit as the last child of the element at ``parent_path``.

    ``parent_path`` is an ElementPath from the root (``""`` for the root itself), e.g.
    ``{ns}edXMLEnvelope/{ns}edXMLHeader`` for edXML.
    """

    def __init__(
        self,
        trust: TrustStore,
        profile: SignatureProfile,
        parent_path: str,
        *,
        revocation: RevocationChecker | None = None,
    ) -> None:
        self._trust = trust
        self._revocation = revocation
        self._profile = profile
        self._parent_path = parent_path
        self._structure = profile_structure(profile)

    def verify(
        self,
        data: bytes,
        root: etree._Element,
        candidates: Sequence[x509.Certificate],
        *,
        at: datetime | None = None,
    ) -> SignedContent:
        """What was signed, by whom; ``at`` checks the certificate at a past (timestamped) moment instead of now.

        ``root`` is the tree the hardened parser made of ``data``; only the tree is checked (``data``'s length
        says whether text nodes may be large enough to digest piecewise), and on success it becomes the signed
        content."""
        signature = self._locate(root)
        self._structure.verify(signature)
        if not candidates:
            raise Refusal("certificate-not-registered", "the sender has no registered signing certificate")
        signer, intermediates = self._pin(signature, candidates)
        chain = self._trust.verify(signer, intermediates, at=at)
        signed_root = core_validation(root, signature, signer, large_text=len(data) > SPLICE_TEXT_CHARS)
        # Status last: a responder is asked only about signatures that are otherwise good.  Every CA between
        # the signer and the anchor is asked about too: a revoked subordinate CA revokes what it issued.
        decision = None
        if self._revocation is not None:
            decision = self._revocation.check(chain.leaf, chain.issuer)
            flags = [decision.flag] if decision.flag else []
            for ca, ca_issuer in zip(chain.certificates[1:-1], chain.certificates[2:], strict=True):
                found = self._revocation.check(ca, ca_issuer)
                if found.flag:  # accepted under the flag policy: the document must say so too
                    flags.append(found.flag)
            if flags:
                decision = Decision(decision.status, flag="; ".join(flags)[:300])
        method = signature.find("ds:SignedInfo/ds:SignatureMethod", _DS)
        uri = method.get("Algorithm", "") if method is not None else ""
        return SignedContent(
            root=signed_root,
            signer=signer,
            signer_fingerprint=fingerprint(signer),
            signature_method=_short(uri),
            legacy_algorithm=uri == SignatureMethod.RSA_SHA1.value,
            signature_value=signature_value(signature),
            chain=chain,
            revocation=decision,
        )

    def _locate(self, root: etree._Element) -> etree._Element:
        signatures = root.findall(f".//{{{DS_NS}}}Signature")
        if root.tag == f"{{{DS_NS}}}Signature":
            signatures.insert(0, root)
        if not signatures:
            raise Refusal("signature-missing", "the document carries no XML signature")
        if len(signatures) > 1:
            raise Refusal(
                "signature-ambiguous", f"the document carries {len(signatures)} signatures; exactly one is allowed"
            )
        signature = signatures[0]
        parent = root.find(self._parent_path) if self._parent_path else root
        elements = [c for c in parent if isinstance(c.tag, str)] if parent is not None else []
        if parent is None or signature.getparent() is not parent or elements[-1] is not signature:
            where = self._parent_path.replace("{", "").split("}")[-1] or "the root element"
            raise Refusal("signature-misplaced", f"the signature must be the last child of {where}")
        return signature

    def _pin(
        self, signature: etree._Element, candidates: Sequence[x509.Certificate]
    ) -> tuple[x509.Certificate, list[x509.Certificate]]:
        embedded = embedded_certificates(signature)
        registered = {fingerprint(c): c for c in candidates}  # every current one: renewals must not push any out
        if embedded:
            for cert in embedded:
                if fingerprint(cert) in registered:
                    return registered[fingerprint(cert)], [c for c in embedded if c is not cert]
            raise Refusal(
                "certificate-not-registered",
                f"the signing certificate is not registered to the sending agency (sha256 {fingerprint(embedded[0])})",
            )
        if len(registered) == 1:
            return next(iter(registered.values())), []
        raise Refusal("signature-profile", "KeyInfo must carry the signing X509Certificate")
