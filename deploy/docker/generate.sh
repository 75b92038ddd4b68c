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
AUTH="$HERE/auth"
OUT="$HERE/generated"
KEYS="$OUT/service-keys"
# docker-compose.yml's services that call or are called, and those `bank` hosts.
SERVICES=(gateway customer account-info accounting interest tax-consumer legacy-core)
HOSTED=(customer account-info accounting interest tax-consumer)

# shellcheck source=../keys.sh
. "$HERE/../keys.sh"

umask 077 # private keys readable by their owner only
mkdir -p "$OUT"
issuer_pair "$AUTH"
service_keys "$KEYS" "${SERVICES[@]}"

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
