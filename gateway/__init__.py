"""Interconnect gateway: the Flask application factory."""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask

from gateway.config import Config

__all__ = ["create_app"]


def create_app(config: Config | None = None) -> Flask:
    """Build one gateway app.  Configuration, keys and the database handle are loaded here, once."""
    from gateway.api import audit, auditors, citizens, deliveries, documents, evidence, oauth, ops, tiles, vxp_facade
    from gateway.api.converters import install_converters
    from gateway.api.headers import install_security_headers
    from gateway.api.problems import register_error_handlers
    from gateway.documents import schema
    from gateway.identity.dev_idp import dev_idp_blueprint
    from gateway.observability import Metrics, configure_logging, install_request_hooks
    from gateway.services import Services
    from gateway.web import bp as workbench
    from gateway.web.home import bp as home

    config = config or Config.load()
    app = Flask(__name__)
    install_converters(app)
    app.config["MAX_CONTENT_LENGTH"] = config.max_document_bytes + 64 * 1024
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    configure_logging(app, config.log_level)
    metrics = Metrics()
    app.extensions["gateway"] = Services.build(config)
    schema.warm_up()  # compile the XSDs before threads serve requests
    # The workbench's session cookie is signed with a key derived from the deployment's pepper, so
    # every worker and host agrees on it without another secret to distribute.
    app.secret_key = hmac.new(app.extensions["gateway"].keys.pepper, b"workbench-session", hashlib.sha256).digest()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.public_url.startswith("https://"),
    )
    app.extensions["gateway.metrics"] = metrics
    install_request_hooks(app, metrics)
    install_security_headers(app, config.public_url)
    register_error_handlers(app)
    for blueprint in (
        oauth.bp,
        documents.bp,
        evidence.bp,
        citizens.bp,
        audit.bp,
        auditors.bp,
        tiles.bp,
        vxp_facade.bp,
        deliveries.bp,
        workbench,
        home,
        ops.bp,
    ):
        app.register_blueprint(blueprint)
    # Checkpoints are signed off the request path: by `gateway audit signer` under `gateway serve`, else
    # by each server process's once-a-second thread (gateway.gunicorn_conf.post_worker_init).
    services = app.extensions["gateway"]
    if services.dev_idp is not None:  # demo mode only, never a production configuration
        app.register_blueprint(dev_idp_blueprint(services.dev_idp))
    if services.dev_pki is not None:  # demo mode only: the development CA's OCSP responder, CRL and TSA
        from gateway.trust.dev_service import dev_pki_blueprint

        dev = services.dev_pki
        app.register_blueprint(dev_pki_blueprint(dev.ca, dev.revocations, dev.tsa))
    return app
