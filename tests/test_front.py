"""The HTTP front (issue 10, findings 1 and 9): slow clients hold no thread, and what it refuses is problem+json.

The front serves the real gateway app on a real loopback socket, with one application thread so
that anything holding a thread would show at once, and short deadlines so the tests are quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
import sqlalchemy as sa
from flask import Flask

from gateway.serving.front import Front, FrontLimits
from gateway.serving.worker import audit_refusal
from gateway.store.tables import audit_entries
from tests.support import summarise_refusals

LIMITS = FrontLimits(
    header_timeout=1.0,
    keepalive=1.0,
    body_min_rate=2000,
    max_body_bytes=64 * 1024,
    max_per_address=40,
    graceful_seconds=5,
)


@dataclass
class Served:
    front: Front
    port: int
    loop: asyncio.AbstractEventLoop

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def exchange(self, data: bytes, *, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
        with self.connect() as s:
            s.sendall(data)
            return read_response(s, timeout)


def read_response(s: socket.socket, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer (Content-Length framed, or up to the close)."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "-1"))
    while length < 0 or len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest if length < 0 else rest[:length]


def serve(app: Flask, limits: FrontLimits = LIMITS, threads: int = 1) -> Iterator[Served]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    front = Front(app, limits, threads=threads, on_refusal=audit_refusal(app))
    loop = asyncio.new_event_loop()
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(front.serve([(listener, None)], should_stop=stop.is_set)), daemon=True
    )
    thread.start()
    yield Served(front, listener.getsockname()[1], loop)
    stop.set()
    thread.join(timeout=10)
    loop.close()


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The front does not care which database is behind the app: SQLite only."""
    return sqlite_url


@pytest.fixture
def served(app: Flask) -> Iterator[Served]:
    yield from serve(app)


def refused_entries(app: Flask) -> list[dict[str, str]]:
    summarise_refusals(app.extensions["gateway"])
    with app.extensions["gateway"].db.read() as conn:
        bodies = [json.loads(r.body) for r in conn.execute(sa.select(audit_entries.c.body))]
    return [b for b in bodies if b["event"] == "request.refused"]


def assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    problem = json.loads(body)
    assert problem["code"] == code and problem["status"] == expected


# --- finding 9: what the server layer refuses is problem+json, never an HTML page --------------------


@pytest.mark.parametrize("path", ["/oauth/token", "/dev-idp/token", "/v1/documents", "/v1/dossiers"])
def test_a_malformed_chunk_size_is_a_problem_and_the_refused_submission_is_audited(served, app, path):
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    assert_problem(*served.exchange(request.encode()), 400, "malformed-request")
    deadline = time.monotonic() + 5
    while not refused_entries(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    (entry,) = refused_entries(app)
    assert entry["code"] == "malformed-request" and path in entry["reason"]


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /healthz\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed-request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Note: a\x00b\r\n\r\n", 400, "malformed-request"),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "malformed-request"),  # no Host
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri-too-long"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431, "headers-too-large"),
        (
            b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
            400,
            "malformed-request",
        ),
        (
            b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "malformed-request",
        ),
        (b"POST /v1/documents HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413, "too-large"),
    ],
    ids=[
        "raw-0xff",
        "nul-in-header",
        "no-host",
        "long-target",
        "large-head",
        "two-lengths",
        "length-and-chunked",
        "too-large",
    ],
)
def test_requests_the_server_layer_refuses_get_problem_json(served, request_bytes, status, code):
    assert_problem(*served.exchange(request_bytes), status, code)


def test_an_oversized_head_trickled_in_small_pieces_is_refused_too(served):
    with served.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        with pytest.raises(OSError):  # refused as soon as the head is too large, while we still send
            for _ in range(200):
                s.sendall(b"X-Pad: " + b"p" * 1000 + b"\r\n")
                time.sleep(0.01)
        assert_problem(*read_response(s), 431, "headers-too-large")


# --- finding 1: slow or idle clients cannot exhaust the threads ---------------------------------------


def test_headers_trickled_past_the_deadline_get_408(served):
    started = time.monotonic()
    with served.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        with pytest.raises(OSError):  # the front answers (and closes) while we are still trickling
            for i in range(20):
                s.sendall(f"X-Line-{i}: slow\r\n".encode())
                time.sleep(0.2)
        status, headers, body = read_response(s)
    assert_problem(status, headers, body, 408, "request-timeout")
    assert time.monotonic() - started < 3


def test_a_body_slower_than_the_minimum_rate_gets_408(served, app):
    with served.connect() as s:
        s.sendall(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n")
        s.sendall(b"Content-Length: 60000\r\n\r\n")
        try:
            for _ in range(40):
                s.sendall(b"a=b&")
                time.sleep(0.1)
        except OSError:
            pass
        assert_problem(*read_response(s), 408, "request-timeout")


def test_an_idle_connection_is_closed_quietly_after_the_keepalive(served):
    with served.connect() as s:
        s.settimeout(5)
        started = time.monotonic()
        assert s.recv(100) == b""  # closed, with no answer to a request never made
        assert time.monotonic() - started < 3


def test_connections_beyond_the_per_address_cap_get_503(app):
    for served in serve(app, replace(LIMITS, max_per_address=3)):
        held = [served.connect() for _ in range(3)]
        time.sleep(0.2)
        status, headers, body = served.exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_problem(status, headers, body, 503, "too-many-connections")
        assert headers["retry-after"] == "5"
        for s in held:
            s.close()
        time.sleep(0.2)
        assert served.exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def test_trickling_clients_do_not_delay_a_probe_on_a_single_thread(served):
    """The reviewer's attack (connections sending a header line now and then), against one app thread."""
    slow = [served.connect() for _ in range(30)]
    stop = threading.Event()

    def trickle() -> None:
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        while not stop.wait(0.1):
            for s in slow:
                with contextlib.suppress(OSError):
                    s.sendall(b"X-Slow: 1\r\n")

    attacker = threading.Thread(target=trickle, daemon=True)
    attacker.start()
    timings = []
    try:
        with served.connect() as probe:
            for _ in range(50):
                started = time.perf_counter()
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(probe)[0] == 200
                timings.append(time.perf_counter() - started)
    finally:
        stop.set()
        attacker.join()
        for s in slow:
            s.close()
    assert sorted(timings)[int(len(timings) * 0.99) - 1] < 0.1


# --- ordinary HTTP/1.1 still works ---------------------------------------------------------------------


def test_kept_alive_and_pipelined_requests_are_answered_in_order(served):
    with served.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        data = b""
        while chunk := s.recv(65536):  # both answers, then the close after the keep-alive time
            data += chunk
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", data) == [b"200", b"404"]


def test_head_answers_carry_no_body(served):
    with served.connect() as s:
        s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}\n"):
            data += s.recv(65536)
    assert data.count(b'{"status":"ok"}') == 1


def test_expect_100_continue_and_a_chunked_body_reach_the_app(served):
    with served.connect() as s:
        s.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        s.settimeout(5)
        assert s.recv(100).startswith(b"HTTP/1.1 100")
        s.sendall(b"12\r\ngrant_type=unknown\r\n0\r\n\r\n")
        status, _, body = read_response(s)
    assert status == 400 and json.loads(body)["code"] == "unsupported-grant-type"


def test_long_answers_are_streamed_whole(app):
    for served in serve(app, replace(LIMITS, buffer_bytes=512)):
        status, _headers, body = served.exchange(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200
        assert json.loads(body)["openapi"].startswith("3.")


def test_a_post_refused_before_its_request_line_ends_is_audited_with_its_method(served, app):
    """Review finding: a 414 for a POST whose request line never ended was not audited."""
    with served.connect() as s:
        s.sendall(b"POST /oauth/token?" + b"a" * 9000)
        assert_problem(*read_response(s), 414, "uri-too-long")
    deadline = time.monotonic() + 5
    while not refused_entries(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    (entry,) = refused_entries(app)
    assert entry["code"] == "uri-too-long" and "POST /oauth/token" in entry["reason"]


def test_a_client_reading_a_long_answer_slowly_holds_no_application_thread():
    """Review note: a long answer was pumped from a thread at the client's pace; one slow reader per thread
    would have starved the app.  Now the body is spooled and written from the loop."""

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        if environ["PATH_INFO"] == "/big":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return (b"x" * 65536 for _ in range(320))  # 20 MiB, far more than socket buffers hold
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    front = Front(app, replace(LIMITS, header_timeout=30, body_min_rate=1), threads=1)
    loop, stop = asyncio.new_event_loop(), threading.Event()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(front.serve([(listener, None)], should_stop=stop.is_set))
    )
    thread.start()
    port = listener.getsockname()[1]
    readers = []
    try:
        for _ in range(3):  # three clients ask for it and then read nothing
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            readers.append(s)
        time.sleep(1)
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
            probe.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(probe)[0] == 200
        assert time.perf_counter() - started < 1
    finally:
        for s in readers:
            s.close()
        stop.set()
        thread.join(timeout=10)
        loop.close()
