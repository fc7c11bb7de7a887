"""One complete HTTP request in, one WSGI call (PEP 3333) out, on a worker thread.

The front hands over a request only once its headers and whole body have arrived, so the app reads
``wsgi.input`` from memory and never waits on a slow client.  Header names with an underscore are
dropped, as gunicorn does: ``X_Forwarded_For`` and ``X-Forwarded-For`` would otherwise both become
``HTTP_X_FORWARDED_FOR`` and one could pose as the other.
"""

from __future__ import annotations

import io
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import unquote_to_bytes

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

SPOOL_IN_MEMORY = 4 * 1024 * 1024  # a long answer beyond this waits for its client on disk

# Framing is the front's business: what the app says about it is not passed on.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"proxy-connection"})


@dataclass(frozen=True)
class Peer:
    remote_addr: str
    remote_port: int
    server_name: str
    server_port: int
    scheme: str  # "http" or "https", as the listener is


def build_environ(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes, http_version: bytes, peer: Peer
) -> dict[str, Any]:
    if target.startswith((b"http://", b"https://")):  # absolute-form (RFC 9112 §3.2.2): keep the path
        target = b"/" + target.split(b"/", 3)[3] if target.count(b"/") >= 3 else b"/"
    path, _, query = target.partition(b"?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": target.decode("latin-1"),
        "SERVER_NAME": peer.server_name,
        "SERVER_PORT": str(peer.server_port),
        "SERVER_PROTOCOL": "HTTP/" + http_version.decode("ascii"),
        "REMOTE_ADDR": peer.remote_addr,
        "REMOTE_PORT": str(peer.remote_port),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": peer.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in headers:  # h11 gives names lower-cased and values validated
        if b"_" in raw_name:
            continue
        name = raw_name.decode("ascii").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            continue  # the body is complete: CONTENT_LENGTH above is its real length
        key = name if name == "CONTENT_TYPE" else "HTTP_" + name
        environ[key] = environ[key] + "," + value if key in environ else value
    return environ


@dataclass
class AppResponse:
    """What the app answered: a short body in ``head``, or a long one whole in ``spool`` (a temporary file)."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    head: list[bytes] = field(default_factory=list)
    spool: IO[bytes] | None = None


def call_app(app: WsgiApp, environ: dict[str, Any], buffer_bytes: int) -> AppResponse:
    """Run the app and read its whole body on this thread; the thread is free before the client reads a byte.

    A body longer than ``buffer_bytes`` goes to a temporary file (in memory up to a few megabytes)
    that the event loop writes out at the client's pace: a client that reads slowly holds a file,
    never one of the few application threads.
    """
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, response_headers)]
        return lambda _data: None  # the legacy write() callable; none of our code uses it

    result = app(environ, start_response)
    iterator = iter(result)
    head: list[bytes] = []
    size = 0
    spool: IO[bytes] | None = None
    try:
        for chunk in iterator:
            if not chunk:
                continue
            if spool is not None:
                spool.write(chunk)
                continue
            head.append(chunk)
            size += len(chunk)
            if size >= buffer_bytes:
                spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - the front closes it
                spool.writelines(head)
                head = []
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    finally:
        _close(result)
    if not started:
        if spool is not None:
            spool.close()
        raise RuntimeError("the application returned without calling start_response")
    status_line, response_headers = started[0]
    code, _, reason = status_line.partition(" ")
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response_headers
        if name.lower().encode("latin-1") not in _HOP_BY_HOP
    ]
    if spool is not None:
        spool.seek(0)
    return AppResponse(int(code), reason.encode("latin-1"), headers, head, spool)


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()
