"""The OpenAPI document describes every endpoint the app serves, and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import re

from openapi_spec_validator import validate


def test_every_api_route_is_documented_with_its_methods(app):
    """The auditor workbench's HTML pages (blueprint ``web``) are for people, not integrators."""
    spec = app.test_client().get("/openapi.json").get_json()
    validate(spec)
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue
        path = re.sub(r"<(?:[^:>]+:)?[a-z_]*id>", "{id}", rule.rule)
        assert path in spec["paths"], f"{path} is not in schemas/openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], f"{method} {path} is not in schemas/openapi.json"


def test_health_readiness_and_metrics(app):
    client = app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["database"] is True
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    assert "gateway_http_requests_total" in text
    assert client.get("/healthz").headers["X-Request-Id"]


def test_readiness_and_metrics_answer_on_a_file_that_is_not_a_gateway_database(tmp_path, dev_pki):
    from gateway import create_app
    from tests.conftest import make_config

    path = tmp_path / "gw.db"
    app = create_app(make_config(f"sqlite:///{path}", dev_pki))  # never migrated: no tables
    try:
        client = app.test_client()
        assert client.get("/readyz").status_code == 503
        assert client.get("/metrics").status_code == 200
    finally:
        app.extensions["gateway"].db.dispose()


def test_metrics_labels_stay_bounded_whatever_methods_clients_send(app):
    """Issue 10, finding 6: 2 000 random methods grew /metrics from 709 B to 401 KB."""
    import secrets

    client = app.test_client()
    client.get("/metrics")
    before = len(client.get("/metrics").data)
    for _ in range(200):
        client.open("/healthz", method=secrets.token_hex(6).upper())
    text = client.get("/metrics").get_data(as_text=True)
    assert 'method="OTHER"' in text and len(text) < before + 2000


def test_metrics_need_the_token_outside_demo_mode(database_url, dev_pki):
    """Issue 10, finding 6: /metrics was open to anyone."""
    from gateway import create_app
    from tests.conftest import make_config

    for settings, status, code in [
        ({"demo": False}, 403, "metrics-token-required"),
        ({"demo": False, "metrics_token": "s3cret-metrics-token-0123"}, 401, "metrics-unauthorized"),
        ({"demo": True, "metrics_token": "s3cret-metrics-token-0123"}, 401, "metrics-unauthorized"),
    ]:
        app = create_app(make_config(database_url, dev_pki, **settings))
        try:
            client = app.test_client()
            refused = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
            assert refused.status_code == status and refused.get_json()["code"] == code
            if "metrics_token" in settings:
                good = client.get("/metrics", headers={"Authorization": f"Bearer {settings['metrics_token']}"})
                assert good.status_code == 200 and b"gateway_http_requests_total" in good.data
        finally:
            app.extensions["gateway"].db.dispose()
