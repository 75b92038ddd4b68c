#!/usr/bin/env bash
# Makes docker-compose's keys on this machine (git-ignored), before `docker compose up`:
#
#   deploy/docker/auth/issuer.key.pem, issuer.pub.pem   the token issuer (EC P-256); the gateway
#       mounts auth/ and trusts the public half; mint tokens with
#       `bankctl token --key deploy/docker/auth/issuer.key.pem --sub <customer id> --scope customer`
#   deploy/docker/generated/service-keys/   `bankctl credentials generate`: each caller's signing
#       key and trust.jwks.json (ops.key.pem is the operator's)
#   deploy/docker/generated/<service>.env   what each compose service reads (env_file):
#       SERVICE_KEY (its key) and SERVICE_TRUST (trust.jwks.json); bank.env gives each service
#       it hosts its own key under its prefix (CUSTOMER_SERVICE_KEY, …)
#
# Idempotent: keys already there are kept, the .env files are written again from them. Delete
# generated/service-keys (or auth/issuer.key.pem) to make new ones.
# BANKCTL: the bankctl command (default: cargo run -q -p bankctl -- in this repository).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
AUTH="$HERE/auth"
OUT="$HERE/generated"
KEYS="$OUT/service-keys"
# docker-compose.yml's services that call or are called, and those `bank` hosts.
SERVICES=(gateway customer account-info accounting interest tax-consumer legacy-core)
HOSTED=(customer account-info accounting interest tax-consumer)

bankctl() {
  if [ -n "${BANKCTL:-}" ]; then
    # A command, split on spaces (e.g. a path to the binary).
    # shellcheck disable=SC2086
    $BANKCTL "$@"
  else
    (cd "$ROOT" && cargo run -q -p bankctl -- "$@")
  fi
}

umask 077 # private keys readable by their owner only
mkdir -p "$AUTH" "$OUT"

if [ ! -s "$AUTH/issuer.key.pem" ]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$AUTH/issuer.key.pem.new"
  mv "$AUTH/issuer.key.pem.new" "$AUTH/issuer.key.pem"
  echo "[generate] new token issuer key: $AUTH/issuer.key.pem"
fi
openssl pkey -in "$AUTH/issuer.key.pem" -pubout -out "$AUTH/issuer.pub.pem.new"
# The gateway runs as nobody (65534) and reads the public half through the mount.
chmod 644 "$AUTH/issuer.pub.pem.new"
mv "$AUTH/issuer.pub.pem.new" "$AUTH/issuer.pub.pem"

complete=1
for svc in "${SERVICES[@]}"; do
  [ -s "$KEYS/$svc.key.pem" ] || complete=0
done
[ -s "$KEYS/trust.jwks.json" ] || complete=0
if [ "$complete" = 0 ]; then
  # All together or none: trust.jwks.json must list exactly the keys beside it.
  fresh="$(mktemp -d "$OUT/.service-keys.XXXXXX")"
  trap 'rm -rf "$fresh"' EXIT
  bankctl credentials generate --out "$fresh"
  for file in "${SERVICES[@]/%/.key.pem}" trust.jwks.json; do
    if [ ! -s "$fresh/$file" ]; then
      echo "[generate] bankctl credentials generate wrote no $file (in $fresh)" >&2
      exit 1
    fi
  done
  rm -rf "$KEYS"
  mv "$fresh" "$KEYS"
  trap - EXIT
  echo "[generate] new service keys: $KEYS"
fi

# Single-quoted values are taken literally and may span lines (docker compose's env_file syntax);
# neither a PEM nor a JWKS holds a single quote.
quoted() { printf "'%s'" "$(cat "$1")"; }
trust="SERVICE_TRUST=$(quoted "$KEYS/trust.jwks.json")"
for svc in "${SERVICES[@]}"; do
  printf '%s\n%s\n' "SERVICE_KEY=$(quoted "$KEYS/$svc.key.pem")" "$trust" >"$OUT/$svc.env.new"
  mv "$OUT/$svc.env.new" "$OUT/$svc.env"
done
{
  for svc in "${HOSTED[@]}"; do
    prefix="$(echo "$svc" | tr 'a-z-' 'A-Z_')"
    echo "${prefix}_SERVICE_KEY=$(quoted "$KEYS/$svc.key.pem")"
  done
  echo "$trust"
} >"$OUT/bank.env.new"
mv "$OUT/bank.env.new" "$OUT/bank.env"
echo "[generate] docker-compose's keys are in $AUTH and $OUT"
