"""A real departmental HTTP endpoint for push-delivery tests, in a thread on a free local port.

It checks the gateway's bearer token against the gateway's public key, keeps one copy per
document id (a second delivery of the same id is answered with the same receipt, as the protocol
asks of receivers), and signs its receipts with the agency's client key.  ``mode`` makes it
misbehave: ``slow``, ``error`` (503), ``gone`` (404), ``bad-receipt``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec


class Receiver:
    def __init__(self, agency: str, receipt_key: Any, gateway_key: ec.EllipticCurvePublicKey) -> None:
        self.agency = agency
        self.receipt_key = receipt_key
        self.gateway_key = gateway_key
        self.mode = "ok"
        self.delay = 0.0
        self.documents: dict[str, tuple[bytes, bytes]] = {}
        self.posts: Counter[str] = Counter()  # accepted deliveries per document id
        self.requests = 0
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/edxml"

    def start(self) -> None:
        """Listen (again, on the same port after a :meth:`stop`)."""
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Go away entirely: connections are refused until :meth:`start`."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def receipt(self, document_id: str, content: bytes) -> bytes:
        key = self.receipt_key if self.mode != "bad-receipt" else ec.generate_private_key(ec.SECP256R1())
        claims = {
            "iss": self.agency,
            "iat": int(time.time()),
            "document_id": document_id,
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "receipt+jwt"}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"", kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                self._answer(200)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests += 1
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.mode == "error":
                    return self._answer(503, b"maintenance")
                if receiver.mode == "gone":
                    return self._answer(404, b"no such endpoint")
                try:
                    token = self.headers["Authorization"].removeprefix("Bearer ")
                    claims = jwt.decode(token, receiver.gateway_key, algorithms=["ES256"], audience=receiver.url)
                except (AttributeError, jwt.InvalidTokenError):
                    return self._answer(401, b"gateway token invalid")
                parts = _multipart(self.headers["Content-Type"], body)
                document_id = self.headers["X-Document-Id"]
                if (
                    claims["document_id"] != document_id
                    or claims["sha256"] != hashlib.sha256(parts["document"]).hexdigest()
                ):
                    return self._answer(400, b"token does not match the document")
                with receiver.lock:
                    receiver.posts[document_id] += 1
                    receiver.documents.setdefault(document_id, (parts["document"], parts["seal"]))
                self._answer(200, receiver.receipt(document_id, parts["document"]), "application/jwt")

        return Handler


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    found: dict[str, bytes] = {}
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        name = part.get_param("name", header="content-disposition")
        assert isinstance(payload, bytes) and isinstance(name, str)
        found[name] = payload
    return found
