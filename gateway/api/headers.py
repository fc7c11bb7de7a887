"""Security headers on every answer (issue 10, finding 10).

The workbench and the development provider's pages use no script at all and only inline styles, so
their policy can be strict: nothing loads from anywhere, nothing frames them, forms post only back to
this origin.  JSON answers get a policy that forbids everything (a browser rendering one by mistake
runs nothing).  Answers to authenticated requests are never cached, and HSTS is sent when the
gateway's public URL is https.
"""

from __future__ import annotations

from flask import Flask, Response, request

from gateway.identity.workbench_sessions import WORKBENCH_COOKIE

PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The development provider's login form answers with a redirect to the client's redirect_uri, which a
# browser checks against form-action: it may not be limited to this origin.
DEV_IDP_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
API_POLICY = "default-src 'none'; frame-ancestors 'none'"


def install_security_headers(app: Flask, public_url: str) -> None:
    https = public_url.startswith("https://")

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            policy = DEV_IDP_POLICY if request.path.startswith("/dev-idp/") else PAGE_POLICY
            # same-origin, not no-referrer: under no-referrer browsers post forms with "Origin: null",
            # and the workbench's CSRF check wants to see its own origin there.
            headers.setdefault("Referrer-Policy", "same-origin")
        else:
            policy = API_POLICY
            headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Content-Security-Policy", policy)
        cookies = request.cookies
        if (
            "Authorization" in request.headers
            or cookies.get(WORKBENCH_COOKIE)
            or cookies.get(app.config["SESSION_COOKIE_NAME"])
        ):
            headers["Cache-Control"] = "no-store"  # tokens' and sessions' answers are nobody else's
        if https:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
