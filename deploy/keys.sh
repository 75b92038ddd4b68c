# Sourced by the generate.sh scripts (deploy/k8s/overlays/local, deploy/docker): a local token
# issuer's key pair and a set of service keys, each made once and kept (idempotent).
# BANKCTL: the bankctl command (default: cargo run -q -p bankctl -- in this repository).

KEYS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bankctl() {
  if [ -n "${BANKCTL:-}" ]; then
    # A command, split on spaces (e.g. a path to the binary, or `cargo run -q -p bankctl --`).
    # shellcheck disable=SC2086
    $BANKCTL "$@"
  else
    (cd "$KEYS_ROOT" && cargo run -q -p bankctl -- "$@")
  fi
}

# issuer_pair DIR: DIR/issuer.key.pem (EC P-256, made if missing) and its public half, always
# written again from it (mode 644: a container reads it through a mount).
issuer_pair() {
  local dir="$1"
  mkdir -p "$dir"
  if [ ! -s "$dir/issuer.key.pem" ]; then
    # Written beside, then moved: an interrupted run never leaves half a key to be kept.
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/issuer.key.pem.new"
    mv "$dir/issuer.key.pem.new" "$dir/issuer.key.pem"
    echo "[generate] new token issuer key: $dir/issuer.key.pem"
  fi
  openssl pkey -in "$dir/issuer.key.pem" -pubout -out "$dir/issuer.pub.pem.new"
  chmod 644 "$dir/issuer.pub.pem.new"
  mv "$dir/issuer.pub.pem.new" "$dir/issuer.pub.pem"
}

# service_keys DIR CALLER...: `bankctl credentials generate` into DIR unless it already holds a
# key for each CALLER and trust.jwks.json — all together or none, so the trust set lists exactly
# the keys beside it.
service_keys() {
  local dir="$1" caller file fresh complete=1
  shift
  for caller in "$@"; do
    [ -s "$dir/$caller.key.pem" ] || complete=0
  done
  [ -s "$dir/trust.jwks.json" ] || complete=0
  [ "$complete" = 1 ] && return 0
  mkdir -p "$(dirname "$dir")"
  fresh="$(mktemp -d "$(dirname "$dir")/.service-keys.XXXXXX")"
  bankctl credentials generate --out "$fresh"
  for file in "${@/%/.key.pem}" trust.jwks.json; do
    if [ ! -s "$fresh/$file" ]; then
      echo "[generate] bankctl credentials generate wrote no $file (in $fresh)" >&2
      rm -rf "$fresh"
      return 1
    fi
  done
  rm -rf "$dir"
  mv "$fresh" "$dir"
  echo "[generate] new service keys: $dir"
}
