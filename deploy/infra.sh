#!/usr/bin/env bash
# Brings up the infrastructure on a bare Debian machine (run as root), idempotently: PostgreSQL 15
# with the five service databases, Redis, and a Kafka-protocol broker (tansu) with the topics.
# Whatever is already installed or running is left as it is. Addresses can be overridden:
#   PGHOST PGPORT REDIS_PORT KAFKA_PORT BANK_STATE_DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BANK_STATE_DIR:-$ROOT/.local}"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
TANSU_VERSION="0.6.0"
mkdir -p "$STATE/logs"

log() { printf '[infra] %s\n' "$*"; }
apt_updated=""
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 120); do port_open "$1" && return 0; sleep 0.5; done
  log "port $1 did not open"; return 1
}

# Build tools for the bundled librdkafka, and the clients the scripts use.
apt_install curl ca-certificates build-essential cmake pkg-config

# ---- PostgreSQL ----
if ! command -v pg_ctlcluster >/dev/null 2>&1; then apt_install postgresql; fi
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
  log "starting PostgreSQL"
  ver="$(ls /usr/lib/postgresql | sort -n | tail -1)"
  pg_ctlcluster "$ver" main start
  for _ in $(seq 1 60); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 0.5; done
fi
psql_admin() { su postgres -c "psql -X -q -v ON_ERROR_STOP=1 -p $PGPORT $*"; }
psql_admin "-c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
# Five services plus parallel test stacks need more than the default 100 connections.
maxc="$(su postgres -c "psql -X -tA -p $PGPORT -c 'SHOW max_connections'")"
if [ "$maxc" -lt 400 ]; then
  log "raising max_connections to 400 (restart)"
  psql_admin "-c \"ALTER SYSTEM SET max_connections = 400\"" >/dev/null
  ver="$(ls /usr/lib/postgresql | sort -n | tail -1)"
  pg_ctlcluster "$ver" main restart
  for _ in $(seq 1 60); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 0.5; done
fi
# The bench counts SQL statements per payout with pg_stat_statements (loaded at server start).
preload="$(su postgres -c "psql -X -tA -p $PGPORT -c 'SHOW shared_preload_libraries'")"
if [[ "$preload" != *pg_stat_statements* ]]; then
  log "loading pg_stat_statements (restart)"
  psql_admin "-c \"ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'\"" >/dev/null
  ver="$(ls /usr/lib/postgresql | sort -n | tail -1)"
  pg_ctlcluster "$ver" main restart
  for _ in $(seq 1 60); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 0.5; done
fi
psql_admin "-c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'" >/dev/null
for db in customer account_info accounting interest tax gateway legacy_core; do
  exists="$(su postgres -c "psql -X -tA -p $PGPORT -c \"SELECT 1 FROM pg_database WHERE datname = '$db'\"")"
  [ "$exists" = "1" ] || { log "creating database $db"; psql_admin "-c 'CREATE DATABASE $db'"; }
done

# ---- Redis ----
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
if ! port_open "$REDIS_PORT"; then
  log "starting Redis on $REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
    --logfile "$STATE/logs/redis.log"
  wait_port "$REDIS_PORT"
fi

# ---- Kafka-protocol broker (tansu, SQLite storage: durable across kill -9) ----
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v tansu >/dev/null 2>&1; then
  log "installing tansu $TANSU_VERSION (about 15 minutes on 2 cores, once)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
fi
if ! port_open "$KAFKA_PORT"; then
  log "starting tansu on $KAFKA_PORT"
  mkdir -p "$STATE/kafka"
  # tansu 0.6.0 joins an absolute sqlite:// path onto its working directory, so it runs inside
  # the state folder with a relative path.
  (cd "$STATE/kafka" && exec setsid tansu broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine "sqlite://tansu.db" \
    >"$STATE/logs/tansu.log" 2>&1 </dev/null) &
  echo $! >"$STATE/kafka/tansu.pid"
  wait_port "$KAFKA_PORT"
fi
for topic in tax.withholding.v1 tax.withholding.v1.dlq; do
  tansu topic create --broker "tcp://127.0.0.1:$KAFKA_PORT" --partitions 3 "$topic" >/dev/null 2>&1 || true
done
log "ready: postgres $PGHOST:$PGPORT, redis 127.0.0.1:$REDIS_PORT, kafka 127.0.0.1:$KAFKA_PORT"
