"""A real HTTP server on loopback for the development CA's OCSP responder, CRL and TSA.

The suite's certificates name this server in their AIA and CDP extensions, so every signature the
tests submit is status-checked over HTTP exactly as in production, against the same blueprint demo
mode serves.  The socket is bound before the keys exist (the certificates must carry its URL); the
application is attached once they do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from gateway.trust import pki
from gateway.trust.dev_pki import DevRevocations
from gateway.trust.dev_service import dev_pki_blueprint
from gateway.trust.dev_tsa import DevTsa

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class LoopbackServer:
    """A threaded WSGI server on 127.0.0.1 whose application can be set (and replaced) after binding."""

    def __init__(self) -> None:
        self._app: WsgiApp | None = None
        self.app: WsgiApp | None = None  # what a test restores after serve(None)
        self.stop_event = threading.Event()  # wakes handlers that sleep or stream when the server stops
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._dispatch, threaded=True, request_handler=_QuietHandler
        )
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"not ready"]
        return self._app(environ, start_response)

    def serve(self, app: WsgiApp | None) -> None:
        self._app = app

    def stop(self) -> None:
        self.stop_event.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class Reply:
    body: bytes | Iterable[bytes]
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[bytes], Reply]


class RouteServer(LoopbackServer):
    """A loopback server whose routes (request body → :class:`Reply`) each test replaces, to misbehave
    in exactly the way it needs: slow, huge, wrong status, another CA's answer."""

    def __init__(self) -> None:
        super().__init__()
        self.handlers: dict[str, Handler] = {}
        self.serve(self._routes)

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, handler: Handler) -> str:
        self.handlers[path] = handler
        return self.url(path)

    def close(self) -> None:
        self.stop()

    def _routes(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self.handlers.get(environ["PATH_INFO"])
        if handler is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such route"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        reply = handler(environ["wsgi.input"].read(length) if length else b"")
        headers = [("Content-Type", reply.content_type), *reply.headers]
        if isinstance(reply.body, bytes):
            headers.append(("Content-Length", str(len(reply.body))))
            start_response(f"{reply.status} X", headers)
            return [reply.body]
        start_response(f"{reply.status} X", headers)  # no length: werkzeug streams it chunked
        return reply.body


def dev_pki_app(ca: pki.Issued, revocations: DevRevocations, tsa: DevTsa) -> Flask:
    app = Flask("dev-pki-test")
    app.register_blueprint(dev_pki_blueprint(ca, revocations, tsa))
    return app
