#!/usr/bin/env bash
# Brings the whole system up locally: infrastructure, the five services and the gateway in front of
# them (migrations run at their start), a local token issuer's key pair, demo data, then prints
# the URLs, demo tokens and a curl walk-through. Stop it all with deploy/down.sh.
# Env overrides: CLOCK_MODE (default manual here, so the demo can live through days; "system" uses
# the real Seoul date), CUSTOMER_PORT ACCOUNT_INFO_PORT ACCOUNTING_PORT INTEREST_PORT TAX_PORT GATEWAY_PORT,
# DATABASE_URL_BASE, REDIS_URL, KAFKA_BROKERS, OTEL_EXPORTER_OTLP_ENDPOINT, DEMO_DATA=0 to skip data,
# LEGACY_CORE=0 to run without the legacy-core simulator (port LEGACY_CORE_PORT, default 8090),
# TOPOLOGY=monolith to run the same five services in one process (the `bank` binary: same ports,
# same databases, calls between services in-process instead of over HTTP), TOPOLOGY=replicated to
# run two processes of each service and of the gateway (replica i on its port + 100*i,
# REPLICA_PORT_STEP) behind HAProxy on the usual ports (round robin, health-checked on
# /health/ready; statistics on HAPROXY_STATS_PORT, 8404), every caller reaching peers through it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATE="${BANK_STATE_DIR:-$ROOT/.local}"
export PATH="$HOME/.cargo/bin:$PATH"

bash deploy/infra.sh

export CLOCK_MODE="${CLOCK_MODE:-manual}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
DB="${DATABASE_URL_BASE:-postgres://postgres:postgres@127.0.0.1:5432}"
CUSTOMER_PORT="${CUSTOMER_PORT:-8081}"; ACCOUNT_INFO_PORT="${ACCOUNT_INFO_PORT:-8082}"
ACCOUNTING_PORT="${ACCOUNTING_PORT:-8083}"; INTEREST_PORT="${INTEREST_PORT:-8084}"; TAX_PORT="${TAX_PORT:-8085}"
export CUSTOMER_URL="http://127.0.0.1:$CUSTOMER_PORT" ACCOUNT_INFO_URL="http://127.0.0.1:$ACCOUNT_INFO_PORT"
export ACCOUNTING_URL="http://127.0.0.1:$ACCOUNTING_PORT" INTEREST_URL="http://127.0.0.1:$INTEREST_PORT"
export TAX_URL="http://127.0.0.1:$TAX_PORT"
GATEWAY_PORT="${GATEWAY_PORT:-8080}"; GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
# The legacy-core simulator (docs/migration.md); LEGACY_CORE=0 runs without it.
LEGACY_CORE_PORT="${LEGACY_CORE_PORT:-8090}"
if [ "${LEGACY_CORE:-1}" = "1" ]; then export LEGACY_CORE_URL="http://127.0.0.1:$LEGACY_CORE_PORT"; fi

# A local token issuer for the gateway (demo only: production tokens come from the bank's identity
# provider, whose public keys the gateway is given).
AUTH_DIR="$STATE/auth"
mkdir -p "$AUTH_DIR"
if [ ! -f "$AUTH_DIR/issuer.key.pem" ]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$AUTH_DIR/issuer.key.pem" 2>/dev/null
  openssl pkey -in "$AUTH_DIR/issuer.key.pem" -pubout -out "$AUTH_DIR/issuer.pub.pem"
  chmod 600 "$AUTH_DIR/issuer.key.pem"
fi

echo "[up] building the services"
cargo build --release --bins -q
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

# Service credentials: each service (and ops tools) signs its calls with its own key; every service
# trusts the set's public keys and lets each caller reach only its granted routes.
CRED="$STATE/credentials"
if [ ! -f "$CRED/trust.jwks.json" ]; then
  "$BIN/bankctl" credentials generate --out "$CRED"
fi
export SERVICE_TRUST_FILE="$CRED/trust.jwks.json"

bash deploy/down.sh --services-only >/dev/null 2>&1 || true
mkdir -p "$STATE/pids" "$STATE/logs"
start() { # name port database [binary]
  echo "[up] starting $1 on :$2"
  PORT="$2" DATABASE_URL="$DB/$3" SERVICE_KEY_FILE="$CRED/${4:-$1}.key.pem" \
    setsid "$BIN/${4:-$1}" >"$STATE/logs/$1.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$1.pid"
}
REPLICA_PORT_STEP="${REPLICA_PORT_STEP:-100}"
HAPROXY_STATS_PORT="${HAPROXY_STATS_PORT:-8404}"
REPLICA_URLS=()
# The replicated topology: each service's replicas (name.1, name.2) on their own ports, and one
# HAProxy pool per service on its usual port (the same configuration as the end-to-end harness's,
# tests/src/balancer.rs: fail-open to every replica when none is ready).
replicas() { # name port database
  local i
  for i in 1 2; do
    start "$1.$i" "$(($2 + REPLICA_PORT_STEP * i))" "$3" "$1"
    REPLICA_URLS+=("http://127.0.0.1:$(($2 + REPLICA_PORT_STEP * i))")
  done
}
haproxy_pool() { # name port
  local p1="$(($2 + REPLICA_PORT_STEP))" p2="$(($2 + 2 * REPLICA_PORT_STEP))"
  printf '\nfrontend %s\n    bind 127.0.0.1:%s\n    use_backend %s-all if { nbsrv(%s) eq 0 }\n    default_backend %s\n' "$1" "$2" "$1" "$1" "$1"
  printf '\nbackend %s\n    balance roundrobin\n    option httpchk GET /health/ready\n    http-check expect status 200\n' "$1"
  printf '    server %s.1 127.0.0.1:%s check\n    server %s.2 127.0.0.1:%s check\n' "$1" "$p1" "$1" "$p2"
  printf '\nbackend %s-all\n    balance roundrobin\n' "$1"
  printf '    server %s.1 127.0.0.1:%s\n    server %s.2 127.0.0.1:%s\n' "$1" "$p1" "$1" "$p2"
}
start_haproxy() {
  command -v haproxy >/dev/null 2>&1 || export PATH="$PATH:/usr/sbin"
  {
    cat <<CFG
# Written by deploy/up.sh at each start (TOPOLOGY=replicated): edit the script, not this file.
global
    maxconn 4000

defaults
    mode http
    timeout connect 1s
    timeout client 300s
    timeout server 120s
    timeout http-keep-alive 300s
    timeout check 1500ms
    retries 3
    option redispatch 1
    default-server inter 1s fastinter 250ms downinter 500ms rise 1 fall 2

listen stats
    bind 127.0.0.1:$HAPROXY_STATS_PORT
    stats enable
    stats uri /stats
CFG
    haproxy_pool customer "$CUSTOMER_PORT"
    haproxy_pool account-info "$ACCOUNT_INFO_PORT"
    haproxy_pool accounting "$ACCOUNTING_PORT"
    haproxy_pool interest "$INTEREST_PORT"
    haproxy_pool tax-consumer "$TAX_PORT"
    haproxy_pool gateway "$GATEWAY_PORT"
  } >"$STATE/haproxy.cfg"
  haproxy -c -q -f "$STATE/haproxy.cfg"
  echo "[up] starting HAProxy on :$CUSTOMER_PORT-:$TAX_PORT, :$GATEWAY_PORT (statistics on :$HAPROXY_STATS_PORT/stats)"
  setsid haproxy -db -f "$STATE/haproxy.cfg" >"$STATE/logs/haproxy.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/haproxy.pid"
}
if [ "${TOPOLOGY:-services}" = "replicated" ]; then start_haproxy; fi
if [ -n "${LEGACY_CORE_URL:-}" ]; then start legacy-core "$LEGACY_CORE_PORT" legacy_core; fi
if [ "${TOPOLOGY:-services}" = "replicated" ]; then
  replicas customer "$CUSTOMER_PORT" customer
  replicas interest "$INTEREST_PORT" interest
  replicas account-info "$ACCOUNT_INFO_PORT" account_info
  replicas accounting "$ACCOUNTING_PORT" accounting
  replicas tax-consumer "$TAX_PORT" tax
  AUTH_PUBLIC_KEY_FILE="$AUTH_DIR/issuer.pub.pem" replicas gateway "$GATEWAY_PORT" gateway
elif [ "${TOPOLOGY:-services}" = "monolith" ]; then
  echo "[up] starting bank (the five services and the gateway in one process) on :$CUSTOMER_PORT-:$TAX_PORT, :$GATEWAY_PORT"
  CUSTOMER_PORT="$CUSTOMER_PORT" CUSTOMER_DATABASE_URL="$DB/customer" \
  ACCOUNT_INFO_PORT="$ACCOUNT_INFO_PORT" ACCOUNT_INFO_DATABASE_URL="$DB/account_info" \
  ACCOUNTING_PORT="$ACCOUNTING_PORT" ACCOUNTING_DATABASE_URL="$DB/accounting" \
  INTEREST_PORT="$INTEREST_PORT" INTEREST_DATABASE_URL="$DB/interest" \
  TAX_CONSUMER_PORT="$TAX_PORT" TAX_CONSUMER_DATABASE_URL="$DB/tax" \
  GATEWAY_PORT="$GATEWAY_PORT" GATEWAY_DATABASE_URL="$DB/gateway" AUTH_PUBLIC_KEY_FILE="$AUTH_DIR/issuer.pub.pem" \
  CUSTOMER_SERVICE_KEY_FILE="$CRED/customer.key.pem" ACCOUNT_INFO_SERVICE_KEY_FILE="$CRED/account-info.key.pem" \
  ACCOUNTING_SERVICE_KEY_FILE="$CRED/accounting.key.pem" INTEREST_SERVICE_KEY_FILE="$CRED/interest.key.pem" \
  TAX_CONSUMER_SERVICE_KEY_FILE="$CRED/tax-consumer.key.pem" GATEWAY_SERVICE_KEY_FILE="$CRED/gateway.key.pem" \
    setsid "$BIN/bank" >"$STATE/logs/bank.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/bank.pid"
else
  start customer "$CUSTOMER_PORT" customer
  start interest "$INTEREST_PORT" interest
  start account-info "$ACCOUNT_INFO_PORT" account_info
  start accounting "$ACCOUNTING_PORT" accounting
  start tax-consumer "$TAX_PORT" tax
  AUTH_PUBLIC_KEY_FILE="$AUTH_DIR/issuer.pub.pem" start gateway "$GATEWAY_PORT" gateway
fi
for url in "${REPLICA_URLS[@]}" "$CUSTOMER_URL" "$ACCOUNT_INFO_URL" "$ACCOUNTING_URL" "$INTEREST_URL" "$TAX_URL" "$GATEWAY_URL" ${LEGACY_CORE_URL:-}; do  # health: open
  for i in $(seq 1 120); do
    curl -sf "$url/health/ready" >/dev/null && break
    [ "$i" = 120 ] && { echo "[up] $url did not become ready; see $STATE/logs"; exit 1; }
    sleep 0.5
  done
done
echo "[up] all five services and the gateway are ready${LEGACY_CORE_URL:+ (and the legacy-core simulator)}${REPLICA_URLS[0]:+: two replicas each behind HAProxy}"

if [ "${DEMO_DATA:-1}" = "1" ]; then
  CUSTOMER_URL="$CUSTOMER_URL" ACCOUNT_INFO_URL="$ACCOUNT_INFO_URL" ACCOUNTING_URL="$ACCOUNTING_URL" \
    INTEREST_URL="$INTEREST_URL" GATEWAY_URL="$GATEWAY_URL" BANKCTL="$BIN/bankctl" LEGACY_CORE_URL="${LEGACY_CORE_URL:-}" \
    ISSUER_KEY="$AUTH_DIR/issuer.key.pem" SERVICE_KEY_FILE="$CRED/ops.key.pem" bash deploy/demo-data.sh
fi
