#!/usr/bin/env bash
# A three-broker Apache Kafka 4.x KRaft cluster on this machine, from the same jars as scripts/kafka.sh.
# Each node is broker and controller; topics get replication factor 3 and min.insync.replicas=2, so
# the cluster keeps accepting acks=all writes with one node down.
#   scripts/kafka-cluster.sh start            format once, start the three nodes, wait until all serve
#   scripts/kafka-cluster.sh stop             stop the nodes started here, by their pids
#   scripts/kafka-cluster.sh kill-one N       SIGKILL node N (1..3), as a crash would
#   scripts/kafka-cluster.sh restart-one N    start node N again and wait until it serves
#   scripts/kafka-cluster.sh bootstrap        print the bootstrap.servers of the cluster
# Environment: KAFKA_CLUSTER_BASE_PORT (19301): node N listens on BASE+2(N-1), its controller on the next
# port; KAFKA_CLUSTER_STATE_DIR (.kafka/cluster-$BASE: node-N/{data,server.log,broker.pid});
# PYTHON (.venv/bin/python).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
base=${KAFKA_CLUSTER_BASE_PORT:-19301}
state=${KAFKA_CLUSTER_STATE_DIR:-$root/.kafka/cluster-$base}
libs=$root/.kafka/libs
python=${PYTHON:-$root/.venv/bin/python}
nodes=(1 2 3)

port() { echo $((base + 2 * ($1 - 1))); }
controller_port() { echo $(($(port "$1") + 1)); }
node_dir() { echo "$state/node-$1"; }
pidfile() { echo "$(node_dir "$1")/broker.pid"; }
bootstrap() { local n out=""; for n in "${nodes[@]}"; do out+="${out:+,}127.0.0.1:$(port "$n")"; done; echo "$out"; }

running() {
  local pidfile
  pidfile=$(pidfile "$1")
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
    && grep -q kafka.Kafka "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null
}

java_opts() {  # sets jvm: the java options of node $1
  jvm=(-Xms256m -Xmx512m -XX:+UseSerialGC -Dkafka.logs.dir="$(node_dir "$1")"
    -Dlog4j2.configurationFile="$root/scripts/kafka/log4j2.properties" -cp "$libs/*")
}

write_config() {
  local n=$1 voters="" v
  for v in "${nodes[@]}"; do voters+="${voters:+,}$v@127.0.0.1:$(controller_port "$v")"; done
  mkdir -p "$(node_dir "$n")"
  cat > "$(node_dir "$n")/server.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port "$n")
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$(node_dir "$n")/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=${KAFKA_AUTO_CREATE_TOPICS:-true}
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=3
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
EOF
}

serves() {  # whether node $1 answers a metadata request
  "$python" - "127.0.0.1:$(port "$1")" <<'EOF' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
metadata = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=1)
sys.exit(0 if len(metadata.brokers) >= 2 else 1)
EOF
}

wait_until_serves() {
  local n=$1
  for _ in $(seq 1 180); do
    if ! running "$n"; then
      echo "Kafka node $n exited during start-up; last lines of $(node_dir "$n")/server.log:" >&2
      tail -n 30 "$(node_dir "$n")/server.log" >&2 || true
      return 1
    fi
    serves "$n" && return 0
    sleep 0.5
  done
  echo "Kafka node $n did not serve within 90 s; see $(node_dir "$n")/server.log" >&2
  return 1
}

launch() {  # start node $1 in the background (storage already formatted)
  local n=$1 jvm
  java_opts "$n"
  nohup java "${jvm[@]}" kafka.Kafka "$(node_dir "$n")/server.properties" \
    >"$(node_dir "$n")/stdout.log" 2>&1 &
  echo $! > "$(pidfile "$n")"
}

start() {
  local n cluster_id="" jvm
  for n in "${nodes[@]}"; do
    if ! running "$n" && (exec 3<>"/dev/tcp/127.0.0.1/$(port "$n")") 2>/dev/null; then
      echo "Port $(port "$n") is taken by another process; set KAFKA_CLUSTER_BASE_PORT" >&2
      return 1
    fi
  done
  "$root/scripts/kafka.sh" fetch-jars
  for n in "${nodes[@]}"; do
    running "$n" && continue
    write_config "$n"
    if [ ! -f "$(node_dir "$n")/data/meta.properties" ]; then
      java_opts "$n"
      [ -n "$cluster_id" ] || cluster_id=$(cat "$state/cluster.id" 2>/dev/null \
        || java "${jvm[@]}" kafka.tools.StorageTool random-uuid | tee "$state/cluster.id")
      java "${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
        -c "$(node_dir "$n")/server.properties" >/dev/null
    fi
    launch "$n"
  done
  for n in "${nodes[@]}"; do wait_until_serves "$n"; done
  echo "Kafka cluster ready on $(bootstrap) (state in $state)"
}

stop_node() {
  local n=$1 pid
  running "$n" || { rm -f "$(pidfile "$n")"; return 0; }
  pid=$(cat "$(pidfile "$n")")
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$(pidfile "$n")"
  echo "Kafka node $n on 127.0.0.1:$(port "$n") stopped (pid $pid)"
}

node_arg() {
  case "${1:-}" in
    1 | 2 | 3) echo "$1" ;;
    *) echo "usage: $0 kill-one|restart-one 1|2|3" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  start) start ;;
  stop) for n in "${nodes[@]}"; do stop_node "$n"; done ;;
  kill-one)
    n=$(node_arg "${2:-}")
    running "$n" || { echo "Kafka node $n is not running" >&2; exit 1; }
    kill -9 "$(cat "$(pidfile "$n")")"
    echo "Kafka node $n on 127.0.0.1:$(port "$n") killed (pid $(cat "$(pidfile "$n")"))"
    ;;
  restart-one)
    n=$(node_arg "${2:-}")
    if ! running "$n"; then launch "$n"; fi
    wait_until_serves "$n"
    echo "Kafka node $n on 127.0.0.1:$(port "$n") serves (pid $(cat "$(pidfile "$n")"))"
    ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 start|stop|kill-one N|restart-one N|bootstrap" >&2; exit 2 ;;
esac
