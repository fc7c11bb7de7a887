"""A development identity provider that behaves like a VNeID-style OpenID Connect issuer.

Enabled only in demo mode (mounted at ``/dev-idp``) or run alone with ``gateway dev-idp``; never in
a production configuration.  It offers discovery, a JWKS, the authorization-code flow with PKCE
(S256 only) and a page to pick a fictional test citizen at assurance level 1 or 2, and a token
endpoint issuing RS256 ID and access tokens with the claims VNeID deployments use.  Authorization
codes are short-lived, single-use (through the shared replay cache) and encrypted with a key only
this provider has (AES-GCM), so the flow works across several gunicorn workers without server-side
sessions and a code in a browser's history or a proxy log says nothing about the citizen (issue 10,
finding 8: it was a readable JWT carrying the full personal ID).  Clients and their redirect URIs
are registered (``GATEWAY_DEV_IDP_CLIENTS``); a code goes only to a registered URI, compared exactly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Blueprint, Response, jsonify, redirect, render_template_string, request
from werkzeug.wrappers import Response as WerkzeugResponse

from gateway.identity.personal_id import mask
from gateway.identity.state import ReplayCache
from gateway.trust.pki import key_id

TOKEN_LIFETIME = 600
CODE_LIFETIME = 60


@dataclass(frozen=True)
class TestCitizen:
    personal_id: str
    full_name: str
    birth_date: str  # YYYYMMDD


# Fictional people with well-formed personal IDs (province, century/gender, birth year, random).
TEST_CITIZENS = (
    TestCitizen("079203001234", "Nguyễn Văn An", "20030412"),
    TestCitizen("001198012345", "Trần Thị Bình", "19980615"),
    TestCitizen("031085054321", "Lê Minh Châu", "19850101"),
)


@dataclass(frozen=True)
class DevIdpSettings:
    issuer: str
    key: rsa.RSAPrivateKey
    access_token_audience: str
    replay: ReplayCache
    clients: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # client_id → exact redirect URIs

    @property
    def kid(self) -> str:
        return key_id(self.key)

    def _code_key(self) -> AESGCM:
        der = self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return AESGCM(hmac.new(der, b"dev-idp authorization codes", hashlib.sha256).digest())

    def seal_code(self, claims: dict[str, Any]) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._code_key().encrypt(nonce, json.dumps(claims).encode(), self.issuer.encode())
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open_code(self, code: str) -> dict[str, Any] | None:
        """The claims of a code this provider made and that has not expired; None for anything else."""
        try:
            raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
            claims = json.loads(self._code_key().decrypt(raw[:12], raw[12:], self.issuer.encode()))
        except (ValueError, InvalidTag, binascii.Error):
            return None
        if not isinstance(claims, dict) or int(claims.get("exp", 0)) <= time.time():
            return None
        return claims

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [jwk]}


_PAGE = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Đăng nhập thử nghiệm / Development login</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.75rem;border-radius:.4rem}
label{display:block;margin:.4rem 0}button{margin-top:1rem;padding:.5rem 1.5rem;font-size:1rem}</style></head>
<body>
<p class="warn"><strong>Môi trường thử nghiệm.</strong> Đây không phải VNeID: chỉ dùng để phát triển.<br>
<em>Development identity provider — not VNeID. For development only.</em></p>
<h1>Chọn công dân thử nghiệm / Pick a test citizen</h1>
<form method="post">
{% for name, value in hidden.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
{% for c in citizens %}
<label><input type="radio" name="citizen" value="{{ loop.index0 }}" {% if loop.first %}checked{% endif %}>
  {{ c.full_name }} — {{ mask(c.personal_id) }} — {{ c.birth_date }}</label>
{% endfor %}
<label>Mức độ định danh / Assurance level
<select name="level"><option value="2">Mức 2 / Level 2</option>
<option value="1">Mức 1 / Level 1</option></select></label>
<button type="submit" id="login">Đăng nhập / Log in</button>
</form></body></html>"""


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _b64url_sha256(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode("ascii")).digest()).rstrip(b"=").decode()


def dev_idp_blueprint(settings: DevIdpSettings) -> Blueprint:
    bp = Blueprint("dev_idp", __name__, url_prefix="/dev-idp")
    issuer = settings.issuer.rstrip("/")

    @bp.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return jsonify(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + "/authorize",
                "token_endpoint": issuer + "/token",
                "jwks_uri": issuer + "/jwks.json",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "subject_types_supported": ["public"],
                "acr_values_supported": ["1", "2"],
                "claims_supported": ["sub", "SoDinhDanh", "HoVaTen", "NgayThangNamSinh", "acr"],
            }
        )

    @bp.get("/jwks.json")
    def jwks() -> Response:
        return jsonify(settings.jwks())

    def _authorization_params(source: Any) -> dict[str, str] | Response:
        params = {
            k: str(source.get(k, ""))
            for k in (
                "response_type",
                "client_id",
                "redirect_uri",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method",
            )
        }
        if params["response_type"] != "code":
            return _oauth_error("unsupported_response_type", "only response_type=code")
        registered = settings.clients.get(params["client_id"])
        if registered is None:
            return _oauth_error(
                "invalid_request", "unknown client_id: register it with its redirect URIs in GATEWAY_DEV_IDP_CLIENTS"
            )
        if params["redirect_uri"] not in registered:  # exact match (RFC 9700 §4.1.1); never redirect elsewhere
            return _oauth_error("invalid_request", "redirect_uri is not registered for this client_id")
        if params["code_challenge_method"] != "S256" or not 43 <= len(params["code_challenge"]) <= 128:
            return _oauth_error("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
        return params

    @bp.get("/authorize")
    def authorize_page() -> Response | str:
        params = _authorization_params(request.args)
        if isinstance(params, Response):
            return params
        return render_template_string(_PAGE, hidden=params, citizens=TEST_CITIZENS, mask=mask)

    @bp.post("/authorize")
    def authorize() -> Response | WerkzeugResponse:
        params = _authorization_params(request.form)
        if isinstance(params, Response):
            return params
        try:
            citizen = TEST_CITIZENS[int(request.form.get("citizen", "0"))]
            level = int(request.form.get("level", "2"))
        except (ValueError, IndexError):
            return _oauth_error("invalid_request", "pick one of the listed citizens")
        if level not in (1, 2):
            return _oauth_error("invalid_request", "level is 1 or 2")
        now = int(time.time())
        code = settings.seal_code(
            {
                "exp": now + CODE_LIFETIME,
                "jti": uuid.uuid4().hex,
                "pid": citizen.personal_id,
                "level": level,
                "nonce": params["nonce"],
                "client_id": params["client_id"],
                "redirect_uri": params["redirect_uri"],
                "challenge": params["code_challenge"],
            }
        )
        query = urlencode({"code": code, "state": params["state"]})
        separator = "&" if urlsplit(params["redirect_uri"]).query else "?"
        return redirect(f"{params['redirect_uri']}{separator}{query}", code=302)

    @bp.post("/token")
    def token() -> Response:
        form = request.form
        if form.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type", "only authorization_code")
        code = settings.open_code(form.get("code", ""))
        if code is None:
            return _oauth_error("invalid_grant", "the code is invalid or expired")
        if form.get("redirect_uri") != code["redirect_uri"] or form.get("client_id") != code["client_id"]:
            return _oauth_error("invalid_grant", "redirect_uri or client_id differ from the authorization request")
        if not hmac.compare_digest(_b64url_sha256(form.get("code_verifier", "")), code["challenge"]):
            return _oauth_error("invalid_grant", "PKCE code_verifier does not match the code_challenge")
        if not settings.replay.first_use("dev-idp-code", code["jti"], int(code["exp"]) + 60):
            return _oauth_error("invalid_grant", "the code was already used")
        citizen = next(c for c in TEST_CITIZENS if c.personal_id == code["pid"])
        now = int(time.time())
        identity = {
            "sub": f"dev-{citizen.personal_id[-6:]}",
            "SoDinhDanh": citizen.personal_id,
            "HoVaTen": citizen.full_name,
            "NgayThangNamSinh": citizen.birth_date,
            "acr": str(code["level"]),
        }
        common = {"iss": issuer, "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME, **identity}
        headers = {"kid": settings.kid}
        id_token = jwt.encode(
            {**common, "aud": code["client_id"], "nonce": code["nonce"], "jti": uuid.uuid4().hex},
            settings.key,
            algorithm="RS256",
            headers={**headers, "typ": "JWT"},
        )
        access_token = jwt.encode(
            {
                **common,
                "aud": settings.access_token_audience,
                "client_id": code["client_id"],
                "jti": uuid.uuid4().hex,
            },
            settings.key,
            algorithm="RS256",
            headers={**headers, "typ": "at+jwt"},
        )
        response = jsonify(
            {"access_token": access_token, "id_token": id_token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME}
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp
