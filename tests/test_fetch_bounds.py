"""A status source or TSA that drips bytes cannot hold a call past its one total deadline: a per-read
timeout restarts with every byte, so the deadline is enforced by shutting the socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gateway.trust import fetch


@pytest.fixture(params=["headers", "body"])
def dripping(request: pytest.FixtureRequest) -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        if request.param == "headers":
            data = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 60
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            data = b"x" * 60
        for byte in data:
            if stop.wait(0.2):
                break
            try:
                conn.send(bytes([byte]))
            except OSError:
                break
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/ocsp"
    stop.set()
    server.close()


def test_a_dripping_source_is_cut_off_at_the_total_deadline(dripping: str) -> None:
    started = time.monotonic()
    with pytest.raises(fetch.FetchError) as failed:
        fetch.fetch(dripping, body=b"request", bounds=fetch.Bounds(timeout=1.0))
    assert time.monotonic() - started < 1.6
    assert "within 1 s" in failed.value.reason


def test_a_refused_connection_says_the_source_cannot_be_reached() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(fetch.FetchError) as failed:
        fetch.fetch(f"http://127.0.0.1:{port}/crl")
    assert "cannot be reached" in failed.value.reason


def test_only_http_urls_are_fetched() -> None:
    with pytest.raises(fetch.FetchError):
        fetch.fetch("file:///etc/passwd")
