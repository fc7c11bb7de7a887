"""WSGI entry point for gunicorn: ``gunicorn gateway.wsgi:app`` (configuration from the environment)."""

from gateway import create_app

app = create_app()
