#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker in KRaft mode, run with java from jars fetched from Maven Central.
#   scripts/kafka.sh start   fetch the jars once, format the storage once, start the broker, wait until it
#                            accepts clients (a no-op when it already runs)
#   scripts/kafka.sh stop    stop the broker started here, by its pid, and nothing else
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_AUTO_CREATE_TOPICS (true),
# KAFKA_STATE_DIR (.kafka/broker-$KAFKA_PORT: data, server.log, pid), PYTHON (.venv/bin/python).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
state=${KAFKA_STATE_DIR:-$root/.kafka/broker-$port}
libs=$root/.kafka/libs
python=${PYTHON:-$root/.venv/bin/python}
pidfile=$state/broker.pid

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
    && grep -q kafka.Kafka "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null
}

fetch_jars() {
  [ -f "$libs/.complete" ] && return
  echo "Fetching the Kafka broker's jars from Maven Central into $libs"
  rm -rf "$libs"
  mvn -q -B -Dstyle.color=never -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs"
  touch "$libs/.complete"
}

write_config() {
  mkdir -p "$state"
  cat > "$state/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$state/data
num.partitions=3
auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-true}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true
group.initial.rebalance.delay.ms=0
EOF
}

java_opts=(-Xms256m -Xmx512m -Dkafka.logs.dir="$state"
  -Dlog4j2.configurationFile="$root/scripts/kafka/log4j2.properties" -cp "$libs/*")

wait_until_ready() {
  for _ in $(seq 1 120); do
    if ! running; then
      echo "Kafka broker exited during start-up; last lines of $state/server.log:" >&2
      tail -n 30 "$state/server.log" >&2 || true
      return 1
    fi
    if "$python" - "127.0.0.1:$port" <<'EOF' 2>/dev/null; then
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=1)
EOF
      echo "Kafka broker ready on 127.0.0.1:$port (pid $(cat "$pidfile"), logs in $state)"
      return 0
    fi
    sleep 0.5
  done
  echo "Kafka broker did not accept clients within 60 s; see $state/server.log" >&2
  return 1
}

start() {
  if running; then
    echo "Kafka broker already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
    return
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "Port $port is taken by another process; set KAFKA_PORT to a free port" >&2
    return 1
  fi
  fetch_jars
  write_config
  if [ ! -f "$state/data/meta.properties" ]; then
    java "${java_opts[@]}" kafka.tools.StorageTool format --ignore-formatted \
      -t "$(java "${java_opts[@]}" kafka.tools.StorageTool random-uuid)" -c "$state/server.properties" >/dev/null
  fi
  nohup java "${java_opts[@]}" kafka.Kafka "$state/server.properties" >"$state/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  wait_until_ready
}

stop() {
  if ! running; then
    echo "No Kafka broker of this project runs on 127.0.0.1:$port"
    rm -f "$pidfile"
    return
  fi
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$pidfile"
  echo "Kafka broker on 127.0.0.1:$port stopped (pid $pid)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  fetch-jars) fetch_jars ;;  # also used by scripts/kafka-cluster.sh
  *) echo "usage: $0 start|stop|fetch-jars" >&2; exit 2 ;;
esac
