"""The witness's HTTP interface: ``POST /add-checkpoint`` and ``GET /<origin hash>/checkpoint``.

The submission and monitoring prefixes are both the server's root.  Nothing here authenticates the
caller: the spec relies on the checkpoint's signature alone, so a stranger can at most make the
witness verify a signature.
"""

from __future__ import annotations

from flask import Flask, Response, request

from gateway.witness.protocol import MAX_REQUEST_BYTES, Answer, Witness


def create_witness_app(witness: Witness) -> Flask:
    app = Flask("gateway.witness")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    def answer(found: Answer) -> Response:
        return Response(found.body, status=found.status, content_type=found.content_type)

    @app.post("/add-checkpoint")
    def add_checkpoint() -> Response:
        return answer(witness.add_checkpoint(request.get_data(cache=False)))

    @app.get("/<origin_hash>/checkpoint")
    def checkpoint(origin_hash: str) -> Response:
        return answer(witness.checkpoint(origin_hash))

    @app.get("/")
    def about() -> Response:
        logs = "".join(f"log {origin}\n" for origin in sorted(witness.logs))
        return answer(Answer(200, f"witness {witness.signer.name}\nvkey {witness.signer.vkey}\n{logs}"))

    @app.get("/healthz")
    def healthz() -> Response:
        return answer(Answer(200, "ok\n"))

    return app
