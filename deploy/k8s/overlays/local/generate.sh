#!/usr/bin/env bash
# Makes the local overlay's keys on this machine, into generated/ beside this script (git-ignored:
# a key in the repository is a key anyone can use). Run it before
# `kubectl apply -k deploy/k8s/overlays/local`; the overlay does not render without its files.
#
#   generated/issuer.key.pem   the token issuer's private key (EC P-256), stays here: mint tokens
#                              with `bankctl token --key <it> --sub <customer id> --scope customer`
#   generated/issuer.pub.pem   its public half, Secret interest-bank-auth
#   generated/service-keys/    `bankctl credentials generate`: each caller's signing key
#                              (<caller>.key.pem; the six Deployments' go into Secret
#                              interest-bank-service-keys, legacy-core's and ops' stay here) and
#                              trust.jwks.json (ConfigMap interest-bank-service-trust)
#
# Idempotent: what is already there is kept (the cluster keeps trusting it); delete generated/ (or
# one of its parts) to make new keys, then apply again and restart the Deployments.
# BANKCTL: the bankctl command (default: cargo run -q -p bankctl -- in this repository).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/generated"
KEYS="$OUT/service-keys"
# The callers whose keys the overlay puts in the cluster (kustomization.yaml's secretGenerator).
DEPLOYED=(gateway customer account-info accounting interest tax-consumer)

bankctl() {
  if [ -n "${BANKCTL:-}" ]; then
    # A command, split on spaces (e.g. a path to the binary, or `cargo run -q -p bankctl --`).
    # shellcheck disable=SC2086
    $BANKCTL "$@"
  else
    local root
    root="$(cd "$HERE/../../../.." && pwd)"
    (cd "$root" && cargo run -q -p bankctl -- "$@")
  fi
}

umask 077 # private keys readable by their owner only
mkdir -p "$OUT"

if [ ! -s "$OUT/issuer.key.pem" ]; then
  # Written beside, then moved: an interrupted run never leaves half a key to be kept.
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$OUT/issuer.key.pem.new"
  mv "$OUT/issuer.key.pem.new" "$OUT/issuer.key.pem"
  echo "[generate] new token issuer key: $OUT/issuer.key.pem"
fi
# Always the public half of the private key that is there.
openssl pkey -in "$OUT/issuer.key.pem" -pubout -out "$OUT/issuer.pub.pem.new"
mv "$OUT/issuer.pub.pem.new" "$OUT/issuer.pub.pem"

complete=1
for caller in "${DEPLOYED[@]}"; do
  [ -s "$KEYS/$caller.key.pem" ] || complete=0
done
[ -s "$KEYS/trust.jwks.json" ] || complete=0
if [ "$complete" = 0 ]; then
  # All together or none: trust.jwks.json must list exactly the keys beside it.
  fresh="$(mktemp -d "$OUT/.service-keys.XXXXXX")"
  trap 'rm -rf "$fresh"' EXIT
  bankctl credentials generate --out "$fresh"
  for file in "${DEPLOYED[@]/%/.key.pem}" trust.jwks.json; do
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
echo "[generate] the local overlay's keys are in $OUT"
