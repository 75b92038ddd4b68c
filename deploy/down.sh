#!/usr/bin/env bash
# Stops what deploy/up.sh started: the five services, and (unless --services-only) the broker and
# Redis it started. PostgreSQL is stopped with --all (it is a system service).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BANK_STATE_DIR:-$ROOT/.local}"
for f in "$STATE"/pids/*.pid; do
  [ -e "$f" ] || continue
  kill -TERM "$(cat "$f")" 2>/dev/null && echo "[down] stopped $(basename "$f" .pid)"
  rm -f "$f"
done
[ "${1:-}" = "--services-only" ] && exit 0
[ -f "$STATE/kafka/tansu.pid" ] && kill "$(cat "$STATE/kafka/tansu.pid")" 2>/dev/null && echo "[down] stopped tansu"
redis-cli -p "${REDIS_PORT:-6379}" shutdown nosave >/dev/null 2>&1 && echo "[down] stopped redis"
if [ "${1:-}" = "--all" ]; then
  ver="$(ls /usr/lib/postgresql | sort -n | tail -1)"; pg_ctlcluster "$ver" main stop && echo "[down] stopped postgresql"
fi
exit 0
