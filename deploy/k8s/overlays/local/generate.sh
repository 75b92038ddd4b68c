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

# shellcheck source=../../../keys.sh
. "$HERE/../../../keys.sh"

umask 077 # private keys readable by their owner only
mkdir -p "$OUT"
issuer_pair "$OUT"
service_keys "$KEYS" "${DEPLOYED[@]}"
echo "[generate] the local overlay's keys are in $OUT"
