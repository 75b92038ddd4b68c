#!/usr/bin/env bash
# Typed SQL: every service's queries are `sqlx::query!`/`query_as!`, checked at compile time against
# the shapes its migrations create. The shapes are kept in each service's `.sqlx/` folder, so a
# build needs no database (.cargo/config.toml sets SQLX_OFFLINE=true).
#
#   bash deploy/sqlx.sh prepare [service…]  rewrite the .sqlx folders after a query or a migration changed
#   bash deploy/sqlx.sh check   [service…]  fail when a .sqlx folder no longer matches its queries and
#                                            migrations (deploy/test.sh runs this)
#
# Each service gets a scratch database (sqlx_<service>) on the local PostgreSQL, rebuilt from its
# migrations every time. sqlx-cli is pinned and installed once outside the clone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

mode="${1:-}"
case "$mode" in
  prepare|check) shift ;;
  *) echo "usage: bash deploy/sqlx.sh prepare|check [service…]" >&2; exit 2 ;;
esac

SQLX_CLI_VERSION="0.8.6"
SQLX_ROOT="${SQLX_CLI_ROOT:-/var/cache/interest-bank/sqlx-cli-$SQLX_CLI_VERSION}"
if [ ! -x "$SQLX_ROOT/bin/cargo-sqlx" ]; then
  echo "[sqlx] installing sqlx-cli $SQLX_CLI_VERSION into $SQLX_ROOT (once, about four minutes)"
  cargo install sqlx-cli --version "$SQLX_CLI_VERSION" --no-default-features \
    --features postgres,rustls --locked --root "$SQLX_ROOT" -q
fi
export PATH="$SQLX_ROOT/bin:$PATH"

BASE="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432}"

# service folder → migrations folder
declare -A MIGRATIONS=(
  [customer]=customer
  [account-info]=account_info
  [accounting]=accounting
  [interest]=interest
  [tax-consumer]=tax
  [gateway]=gateway
  [legacy-core]=legacy-core
)
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(customer account-info accounting interest tax-consumer gateway legacy-core)

status=0
for svc in "${services[@]}"; do
  migrations="${MIGRATIONS[$svc]:-}"
  [ -n "$migrations" ] || { echo "[sqlx] unknown service $svc" >&2; exit 2; }
  db="sqlx_${svc//-/_}"
  url="$BASE/$db"
  sqlx database drop -y --database-url "$url" >/dev/null
  sqlx database create --database-url "$url"
  sqlx migrate run --source "migrations/$migrations" --database-url "$url" >/dev/null
  # A service without a single checked query has nothing to prepare.
  if ! grep -rqE 'query(_as|_scalar)?!' "services/$svc/src"; then
    continue
  fi
  echo "[sqlx] $mode $svc against $db"
  if [ "$mode" = prepare ]; then
    (cd "services/$svc" && DATABASE_URL="$url" SQLX_OFFLINE=false cargo sqlx prepare -- --all-targets -q)
  elif ! (cd "services/$svc" && DATABASE_URL="$url" SQLX_OFFLINE=false cargo sqlx prepare --check -- --all-targets -q); then
    echo "[sqlx] services/$svc/.sqlx is stale: run bash deploy/sqlx.sh prepare $svc and commit it" >&2
    status=1
  fi
done
exit $status
