#!/usr/bin/env bash
# Runs the full test suite: starts the infrastructure it needs (deploy/infra.sh), checks format
# and lints, builds the service binaries, then runs every test (unit, property, vectors, each
# service on its own, docker-compose contract, and the end-to-end suite against real PostgreSQL,
# Redis and Kafka), then the end-to-end suite again with the services in one process
# (TOPOLOGY=monolith, the `bank` binary) and with two replicas of each behind HAProxy
# (TOPOLOGY=replicated). Typed SQL's offline metadata is checked against the migrations first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

bash deploy/infra.sh
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
# The Apache Kafka jars deploy/infra.sh resolved (named the same way there): the end-to-end tests
# that kill a broker start brokers of their own from them (tests/src/lib.rs, Broker).
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/kafka/pom.xml)"
export KAFKA_LIBS="${KAFKA_HOME_DIR:-/var/cache/interest-bank/kafka-$KAFKA_VERSION}/libs"

# Schemathesis (PyPI, pinned) for the fuzz test, in a venv kept beside the build cache.
VENV="${SCHEMATHESIS_VENV:-${CARGO_TARGET_DIR:-$ROOT/target}/schemathesis-venv}"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "[test] installing schemathesis into $VENV"
  python3 -m venv "$VENV" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q "schemathesis==4.32.5"
fi
export SCHEMATHESIS="$VENV/bin/schemathesis"
# kubernetes-validate (PyPI, pinned) checks the rendered Kubernetes manifests (tests/tests/k8s.rs);
# a pinned kustomize renders them.
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  echo "[test] installing kubernetes-validate into $VENV"
  "$VENV/bin/pip" install -q "kubernetes-validate==1.37.0"
fi
export KUBERNETES_VALIDATE="$VENV/bin/kubernetes-validate"
# kustomize (sigs.k8s.io/kustomize/kustomize/v5 from the Go module proxy, pinned: v5.8.2 is the
# newest that builds with Go 1.26) is built once with the machine's Go into a cache outside the
# clone; KUSTOMIZE=<path> uses another one.
KUSTOMIZE_VERSION="v5.8.2"
if [ -z "${KUSTOMIZE:-}" ]; then
  KUSTOMIZE="/var/cache/interest-bank/bin/kustomize-$KUSTOMIZE_VERSION"
  if [ ! -x "$KUSTOMIZE" ]; then
    echo "[test] building kustomize $KUSTOMIZE_VERSION into $KUSTOMIZE (once, about a minute)"
    command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
    gobin="$(mktemp -d)"
    GOTOOLCHAIN=local GOBIN="$gobin" GOFLAGS=-buildvcs=false \
      go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
    mkdir -p "$(dirname "$KUSTOMIZE")" && mv "$gobin/kustomize" "$KUSTOMIZE" && rmdir "$gobin"
  fi
fi
export KUSTOMIZE

# The fault workload (tests/tests/chaos.rs) restarts this machine's PostgreSQL among its faults.
if [ -z "${CHAOS_POSTGRES_RESTART:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  export CHAOS_POSTGRES_RESTART="pg_ctlcluster $(ls /usr/lib/postgresql | sort -n | tail -1) main restart -m fast"
fi

# Databases left behind by an interrupted earlier run of the end-to-end suite.
for db in $(su postgres -c "psql -X -tA -c \"SELECT datname FROM pg_database WHERE datname LIKE 'e2e%' OR datname LIKE 'unit\\_%'\""); do
  su postgres -c "psql -X -q -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)'" || true
done

echo "[test] cargo fmt --check"
cargo fmt --all --check
echo "[test] cargo clippy"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
echo "[test] typed SQL: each service's .sqlx matches its queries and migrations"
bash deploy/sqlx.sh check
echo "[test] building the service binaries the end-to-end tests start"
cargo build --workspace --bins --locked -q
echo "[test] cargo test"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "${TEST_LOG:-/dev/null}"
echo "[test] the end-to-end suite against the one-process topology (TOPOLOGY=monolith)"
TOPOLOGY=monolith cargo test -p e2e --locked --no-fail-fast 2>&1 | tee -a "${TEST_LOG:-/dev/null}"
echo "[test] the end-to-end suite against two replicas of every service behind HAProxy (TOPOLOGY=replicated)"
TOPOLOGY=replicated cargo test -p e2e --locked --no-fail-fast 2>&1 | tee -a "${TEST_LOG:-/dev/null}"
