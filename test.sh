#!/usr/bin/env bash
# One command: install the gateway with its test tools into .venv, make sure the real PostgreSQL
# and Redis servers the suite talks to are up (starting them, or installing Debian's packages when
# they are missing) and that Debian's chromium is there for the browser tests, check style and
# types, and run the whole pytest suite.  It fails loudly when a server or the browser cannot be
# had: those tests are never skipped.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"

PG_URL="${GATEWAY_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
export GATEWAY_TEST_POSTGRES_URL="$PG_URL"

say() { printf '\033[1m%s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

[ -x .venv/bin/python ] || python3 -m venv .venv
say "installing the gateway and its test tools into .venv …"
mkdir -p var
if ! .venv/bin/python -m pip install --disable-pip-version-check -e ".[test]" >var/pip-install.log 2>&1; then
  tail -30 var/pip-install.log >&2; echo "test.sh: installing dependencies failed (full log: var/pip-install.log)" >&2; exit 1
fi

postgres_ok() {
  .venv/bin/python - "$PG_URL" <<'PY' >/dev/null 2>&1
import sys, sqlalchemy as sa
sa.create_engine(sys.argv[1]).connect().close()
PY
}

ensure_postgres() {
  postgres_ok && return 0
  say "PostgreSQL is not reachable at $PG_URL: starting it …"
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "installing Debian's postgresql …"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then  # test machines only: trust loopback
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || as_root pg_ctlcluster "$version" main reload || true
  for _ in $(seq 30); do postgres_ok && break; sleep 1
    as_root su postgres -c "psql -q -c 'CREATE DATABASE test'" >/dev/null 2>&1 || true
  done
  postgres_ok || { echo "test.sh: PostgreSQL is still unreachable at $PG_URL; fix it or set GATEWAY_TEST_POSTGRES_URL" >&2; exit 1; }
}

ensure_redis() {
  .venv/bin/python -c 'import redis; redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping()' >/dev/null 2>&1 && return 0
  say "Redis is not reachable on 127.0.0.1:6379: starting it …"
  if ! command -v redis-server >/dev/null; then
    say "installing Debian's redis-server …"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 20); do
    .venv/bin/python -c 'import redis; redis.Redis(host="127.0.0.1", port=6379).ping()' >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "test.sh: Redis is still unreachable on 127.0.0.1:6379" >&2; exit 1
}

ensure_chromium() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
  say "installing Debian's chromium and chromium-driver for the browser tests …"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
    || { echo "test.sh: could not install chromium and chromium-driver; the browser tests need them" >&2; exit 1; }
}

ensure_postgres
ensure_redis
ensure_chromium
say "ruff and mypy --strict …"
.venv/bin/ruff check gateway adapters tests bench
.venv/bin/mypy
say "pytest …"
exec .venv/bin/pytest "$@"
