"""A status source or TSA that drips bytes cannot hold a call past its one total deadline: a per-read
timeout restarts with every byte, so the deadline is enforced by shutting the socket."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gateway import fetch


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


def test_an_address_that_never_answers_the_connect_does_not_extend_the_deadline(dripping, monkeypatch) -> None:
    """A listener whose backlog is full drops the SYN (the connect hangs); the next address then drips.
    Together they still get one deadline."""
    from urllib.parse import urlsplit

    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue so later connects hang
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # a non-blocking connect is "in progress"
            filler.connect(stuck.getsockname())
        fillers.append(filler)
    real = socket.getaddrinfo
    drip = urlsplit(dripping)

    def two_addresses(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        return [real("127.0.0.1", stuck.getsockname()[1], *args, **kwargs)[0], *real(host, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    started = time.monotonic()
    with pytest.raises(fetch.FetchError):
        fetch.fetch(f"http://127.0.0.1:{drip.port}/ocsp", body=b"request", bounds=fetch.Bounds(timeout=1.0))
    assert time.monotonic() - started < 1.6
    for filler in fillers:
        filler.close()
    stuck.close()
