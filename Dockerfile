# Production image: gunicorn, non-root, health-checked.  Keys and the database come from outside
# (mount keys read-only and set GATEWAY_* variables; see README "Configuration").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    GATEWAY_DATABASE_URL=sqlite:////data/gateway.db GATEWAY_KEYS_DIR=/keys \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics

RUN useradd --system --uid 10001 --home-dir /app gateway && mkdir -p /app /data /keys /tmp/metrics \
    && chown gateway /data /tmp/metrics
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY schemas ./schemas
RUN pip install --no-cache-dir .

USER gateway
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
CMD ["gunicorn", "gateway.wsgi:app", "--config", "python:gateway.gunicorn_conf", "--bind", "0.0.0.0:8080", \
     "--workers", "2"]
