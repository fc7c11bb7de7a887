#!/usr/bin/env bash
# Scale-out layout on one machine, without containers: two gateway servers and two delivery workers
# sharing PostgreSQL and Redis, no coordinator.  On real hosts run the same commands on each host
# with the same GATEWAY_* settings and the same keys/ folder, behind a load balancer.
#
#   DATABASE=postgresql+psycopg://postgres@127.0.0.1:5432/gateway REDIS=redis://127.0.0.1:6379/0 scripts/scale-out.sh
#
# It runs the production configuration unless GATEWAY_DEMO=true is given (demo agencies, development
# keys and identity provider): keys/ must then hold real keys (`gateway keys init` makes development ones).
#
# Ctrl-C stops everything.  Servers listen on 127.0.0.1:8080 and :8081.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/gateway ] || { python3 -m venv .venv && .venv/bin/pip install -q -e .; }
export GATEWAY_DATABASE_URL="${DATABASE:-postgresql+psycopg://postgres@127.0.0.1:5432/gateway}"
export GATEWAY_REDIS_URL="${REDIS:-redis://127.0.0.1:6379/0}"
export GATEWAY_PUBLIC_URL="${GATEWAY_PUBLIC_URL:-http://127.0.0.1:8080}"  # the name clients use (the load balancer's)
export GATEWAY_DEMO="${GATEWAY_DEMO:-false}"
demo=()
case "${GATEWAY_DEMO,,}" in
  true|1|yes|on) demo=(--demo) ;;
  false|0|no|off|"") ;;
  *) echo "scale-out.sh: GATEWAY_DEMO must be true or false, not '$GATEWAY_DEMO'" >&2; exit 2 ;;
esac

.venv/bin/gateway init "${demo[@]}"        # migrations run once; safe to repeat
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for port in 8080 8081; do
  .venv/bin/gateway serve --port "$port" --workers 2 --delivery-workers 0 & pids+=($!)
done
for _ in 1 2; do
  .venv/bin/gateway worker & pids+=($!)
done
wait
