"""A real HTTP server on loopback for the development CA's OCSP responder, CRL and TSA.

The suite's certificates name this server in their AIA and CDP extensions, so every signature the
tests submit is status-checked over HTTP exactly as in production, against the same blueprint demo
mode serves.  The socket is bound before the keys exist (the certificates must carry its URL); the
application is attached once they do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from gateway.trust import pki
from gateway.trust.dev_pki import DevRevocations
from gateway.trust.dev_service import dev_pki_blueprint
from gateway.trust.dev_tsa import DevTsa

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


class LoopbackServer:
    """A threaded WSGI server on 127.0.0.1 whose application can be set (and replaced) after binding."""

    def __init__(self) -> None:
        self._app: WsgiApp | None = None
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
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
        self._server.shutdown()
        self._server.server_close()


def dev_pki_app(ca: pki.Issued, revocations: DevRevocations, tsa: DevTsa) -> Flask:
    app = Flask("dev-pki-test")
    app.register_blueprint(dev_pki_blueprint(ca, revocations, tsa))
    return app
