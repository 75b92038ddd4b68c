#!/usr/bin/env bash
# Stops what deploy/up.sh started: the five services (every replica, and HAProxy, with
# TOPOLOGY=replicated), and (unless --services-only) the broker and Redis it started. PostgreSQL is stopped with --all (it is a system service).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BANK_STATE_DIR:-$ROOT/.local}"
for f in "$STATE"/pids/*.pid; do
  [ -e "$f" ] || continue
  kill -TERM "$(cat "$f")" 2>/dev/null && echo "[down] stopped $(basename "$f" .pid)"
  rm -f "$f"
done
[ "${1:-}" = "--services-only" ] && exit 0
# Apache Kafka (deploy/infra.sh): a clean shutdown first, kill -9 if it is not gone after 30 s.
if [ -f "$STATE/kafka/kafka.pid" ]; then
  pid="$(cat "$STATE/kafka/kafka.pid")"
  # Only that pid if it is still the broker (not a pid reused since).
  if grep -qa kafka.Kafka "/proc/$pid/cmdline" 2>/dev/null && kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null; echo "[down] killed kafka (no clean stop in 30 s)"
    else echo "[down] stopped kafka"; fi
  fi
  rm -f "$STATE/kafka/kafka.pid"
fi
redis-cli -p "${REDIS_PORT:-6379}" shutdown nosave >/dev/null 2>&1 && echo "[down] stopped redis"
if [ "${1:-}" = "--all" ]; then
  ver="$(ls /usr/lib/postgresql | sort -n | tail -1)"; pg_ctlcluster "$ver" main stop && echo "[down] stopped postgresql"
fi
exit 0
