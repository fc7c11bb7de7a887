"""The only way the gateway turns untrusted bytes into an XML tree.

No DTD of any kind is accepted (internal subsets are how billion-laughs and quadratic blow-ups
are built, external ones how files and URLs are read), entities are never expanded, the network
is never touched, and depth, element count and size are bounded.  The byte-level checks run before
libxml2 sees the input so a hostile document is refused in microseconds.  Only UTF-8 is accepted:
edXML is UTF-8 in practice, and a UTF-16 document would slip past a byte scan for ``<!DOCTYPE``.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.policy import Refusal

_XML_DECL_ENCODING = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_DECLARATIONS = (b"DOCTYPE", b"ENTITY", b"ELEMENT", b"ATTLIST", b"NOTATION")


def _declaration(data: bytes) -> bytes | None:
    """The first ``<!DOCTYPE``-like declaration in ``data``, if any.

    Found by jumping from one ``!`` to the next (a single-byte search runs at memory speed, and base64
    attachments hold none) rather than searching for five multi-byte markers one after another."""
    at = data.find(b"!")
    while at != -1:
        if at > 0 and data[at - 1] == 0x3C:  # "<!"
            for marker in _DECLARATIONS:
                if data.startswith(marker, at + 1):
                    return b"<!" + marker
        at = data.find(b"!", at + 1)
    return None


@dataclass(frozen=True)
class XmlLimits:
    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = 32
    max_elements: int = 20_000
    # Elements, attributes, comments and processing instructions together: each costs libxml2 a node of
    # about a hundred bytes whatever its size in the document (review finding: 4 million empty
    # processing instructions in 30 MB took 500 MB to parse).
    max_nodes: int = 40_000
    max_name_chars: int = 1_000  # libxml2's huge mode no longer limits names (50 000 otherwise)


# libxml2 refuses a text node over 10 000 000 bytes unless told XML_PARSE_HUGE, and edXML carries
# its attachments as base64 text: a 50 MB document is one such node.  "Huge" also lifts libxml2's
# own depth limit (256), so before a huge parse the document's shape is checked by a streaming pass
# that builds no tree and stops at the first element too deep or too many (:class:`_ShapeCheck`).
HUGE_TEXT_BYTES = 10_000_000
PRECHECK_BYTES = 1 << 20  # above this, the streaming shape check runs first: a tree's cost grows with its nodes


def _parser(*, huge: bool = False, target: Any = None) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=huge,
        remove_blank_text=False,
        remove_comments=False,
        strip_cdata=False,
        target=target,
    )


class _ShapeCheck:
    """A parser target that counts and measures what would become nodes, and keeps nothing.

    It has no ``data`` method, so text is not even handed to Python; comments and processing
    instructions are (as strings) only to be counted."""

    def __init__(self, limits: XmlLimits) -> None:
        self._limits = limits
        self._depth = 0
        self._elements = 0
        self._nodes = 0

    def _count(self, nodes: int) -> None:
        self._nodes += nodes
        if self._nodes > self._limits.max_nodes:
            raise Refusal("xml-forbidden", _too_many_nodes(self._limits))

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        self._elements += 1
        if self._depth > self._limits.max_depth:
            raise Refusal("xml-forbidden", f"elements are nested deeper than {self._limits.max_depth} levels")
        if self._elements > self._limits.max_elements:
            raise Refusal("xml-forbidden", f"document has more than {self._limits.max_elements} elements")
        self._count(1 + len(attrib))
        for name, value in (*attrib.items(), (tag, "")):
            if len(name) > self._limits.max_name_chars:
                raise Refusal("xml-forbidden", f"a name is longer than {self._limits.max_name_chars} characters")
            if len(value) > HUGE_TEXT_BYTES:
                raise Refusal("xml-forbidden", f"an attribute value is longer than {HUGE_TEXT_BYTES} characters")

    def end(self, _tag: str) -> None:
        self._depth -= 1

    def comment(self, _text: str) -> None:
        self._count(1)

    def pi(self, _target: str, _data: str | None = None) -> None:
        self._count(1)

    def close(self) -> None:
        return None


def _too_many_nodes(limits: XmlLimits) -> str:
    return f"document has more than {limits.max_nodes} elements, attributes, comments and processing instructions"


def parse(data: bytes, limits: XmlLimits | None = None) -> etree._Element:
    """Parse ``data`` or raise :class:`Refusal` with code ``xml-too-large``, ``xml-forbidden`` or ``xml-malformed``."""
    limits = limits or XmlLimits()
    if len(data) > limits.max_bytes:
        raise Refusal("xml-too-large", f"document is {len(data)} bytes; the limit is {limits.max_bytes}")
    _check_encoding(data)
    marker = _declaration(data)
    if marker is not None:
        raise Refusal("xml-forbidden", f"{marker.decode()} is not allowed: documents must not carry a DTD")
    huge = len(data) > HUGE_TEXT_BYTES
    try:
        if len(data) > PRECHECK_BYTES:  # bounded before libxml2 builds a tree (in huge mode, without its limits)
            etree.fromstring(data, parser=_parser(huge=huge, target=_ShapeCheck(limits)))
        root = etree.fromstring(data, parser=_parser(huge=huge))
    except etree.XMLSyntaxError as exc:
        raise Refusal("xml-malformed", f"not well-formed XML: {exc.msg}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise Refusal("xml-forbidden", "documents must not carry a DTD")
    _check_shape(root, limits)
    return root


def _check_encoding(data: bytes) -> None:
    """UTF-8 or nothing, whatever the bytes claim: a NUL can only come from UTF-16 or UTF-32 (XML forbids
    the character itself), and the whole body must decode, so no other encoding passes unnoticed."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise Refusal("xml-malformed", "only UTF-8 documents are accepted (this looks like UTF-16 or UTF-32)")
    offset = _not_utf8_at(data)
    if offset is not None:
        raise Refusal("xml-malformed", f"only UTF-8 documents are accepted: byte {offset} is not UTF-8")
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    match = _XML_DECL_ENCODING.match(body)
    if match and match.group(1).lower() not in (b"utf-8", b"utf8"):
        raise Refusal("xml-malformed", f"only UTF-8 documents are accepted, not {match.group(1).decode()}")


_DECODE_PIECE = 1 << 20


def _not_utf8_at(data: bytes) -> int | None:
    """Where ``data`` stops being UTF-8, or None; a large body is decoded a piece at a time, never held as text."""
    if data.isascii():
        return None
    if len(data) <= _DECODE_PIECE:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return exc.start
        return None
    decoder, view, at, pending = codecs.getincrementaldecoder("utf-8")(), memoryview(data), 0, 0
    try:
        while at < len(data):
            pending = len(decoder.getstate()[0])  # bytes of a character split across pieces
            decoder.decode(view[at : at + _DECODE_PIECE])
            at += _DECODE_PIECE
        pending, at = len(decoder.getstate()[0]), len(data)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return at - pending + exc.start
    return None


_COUNT_ELEMENTS = etree.XPath("count(//*)")
_COUNT_NODES = etree.XPath("count(//* | //@* | //comment() | //processing-instruction())")


@functools.lru_cache(maxsize=8)
def _deeper_than(depth: int) -> etree.XPath:
    """True when an element sits below ``depth`` levels (the root is level 1): evaluated by libxml2, not Python."""
    return etree.XPath("boolean(/" + "*/" * depth + "*)")


def _check_shape(root: etree._Element, limits: XmlLimits) -> None:
    if _deeper_than(limits.max_depth)(root):
        raise Refusal("xml-forbidden", f"elements are nested deeper than {limits.max_depth} levels")
    nodes = _COUNT_NODES(root)
    if not isinstance(nodes, float) or nodes > limits.max_elements:  # elements are among the nodes counted
        count = _COUNT_ELEMENTS(root)
        if not isinstance(count, float) or count > limits.max_elements:
            raise Refusal("xml-forbidden", f"document has more than {limits.max_elements} elements")
        if not isinstance(nodes, float) or nodes > limits.max_nodes:
            raise Refusal("xml-forbidden", _too_many_nodes(limits))
