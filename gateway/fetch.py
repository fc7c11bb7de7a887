"""Outbound HTTP within bounds: OCSP responders, CRL distribution points, timestamp authorities, receivers.

A server that answers slowly, hugely or not at all must not stall a request, outlive a delivery
lease or fill memory: every call has one total deadline — enforced by a watchdog that shuts the
socket down, because a per-read timeout restarts with every byte a dripping server sends —, reads
at most ``max_bytes``, follows no redirects, and turns every failure into :class:`FetchError` with
a reason fit for the audit log.  ``http.client`` is used directly so that the watchdog holds the socket it must shut.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 3.0
DEFAULT_MAX_BYTES = 1024 * 1024


class FetchError(Exception):
    """The source could not be read; ``reason`` says why in a few words (no secrets: URLs are public)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Bounds:
    timeout: float = DEFAULT_TIMEOUT  # the whole call: connect, send, headers and body
    max_bytes: int = DEFAULT_MAX_BYTES


class _Watchdog:
    """Shuts the connection's socket at the deadline, which wakes any read blocked on it."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.fired = False
        self._connection = connection
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to wake
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url!r} is not an http(s) URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context), path
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), path


def _connect(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Connect to the first address that answers before ``deadline``: each try gets only the time left,
    so several black-holed addresses cannot multiply the bound, and the watchdog always has a socket."""
    failure: OSError = TimeoutError("no address answered in time")
    for family, kind, proto, _name, address in socket.getaddrinfo(
        connection.host, connection.port, 0, socket.SOCK_STREAM
    ):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(left)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        if isinstance(connection, http.client.HTTPSConnection):
            sock = connection._context.wrap_socket(sock, server_hostname=connection.host)  # type: ignore[attr-defined]
        connection.sock = sock
        return
    raise failure


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def _read(response: http.client.HTTPResponse, url: str, bounds: Bounds) -> bytes:
    declared = response.getheader("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > bounds.max_bytes:
        raise FetchError(f"{url} sent {declared} bytes; at most {bounds.max_bytes} are read")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read1(64 * 1024)
        if not chunk:
            if declared is not None and declared.isdigit() and size != int(declared):
                raise FetchError(f"{url} closed the connection after {size} of {declared} bytes")
            return b"".join(chunks)
        size += len(chunk)
        if size > bounds.max_bytes:
            raise FetchError(f"{url} sent more than {bounds.max_bytes} bytes")
        chunks.append(chunk)


def exchange(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    bounds: Bounds = Bounds(),
) -> Answer:
    """One request and its whole answer, whatever the status, within ``bounds`` (no redirects followed)."""
    connection, path = _connection(url, bounds.timeout)
    sent = {"Connection": "close", **(headers or {})}
    started = time.monotonic()
    watchdog = _Watchdog(connection, bounds.timeout)
    try:
        _connect(connection, started + bounds.timeout)
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = b"" if method == "HEAD" else _read(response, url, bounds)
        if watchdog.fired:  # a shut socket reads as end of file: what arrived is not the whole answer
            raise FetchError(f"{url} did not answer within {bounds.timeout:g} s")
        return Answer(response.status, data)
    except FetchError:
        if watchdog.fired:
            raise FetchError(f"{url} did not answer within {bounds.timeout:g} s") from None
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if watchdog.fired or time.monotonic() - started >= bounds.timeout:
            raise FetchError(f"{url} did not answer within {bounds.timeout:g} s") from None
        if isinstance(exc, ConnectionRefusedError | socket.gaierror):
            raise FetchError(f"{url} cannot be reached") from None
        if isinstance(exc, ssl.SSLError):
            raise FetchError(f"{url}: TLS failed ({exc.reason or type(exc).__name__})") from None
        raise FetchError(f"{url}: {type(exc).__name__}") from None
    finally:
        watchdog.cancel()
        connection.close()


def fetch(
    url: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    accept: str | None = None,
    bounds: Bounds = Bounds(),
) -> bytes:
    """GET ``url`` (or POST ``body`` when given) and return the body of a 200 answer, within ``bounds``."""
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    answer = exchange(url, method="POST" if body is not None else "GET", body=body, headers=headers, bounds=bounds)
    if answer.status != 200:
        raise FetchError(f"{url} answered HTTP {answer.status}")
    return answer.body
