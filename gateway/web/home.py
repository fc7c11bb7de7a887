"""``/``: where a person or a script that opens the gateway's address is pointed to.

A browser gets a short page in its language with links to the workbench, the API description,
health and the audit log's checkpoint; anything else gets the same links as JSON.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, make_response, request, url_for

from gateway.web.blueprint import page

bp = Blueprint("home", __name__, template_folder="templates")


def _links() -> dict[str, str]:
    return {
        "workbench": url_for("web.overview"),
        "openapi": "/openapi.json",
        "health": "/healthz",
        "readiness": "/readyz",
        "checkpoint": "/v1/audit/checkpoint",
        "seal_certificate": "/.well-known/gateway-seal.pem",
    }


@bp.get("/")
def home() -> Response:
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        response = make_response(page("home.html", links=_links()))
    else:
        response = jsonify({"service": "interconnect-gateway", "links": _links()})
    response.vary.add("Accept")  # one URL, two representations: caches must keep them apart
    return response
