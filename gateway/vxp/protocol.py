"""The VXP SDK's request signing, as the public SDK writes it, for both sides of a call.

Sources (read from the decompiled ``SDKVXP-2.0.1.jar`` published in the GitHub repository
williamdunbar/SDK, commit f3a67b38, ``com/vpcp/services/``; and its use in
PVN-Organization/API-Gateway-iOffice):

- ``VnptService`` (constructor, ``addXroadVnptHashHeader``): every JSON argument of a call becomes a
  header ``XroadVnpt-<key>``; ``systemid`` and ``timestamp`` (``SimpleDateFormat
  "ddMMyyyy'T'HHmmss+SSSS"``: the ``+`` is literal, ``SSSS`` the milliseconds on four digits) are
  always among them, and so is ``Content-Type``.  The headers are signed in the iteration order of
  a Java ``HashMap`` of their names: ``XroadVnpt-sign-header-key`` lists the names joined by ``;``,
  ``XroadVnpt-sign-header`` is a compact JSON object (Gson) of ``"XroadVnpt-<name>": value`` in that
  order, and ``XroadVnpt-hash-header`` is the lower-case hex HMAC-SHA256 of that JSON text, keyed with
  the secret's UTF-8 bytes.  ``XroadVnpt-version: 3.0.201608`` and the ``User-Agent`` are not signed.
- ``KnobstickServiceImp.getHashFile``: ``sendEdoc``'s ``hash-file`` is SHA-256 of the file, its hex
  written with ``Integer.toHexString(0xFF & b)``: a byte below 0x10 loses its leading zero.

Left open by the public code (and so decided here, said in the README): the SDK sets the timestamp
once, when its service object is made, so a long-lived client sends the same one on every call; the
server's window cannot be short, and identical calls (a poll of the same list) repeat the same
signature.  Nothing in the public code shows how the axis checks freshness; :func:`verify_call`
accepts a timestamp within ``window`` of now (default 15 minutes), and a server refuses a repeated
signature only on calls that change something (its own decision, kept by the caller).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from gateway.json_input import no_duplicate_members

HEADER_PREFIX = "XroadVnpt-"
SIGN_KEY_HEADER = "XroadVnpt-sign-header-key"
SIGN_HEADER = "XroadVnpt-sign-header"
HASH_HEADER = "XroadVnpt-hash-header"
VERSION_HEADER = "XroadVnpt-version"
VERSION = "3.0.201608"
USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
SERVICE_TYPE = "eDoc"
TIMESTAMP_FORMAT = "%d%m%YT%H%M%S"


MAX_SIGN_HEADER = 16 * 1024  # a few dozen headers; the front refuses heads over 16 KiB anyway
_SYSTEMID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def wire_text(value: str) -> str:
    """A header value as the client's UTF-8 bytes: WSGI hands headers over decoded as latin-1, and the
    SDK signs its (Gson, non-ASCII kept) JSON as UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


class CallRefused(Exception):
    """A call whose signature, timestamp or headers do not hold; ``code`` is the FAIL answer's ErrorCode."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --- what the SDK sends -------------------------------------------------------------------------


def java_string_hash(text: str) -> int:
    """``String.hashCode()``: s[0]*31^(n-1) + … over UTF-16 code units, as a signed 32-bit int."""
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def java_hashmap_order(keys: Sequence[str]) -> list[str]:
    """The order a ``java.util.HashMap`` of ``keys`` (inserted in this order) iterates them.

    Bucket = spread(hash) & (capacity - 1), capacity 16 doubling past 0.75 load; within a bucket,
    insertion order (a list, far below the eight entries where Java would make it a tree)."""
    capacity = 16
    while len(keys) > capacity * 0.75:
        capacity *= 2

    def bucket(key: str) -> int:
        h = java_string_hash(key) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return [key for _, _, key in sorted((bucket(k), i, k) for i, k in enumerate(dict.fromkeys(keys)))]


def sdk_timestamp(moment: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in the caller's local time, as the SDK writes it."""
    return moment.strftime(TIMESTAMP_FORMAT) + f"+{moment.microsecond // 1000:04d}"


def parse_sdk_timestamp(value: str, zone: timezone) -> datetime:
    """The SDK's timestamp read in ``zone`` (it carries no zone; Vietnam's systems run on UTC+7)."""
    stamp, plus, millis = value.partition("+")
    if not plus or len(millis) != 4 or not millis.isdigit() or int(millis) > 999:
        raise ValueError("not ddMMyyyy'T'HHmmss+SSSS")
    moment = datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=zone)
    return moment + timedelta(milliseconds=int(millis))


def gson_json(fields: Sequence[tuple[str, str]]) -> str:
    """Gson's ``JsonObject.toString()``: compact, insertion order, non-ASCII kept, U+2028/9 escaped."""
    text = json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def hash_header(secret: str, sign_header: str) -> str:
    return hmac.new(secret.encode("utf-8"), sign_header.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_call(
    systemid: str, secret: str, fields: Mapping[str, str], *, content_type: str, timestamp: str
) -> list[tuple[str, str]]:
    """The headers of one call, in the order the SDK sends them (its HashMap's, then the unsigned two)."""
    values = {"systemid": systemid, "timestamp": timestamp, "Content-Type": content_type, **fields}
    order = java_hashmap_order(["timestamp", "systemid", "Content-Type", *fields])
    headers: list[tuple[str, str]] = []
    signed: list[tuple[str, str]] = []
    for name in order:
        if name == "Content-Type":
            headers.append(("Content-Type", values[name]))
        headers.append((HEADER_PREFIX + name, values[name]))
        signed.append((HEADER_PREFIX + name, values[name]))
    sign_header = gson_json(signed)
    headers += [
        (SIGN_KEY_HEADER, ";".join(order)),
        (SIGN_HEADER, sign_header),
        (HASH_HEADER, hash_header(secret, sign_header)),
        ("User-Agent", USER_AGENT),
        (VERSION_HEADER, VERSION),
    ]
    return headers


def sdk_file_hash(data: bytes) -> str:
    """``hash-file`` as the SDK writes it: SHA-256 hex with each byte's leading zero dropped."""
    return "".join(format(b, "x") for b in hashlib.sha256(data).digest())


def file_hash_matches(value: str, data: bytes) -> bool:
    """The SDK's lossy hex, or the correct 64-digit one: both name these bytes (compared in constant time)."""
    digest = hashlib.sha256(data).digest()
    return any(hmac.compare_digest(value.lower(), wanted) for wanted in (sdk_file_hash(data), digest.hex()))


# --- what a server checks -----------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCall:
    systemid: str
    fields: dict[str, str]  # the signed headers' values by name without the prefix (systemid, docId, …)
    signature: str  # the hash-header, for the replay check
    moment: datetime


def verify_call(
    headers: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    *,
    now: datetime,
    zone: timezone,
    window: timedelta = timedelta(minutes=15),
) -> SignedCall:
    """Check one call's signed headers; raises :class:`CallRefused` with the FAIL code and reason.

    The HMAC is over the ``XroadVnpt-sign-header`` text as received (its key order is the
    client's HashMap's and cannot be rebuilt); then every name it lists must match the header
    actually sent, so nothing outside the signature changes what the call means."""
    lookup = {k.lower(): v for k, v in headers.items()}
    sign_header = lookup.get(SIGN_HEADER.lower())
    given_hash = lookup.get(HASH_HEADER.lower())
    if not sign_header or not given_hash:
        raise CallRefused("401", "the call is not signed: XroadVnpt-sign-header and XroadVnpt-hash-header are needed")
    if len(sign_header) > MAX_SIGN_HEADER:
        raise CallRefused("401", f"XroadVnpt-sign-header is longer than {MAX_SIGN_HEADER} characters")
    try:
        signed = json.loads(sign_header, object_pairs_hook=no_duplicate_members)
    except (ValueError, RecursionError):
        raise CallRefused("401", "XroadVnpt-sign-header is not a JSON object") from None
    if not isinstance(signed, dict) or not all(isinstance(v, str) for v in signed.values()):
        raise CallRefused("401", "XroadVnpt-sign-header is not a JSON object of strings")
    systemid = signed.get(HEADER_PREFIX + "systemid")
    if not isinstance(systemid, str) or not _SYSTEMID.fullmatch(systemid):
        raise CallRefused("401", "the signed headers do not name a systemid (letters, digits, '.', '_', '-')")
    secret = secret_for(systemid)
    if secret is None:
        raise CallRefused("401", f"unknown systemid {systemid[:64]!r}")
    if not hmac.compare_digest(hash_header(secret, sign_header), given_hash.lower()):
        raise CallRefused("401", "XroadVnpt-hash-header does not match: wrong secret, or the headers were changed")
    fields: dict[str, str] = {}
    for name, value in signed.items():
        if not name.startswith(HEADER_PREFIX):
            raise CallRefused("401", f"the signed header {name[:64]!r} lacks the XroadVnpt- prefix")
        sent = lookup.get(name.lower())
        if sent is None or sent != value:
            raise CallRefused("401", f"{name[:64]} was signed with another value than the one sent")
        fields[name[len(HEADER_PREFIX) :]] = value
    try:
        moment = parse_sdk_timestamp(fields.get("timestamp", ""), zone)
    except (ValueError, OverflowError):
        raise CallRefused("401", "the signed timestamp is not ddMMyyyy'T'HHmmss+SSSS") from None
    if abs(now - moment) > window:
        raise CallRefused("401", f"the signed timestamp {fields['timestamp']} is outside the accepted window")
    return SignedCall(systemid, fields, given_hash.lower(), moment)
