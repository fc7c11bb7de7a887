"""The HTTP/1.1 front: requests are read on an event loop with deadlines, and only whole ones reach a thread.

Why (issue 10, finding 1): a server that reads a request on the thread that will run it lets a
client that trickles a header line every two seconds hold that thread for as long as it likes; 16
such connections held every thread of ``gateway serve`` and ``/healthz`` stopped answering.  Here a
connection costs a coroutine and a few kilobytes until its request is complete:

- the request head must arrive within ``header_timeout`` of its first byte (of the connection, for
  the first request), and the body at ``body_min_rate`` bytes a second after that much grace, or the
  client gets ``408 request-timeout``;
- an idle kept-alive connection is closed after ``keepalive`` seconds;
- one address may hold ``max_per_address`` connections, the process ``max_connections``; more are
  answered ``503 too-many-connections`` at once;
- answers are written with the same kind of deadline, so a client that stops reading is dropped.

Parsing is h11's (strict RFC 9112 framing: conflicting lengths, bad chunk sizes, control bytes in a
header are refused); a request carrying both ``Content-Length`` and ``Transfer-Encoding`` is refused
too (request smuggling through a proxy in front).  Whatever the front refuses is answered with
``application/problem+json`` and reported to ``on_refusal`` so that refused submissions are audited;
a browser's request for one of the workbench's pages gets that page's own HTML error instead, from
``refusal_page`` (issue 11: an over-long search pasted into the workbench showed raw JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import h11

from gateway.serving.refusals import FrontRefusal, from_parser, problem_body
from gateway.serving.wsgi import AppResponse, Peer, WsgiApp, build_environ, call_app

log = logging.getLogger("gateway.front")

READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class FrontLimits:
    header_timeout: float = 10.0
    keepalive: float = 5.0
    body_min_rate: int = 8 * 1024  # bytes a second, after header_timeout seconds of grace
    max_header_bytes: int = 16 * 1024
    max_target_bytes: int = 8 * 1024
    max_body_bytes: int = 11 * 1024 * 1024
    max_connections: int = 1000
    max_per_address: int = 64  # 0: no per-address cap (behind a proxy that applies its own)
    buffer_bytes: int = 1024 * 1024  # answers up to this size free their thread before being written
    graceful_seconds: float = 20.0

    def body_deadline(self, started: float, received: int) -> float:
        return started + self.header_timeout + received / self.body_min_rate


@dataclass(frozen=True)
class RefusedRequest:
    """What ``on_refusal`` learns about a request the front answered itself."""

    refusal: FrontRefusal
    method: str | None
    path: str | None
    remote_addr: str


@dataclass(frozen=True)
class RefusalPage:
    """An HTML error page for a refused request to a page people read, with its Content-Security-Policy."""

    body: bytes
    policy: str


# Every answer the front writes itself carries the headers the app adds to its own (finding 10).
_REFUSAL_HEADERS = (
    b"Content-Type: application/problem+json\r\n"
    b"Cache-Control: no-store\r\n"
    b"Connection: close\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"X-Frame-Options: DENY\r\n"
    b"Referrer-Policy: no-referrer\r\n"
    b"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
)


class _ClientGone(Exception):
    """The client closed or reset the connection: there is nobody left to answer."""


class Front:
    """Serves one WSGI app on listening sockets until ``should_stop`` says so."""

    def __init__(
        self,
        app: WsgiApp,
        limits: FrontLimits,
        *,
        threads: int,
        on_refusal: Callable[[RefusedRequest], None] | None = None,
        refusal_page: Callable[[FrontRefusal, str | None, str | None], RefusalPage | None] | None = None,
        access_log: Callable[[str], None] | None = None,
        max_pending_refusals: int = 64,
    ) -> None:
        self.app = app
        self.limits = limits
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gateway-app")
        self.on_refusal = on_refusal
        self.refusal_page = refusal_page
        self.access_log = access_log
        self.stopping = False
        self.open_connections = 0
        self.per_address: Counter[str] = Counter()
        self.busy = 0  # requests being run or answered
        self.refusals_unreported = 0
        self._pending_refusals = 0
        self._max_pending_refusals = max_pending_refusals
        self._idle: set[asyncio.Task[Any]] = set()
        self._date = (0, b"")

    # --- serving ---------------------------------------------------------------------------------

    async def serve(
        self,
        sockets: list[tuple[socket.socket, Any]],
        *,
        heartbeat: Callable[[], None] = lambda: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Accept on ``sockets`` (each with an ``ssl.SSLContext`` or ``None``) until told to stop, then drain."""
        servers = [
            await asyncio.start_server(self._connection, sock=sock, ssl=context, limit=READ_BYTES)
            for sock, context in sockets
        ]
        try:
            while not should_stop():
                heartbeat()
                await asyncio.sleep(0.5)
        finally:
            await self.stop(servers, heartbeat)

    async def stop(self, servers: list[asyncio.Server], heartbeat: Callable[[], None] = lambda: None) -> None:
        """Stop accepting, close idle connections, let requests in progress finish (up to the grace period)."""
        self.stopping = True
        for server in servers:
            server.close()
        for task in list(self._idle):
            task.cancel()
        deadline = time.monotonic() + self.limits.graceful_seconds
        while self.busy and time.monotonic() < deadline:
            heartbeat()
            await asyncio.sleep(0.1)
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        address = peer.remote_addr
        limits = self.limits
        if self.open_connections >= limits.max_connections or (
            limits.max_per_address and self.per_address[address] >= limits.max_per_address
        ):
            refusal = FrontRefusal("too-many-connections", "this server holds too many connections; retry shortly")
            await self._answer_refusal(reader, writer, refusal, None, None, address, retry_after=True)
            writer.close()
            return
        self.open_connections += 1
        self.per_address[address] += 1
        try:
            await _Exchange(self, reader, writer, peer).run()
        except (_ClientGone, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # never let one connection's surprise reach the loop
            log.exception("connection from %s failed", address)
        finally:
            self.open_connections -= 1
            self.per_address[address] -= 1
            if not self.per_address[address]:
                del self.per_address[address]
            writer.close()

    # --- answers the front writes itself ---------------------------------------------------------

    async def _answer_refusal(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        refusal: FrontRefusal,
        method: str | None,
        path: str | None,
        address: str,
        *,
        retry_after: bool = False,
    ) -> None:
        page = None if retry_after else self._page_for(refusal, method, path)
        body = problem_body(refusal, path or "/") if page is None else page.body
        head = b"HTTP/1.1 %d %s\r\n" % (refusal.status, _title(refusal).encode())
        head += _REFUSAL_HEADERS if page is None else _page_headers(page)
        head += b"Date: " + self.date() + b"\r\nContent-Length: %d\r\n" % len(body)
        if method == "HEAD":  # the length a GET would get, and no body (RFC 9110 §9.3.2)
            body = b""
        if retry_after:
            head += b"Retry-After: 5\r\n"
        with contextlib.suppress(Exception):
            writer.write(head + b"\r\n" + body)
            await asyncio.wait_for(writer.drain(), timeout=self.limits.header_timeout)
            await _linger(reader, writer)
        self._log_access(address, method, path, refusal.status, len(body), 0.0)
        self._report(RefusedRequest(refusal, method, path, address))

    def _page_for(self, refusal: FrontRefusal, method: str | None, path: str | None) -> RefusalPage | None:
        """The app's HTML page for this refusal (rendered beforehand: a lookup); None means problem+json."""
        if self.refusal_page is None:
            return None
        try:
            return self.refusal_page(refusal, method, path)
        except Exception:
            log.exception("looking up the error page for a refused request failed")
            return None

    def _report(self, refused: RefusedRequest) -> None:
        """Hand a refusal to ``on_refusal`` on a thread; a flood of them is counted, not queued without bound."""
        if self.on_refusal is None:
            return
        if self._pending_refusals >= self._max_pending_refusals:
            self.refusals_unreported += 1
            return
        self._pending_refusals += 1
        callback = self.on_refusal

        def report() -> None:
            try:
                callback(refused)
            except Exception:
                log.exception("recording a refused request failed")

        future = asyncio.get_running_loop().run_in_executor(self.pool, report)
        future.add_done_callback(self._reported)

    def _reported(self, _future: Any) -> None:
        self._pending_refusals -= 1

    def date(self) -> bytes:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True).encode())
        return self._date[1]

    def _log_access(
        self, address: str, method: str | None, target: str | None, status: int, size: int, seconds: float
    ) -> None:
        if self.access_log is not None:
            self.access_log(f'{address} "{method or "-"} {target or "-"}" {status} {size} {seconds:.6f}s')


class _Exchange:
    """One client connection: read a whole request, run the app on a thread, write the answer; repeat."""

    def __init__(self, front: Front, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer):
        self.front = front
        self.limits = front.limits
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=front.limits.max_header_bytes)
        self.line: tuple[str | None, str | None] = (None, None)  # method and target, as far as they have come
        self.line_complete = False

    async def run(self) -> None:
        first = True
        while not (self.front.stopping and not first):
            self.line, self.line_complete = (None, None), False
            try:
                request = await self._read_head(first)
                if request is None:
                    return
                body = await self._read_body(request)
            except FrontRefusal as refusal:
                await self._refuse(refusal)
                return
            except h11.RemoteProtocolError as exc:
                await self._refuse(from_parser(exc.error_status_hint, f"the request is not valid HTTP/1.1: {exc}"))
                return
            self.front.busy += 1
            try:
                answered = await self._answer(request, body)
            finally:
                self.front.busy -= 1
            if not answered or self.http.our_state is not h11.DONE or self.http.their_state is not h11.DONE:
                return
            self.http.start_next_cycle()
            first = False

    async def _refuse(self, refusal: FrontRefusal) -> None:
        method, target = self.line
        path = target.split("?", 1)[0] if target else None
        await self.front._answer_refusal(self.reader, self.writer, refusal, method, path, self.peer.remote_addr)

    # --- reading ---------------------------------------------------------------------------------

    async def _receive(self, deadline: float) -> bool:
        """Feed the parser what arrives before ``deadline``; False when nothing did."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        task = asyncio.current_task()
        idle = task is not None and self.http.their_state is h11.IDLE and not self.http.trailing_data[0]
        if idle and task is not None:
            self.front._idle.add(task)  # cancelled at shutdown: nothing is in progress on it
        try:
            data = await asyncio.wait_for(self.reader.read(READ_BYTES), timeout=remaining)
        except TimeoutError:
            return False
        except (ConnectionError, OSError) as exc:
            raise _ClientGone() from exc
        finally:
            if idle and task is not None:
                self.front._idle.discard(task)
        if not data:
            if self.http.their_state is h11.IDLE and not self.http.trailing_data[0]:
                raise _ClientGone()
            self.http.receive_data(b"")  # the parser decides whether that ends a message or breaks it
            return True
        self.http.receive_data(data)
        return True

    async def _read_head(self, first: bool) -> h11.Request | None:
        """The next request's head; None when the client closes or stays idle (no answer is owed then)."""
        # A new connection has header_timeout for its whole first head; a kept-alive one keepalive
        # seconds to start the next, then header_timeout from its first byte.
        deadline = time.monotonic() + (self.limits.header_timeout if first else self.limits.keepalive)
        received = False
        while True:
            if self.http.their_state is h11.IDLE:
                self._check_head()
            event = self.http.next_event()
            if isinstance(event, h11.Request):
                self._check_framing(event)
                return event
            if isinstance(event, h11.ConnectionClosed):
                return None
            if event is not h11.NEED_DATA:  # pragma: no cover - h11 yields nothing else before a Request
                raise FrontRefusal("malformed-request", "unexpected data before the request")
            if not await self._receive(deadline):
                if received or self.http.trailing_data[0]:
                    raise FrontRefusal(
                        "request-timeout",
                        f"the request headers did not arrive within {self.limits.header_timeout:g} s",
                    )
                return None
            if not received and not first:
                deadline = time.monotonic() + self.limits.header_timeout
            received = True

    def _check_head(self) -> None:
        """Sizes h11 checks only while a head is incomplete: one read can bring a whole oversized head."""
        buffered = self.http.trailing_data[0]
        end = buffered.find(b"\n")
        line = buffered if end < 0 else buffered[:end]
        if not self.line_complete:  # what the request is, as far as it has come: a refusal is audited by method
            method, space, rest = bytes(line[:512]).partition(b" ")
            if space:
                target = rest.rsplit(b" ", 1)[0] if end >= 0 else rest
                self.line = (method.decode("latin-1")[:32], target.decode("latin-1").rstrip("\r")[:256] or None)
            self.line_complete = end >= 0
        if len(line) > self.limits.max_target_bytes + 32:
            raise FrontRefusal(
                "uri-too-long", f"the request target is longer than {self.limits.max_target_bytes} bytes"
            )
        head_end = buffered.find(b"\r\n\r\n")
        if (head_end if head_end >= 0 else len(buffered)) > self.limits.max_header_bytes:
            raise FrontRefusal(
                "headers-too-large", f"the request head is larger than {self.limits.max_header_bytes} bytes"
            )

    @staticmethod
    def _check_framing(request: h11.Request) -> None:
        names = {name for name, _ in request.headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            raise FrontRefusal("malformed-request", "a request may not carry both Content-Length and Transfer-Encoding")

    async def _read_body(self, request: h11.Request) -> bytes:
        limit = self.limits.max_body_bytes
        for name, value in request.headers:
            if name == b"content-length" and int(value) > limit:
                raise FrontRefusal("too-large", f"the request body is larger than {limit} bytes")
        if self.http.they_are_waiting_for_100_continue:
            await self._write(self.http.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        body = bytearray()
        started = time.monotonic()
        while True:
            event = self.http.next_event()
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise FrontRefusal("too-large", f"the request body is larger than {limit} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise _ClientGone()
            elif not await self._receive(self.limits.body_deadline(started, len(body))):
                raise FrontRefusal(
                    "request-timeout",
                    f"the request body arrived slower than {self.limits.body_min_rate} bytes a second",
                )

    # --- answering -------------------------------------------------------------------------------

    async def _answer(self, request: h11.Request, body: bytes) -> bool:
        """Run the app and write its answer; False when the connection cannot carry another request."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        environ = build_environ(
            request.method, request.target, list(request.headers), body, request.http_version, self.peer
        )
        try:
            response = await loop.run_in_executor(
                self.front.pool, call_app, self.front.app, environ, self.limits.buffer_bytes
            )
        except Exception:
            log.exception("the application failed outside its error handlers")
            self.line = (request.method.decode("latin-1"), request.target.decode("latin-1")[:256])
            await self._refuse(FrontRefusal("internal-error", "an unexpected error occurred; it has been logged"))
            return False
        sent = 0
        try:
            sent = await self._send(request, response)
        except h11.LocalProtocolError:
            log.exception("the application's answer cannot be framed (e.g. a wrong Content-Length)")
            self.writer.transport.abort()
            return False
        finally:
            if response.spool is not None:
                response.spool.close()
            self.front._log_access(
                self.peer.remote_addr,
                request.method.decode("latin-1"),
                request.target.decode("latin-1")[:256],
                response.status,
                sent,
                time.monotonic() - started,
            )
        return True

    async def _send(self, request: h11.Request, response: AppResponse) -> int:
        headers = [*response.headers, (b"date", self.front.date())]
        if self.front.stopping:
            headers.append((b"connection", b"close"))
        out = bytearray(
            self.http.send(h11.Response(status_code=response.status, headers=headers, reason=response.reason)) or b""
        )
        with_body = request.method != b"HEAD"
        sent = 0
        for chunk in response.head if with_body else ():
            out += self.http.send(h11.Data(data=chunk)) or b""
            sent += len(chunk)
        await self._write(bytes(out))
        if response.spool is not None and with_body:
            # From the spool, at the client's pace, on the loop: each piece has its own write deadline.
            while chunk := response.spool.read(READ_BYTES):
                await self._write(self.http.send(h11.Data(data=chunk)) or b"")
                sent += len(chunk)
        await self._write(self.http.send(h11.EndOfMessage()) or b"")
        return sent

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        self.writer.write(data)
        timeout = self.limits.header_timeout + len(data) / self.limits.body_min_rate
        try:
            await asyncio.wait_for(self.writer.drain(), timeout=timeout)
        except (TimeoutError, ConnectionError, OSError) as exc:
            self.writer.transport.abort()
            raise _ClientGone() from exc


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float = 1.0) -> None:
    """Half-close, then discard what the client still sends for a moment before closing.

    Closing a socket with unread data makes the kernel reset the connection, and a client still
    sending its request would then lose the refusal it was just sent (RFC 9112 §9.6).
    """
    if writer.can_write_eof():
        writer.write_eof()
    deadline = time.monotonic() + seconds
    discarded = 0
    while (remaining := deadline - time.monotonic()) > 0 and discarded < 1024 * 1024:
        data = await asyncio.wait_for(reader.read(READ_BYTES), timeout=remaining)
        if not data:
            return
        discarded += len(data)


def _peer(writer: asyncio.StreamWriter) -> Peer:
    remote = writer.get_extra_info("peername") or ("", 0)
    local = writer.get_extra_info("sockname") or ("", 0)
    if isinstance(remote, str):  # a UNIX socket
        remote, local = ("unix", 0), ("localhost", 0)
    scheme = "https" if writer.get_extra_info("sslcontext") is not None else "http"
    return Peer(str(remote[0]), int(remote[1]), str(local[0]), int(local[1]), scheme)


def _title(refusal: FrontRefusal) -> str:
    from http import HTTPStatus

    return HTTPStatus(refusal.status).phrase


def _page_headers(page: RefusalPage) -> bytes:
    """:data:`_REFUSAL_HEADERS` for an HTML page: its own type and policy, the rest the same."""
    lines = [
        line
        for line in _REFUSAL_HEADERS.split(b"\r\n")
        if line and not line.startswith((b"Content-Type:", b"Content-Security-Policy:", b"Referrer-Policy:"))
    ]
    lines += [
        b"Content-Type: text/html; charset=utf-8",
        b"Content-Security-Policy: " + page.policy.encode("ascii"),
        b"Referrer-Policy: same-origin",
    ]
    return b"".join(line + b"\r\n" for line in lines)
