#!/usr/bin/env bash
# Brings up the infrastructure on a bare Debian machine (run as root), idempotently: PostgreSQL 15
# with the five service databases, Redis, Apache Kafka (KRaft, one node, from Maven Central:
# deploy/kafka/pom.xml) with the topics, and HAProxy installed (not started: the replicated
# topology's balancers are started by deploy/up.sh and the end-to-end harness). Whatever is
# already installed or running is left as it is.
# Addresses and places can be overridden:
#   PGHOST PGPORT REDIS_PORT KAFKA_PORT (9092) KAFKA_CONTROLLER_PORT (9093) BANK_STATE_DIR
#   KAFKA_HOME_DIR (/var/cache/interest-bank/kafka-<version>: the jars, shared by every clone)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BANK_STATE_DIR:-$ROOT/.local}"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
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
wait_port() {  # port [seconds, default 60]
  for _ in $(seq 1 $(( ${2:-60} * 2 ))); do port_open "$1" && return 0; sleep 0.5; done
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

# ---- HAProxy (Debian's package): the load balancer of the replicated topology ----
# deploy/up.sh and the end-to-end harness start their own HAProxy processes with their own
# configuration (TOPOLOGY=replicated); the package's system service is not used.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || apt_install haproxy

# ---- Apache Kafka (KRaft, one node that is both broker and controller) ----
# Its jars come from Maven Central (deploy/kafka/pom.xml, versions pinned) into a folder outside
# the clone, so a fresh clone on the same machine (CI) reuses them; its data stays in
# $STATE/kafka/data across restarts and kill -9.
apt_install openjdk-17-jre-headless maven
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/deploy/kafka/pom.xml")"
KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-/var/cache/interest-bank/kafka-$KAFKA_VERSION}"
KAFKA_LIBS="$KAFKA_HOME_DIR/libs"
pom_sum="$(sha256sum "$ROOT/deploy/kafka/pom.xml" | cut -d' ' -f1)"
if [ "$(cat "$KAFKA_LIBS/.pom.sha256" 2>/dev/null)" != "$pom_sum" ]; then
  log "installing Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIBS (once)"
  t0="$(date +%s%N)"
  mkdir -p "$KAFKA_HOME_DIR"
  rm -rf "$KAFKA_LIBS.tmp"
  mvn -B -q -Dstyle.color=never -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS.tmp" >"$STATE/logs/kafka-install.log" 2>&1 \
    || { cat "$STATE/logs/kafka-install.log"; log "cannot resolve Apache Kafka $KAFKA_VERSION"; exit 1; }
  echo "$pom_sum" >"$KAFKA_LIBS.tmp/.pom.sha256"
  rm -rf "$KAFKA_LIBS"; mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
  log "Apache Kafka $KAFKA_VERSION installed in $(( ($(date +%s%N) - t0) / 1000000 )) ms ($(ls "$KAFKA_LIBS" | wc -l) jars)"
fi
kafka_tool() { java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$KAFKA_LIBS/*" "$@"; }
# KAFKA_BROKERS naming another broker (deploy/up.sh, deploy/test.sh and the tests use it): no local
# broker is started, and that broker's topics are its owners' (the services create missing ones).
# The jars above are still needed: the tests that kill a broker start their own from them.
if [ -n "${KAFKA_BROKERS:-}" ] && [ "$KAFKA_BROKERS" != "127.0.0.1:$KAFKA_PORT" ] && [ "$KAFKA_BROKERS" != "localhost:$KAFKA_PORT" ]; then
  log "KAFKA_BROKERS=$KAFKA_BROKERS: no local Kafka started"
else
  KAFKA_DIR="$STATE/kafka"
  KAFKA_PID="$KAFKA_DIR/kafka.pid"
  kafka_running() { [ -f "$KAFKA_PID" ] && grep -qa kafka.Kafka "/proc/$(cat "$KAFKA_PID")/cmdline" 2>/dev/null; }
  if ! port_open "$KAFKA_PORT" && ! kafka_running; then
    mkdir -p "$KAFKA_DIR/data" "$STATE/logs"
    cat >"$KAFKA_DIR/server.properties" <<PROPS
# Written by deploy/infra.sh at each start of the broker: edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted controller waits for the dead broker's session to expire before
# the broker may register again (9 s by default).
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
PROPS
    cat >"$KAFKA_DIR/log4j2.properties" <<PROPS
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $STATE/logs/kafka.log
appender.file.filePattern = $STATE/logs/kafka.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
# Start, stop and the controller's decisions at INFO; partition-level chatter stays at WARN.
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
logger.controller.name = kafka.server.ControllerServer
logger.controller.level = INFO
logger.quorum.name = org.apache.kafka.controller.QuorumController
logger.quorum.level = INFO
PROPS
    if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
      log "formatting the Kafka storage in $KAFKA_DIR/data"
      kafka_tool kafka.tools.StorageTool format --ignore-formatted \
        --cluster-id "$(kafka_tool kafka.tools.StorageTool random-uuid)" \
        --config "$KAFKA_DIR/server.properties" >/dev/null
    fi
    log "starting Apache Kafka $KAFKA_VERSION on $KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
    kafka_t0="$(date +%s%N)"
    ulimit -n 65536 2>/dev/null || true
    setsid java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$KAFKA_LIBS/*" \
      kafka.Kafka "$KAFKA_DIR/server.properties" >>"$STATE/logs/kafka.out" 2>&1 </dev/null &
    echo $! >"$KAFKA_PID"
  fi
  if [ -n "${kafka_t0:-}" ] || ! port_open "$KAFKA_PORT"; then
    # After an unclean stop the broker waits for its old registration to lapse (70 s seen) first.
    wait_port "$KAFKA_PORT" 180 || { log "Kafka did not start; see $STATE/logs/kafka.log and kafka.out"; exit 1; }
  fi
  # The port opens before the broker serves: it is ready when it answers a metadata request (the
  # admin client retries until then, bounded here).
  if ! topics="$(timeout 90 java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$KAFKA_LIBS/*" \
      org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list 2>"$STATE/logs/kafka-tools.err")"; then
    log "Kafka on $KAFKA_PORT does not answer metadata; see $STATE/logs/kafka.log and kafka-tools.err"; exit 1
  fi
  [ -n "${kafka_t0:-}" ] && log "Kafka ready in $(( ($(date +%s%N) - kafka_t0) / 1000000 )) ms"
  # The topics as deploy/k8s/strimzi/topics.yaml has them, with one replica on this one node.
  create_topic() { # name partitions retention.ms
    grep -qx "$1" <<<"$topics" && return 0
    log "creating topic $1"
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --create --if-not-exists \
      --topic "$1" --partitions "$2" --replication-factor 1 \
      --config "retention.ms=$3" --config cleanup.policy=delete --config min.insync.replicas=1 >/dev/null
  }
  create_topic tax.withholding.v1 6 1209600000
  create_topic tax.withholding.v1.dlq 1 7776000000
fi
log "ready: postgres $PGHOST:$PGPORT, redis 127.0.0.1:$REDIS_PORT, kafka ${KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT (Apache Kafka $KAFKA_VERSION)}"
