#!/usr/bin/env bash
# One command: install the gateway into .venv, create development keys and demo agencies on the
# embedded SQLite database, and serve on http://127.0.0.1:8080.  Extra arguments go to `gateway serve`:
# `./run.sh --port 8085` serves at http://127.0.0.1:8085 and tells the other `gateway` commands so.
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "run.sh: Python 3.11 or newer is required (found $(python3 --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
echo "installing the gateway into .venv …"
mkdir -p var
if ! .venv/bin/python -m pip install --disable-pip-version-check -e . >var/pip-install.log 2>&1; then
  tail -30 var/pip-install.log >&2; echo "run.sh: installing dependencies failed (full log: var/pip-install.log)" >&2; exit 1
fi
# Demo mode: development keys, demo agencies, the citizen portal and the development identity
# provider at /dev-idp.  Never set GATEWAY_DEMO in production.
export GATEWAY_DEMO="${GATEWAY_DEMO:-true}"
# The port asked of `gateway serve` also names the development certificates' status URLs and the log.
PORT=8080; previous=""
for arg in "$@"; do
  case "$arg" in --port=*) PORT="${arg#--port=}" ;; esac
  [ "$previous" = "--port" ] && PORT="$arg"
  previous="$arg"
done
.venv/bin/gateway init --demo --port "$PORT"
exec .venv/bin/gateway serve "$@"
