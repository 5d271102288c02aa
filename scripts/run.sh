#!/usr/bin/env bash
# The whole system on one machine: the Kafka broker, the X API simulator (or the real X API), and Airflow's
# scheduler, dag-processor and api-server with this repository's dags/, plugins/ and include/.
#   scripts/run.sh run     start everything, print how to use it, keep running until Ctrl-C, then stop
#   scripts/run.sh start   start everything and return (a no-op for what already runs)
#   scripts/run.sh stop    stop everything started here, by pid, and nothing else
#   scripts/run.sh tail    print the topic's records as they arrive, decoded (TAIL_FROM=beginning: all)
#   scripts/run.sh airflow ARGS...   the airflow CLI against this Airflow (e.g. backfill create, tasks clear)
# Environment: KAFKA_PORT (9092), X_SIM_PORT (8099), AIRFLOW_PORT (8080; the worker log server takes the
# next port), X_BEARER_TOKEN (set: twitter_default uses the real X API with it, no simulator),
# X_API_POOL_SLOTS (2), TOPIC (tweets-lambda1, for tail). State: .airflow/ (AIRFLOW_HOME; pids, ports
# and each component's output in .airflow/run/).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
home=$root/.airflow
state=$home/run
bin=$root/.venv/bin
components=(scheduler dag-processor api-server)
dag_id=tweets_to_kafka

# The ports of a running system win over the environment, so that stop and tail find what start started.
if [ -f "$state/ports" ]; then
  # shellcheck disable=SC1091
  source "$state/ports"
fi
kafka_port=${KAFKA_PORT:-9092}
sim_port=${X_SIM_PORT:-8099}
airflow_port=${AIRFLOW_PORT:-8080}
topic=${TOPIC:-tweets-lambda1}
url=http://127.0.0.1:$airflow_port

export AIRFLOW_HOME=$home
# SQLite lets one writer at a time: wait for the lock rather than fail (the default is 5 s).
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$home/airflow.db?timeout=60"
export PATH=$bin:$PATH
export PYTHONPATH=$root:$root/plugins
export AIRFLOW__CORE__DAGS_FOLDER=$root/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$root/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__TWEETS_TO_KAFKA__X_API_POOL=x_api  # created below; every stream's searches share it
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=8
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__TEST_CONNECTION=Enabled
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$url/execution/
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$airflow_port
export AIRFLOW__API__BASE_URL=$url
export AIRFLOW__API__WORKERS=1
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$((airflow_port + 1))
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=1
# Connections come from the database (editable in the UI), never from the caller's environment.
unset AIRFLOW_CONN_TWITTER_DEFAULT AIRFLOW_CONN_KAFKA_DEFAULT

alive() {  # alive NAME: the process recorded in NAME.pid runs and is still ours
  local pidfile=$state/$1.pid
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
    && grep -qaE "airflow|x_api_simulator|run\.sh" "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

launch() {  # launch NAME COMMAND...: in its own process group, output to NAME.log, pid to NAME.pid
  local name=$1
  shift
  if alive "$name"; then
    return
  fi
  setsid "$@" >"$state/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds, while every component runs
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq 1 "$seconds"); do
    "$@" >/dev/null 2>&1 && return 0
    for name in "${components[@]}" x-api-simulator; do
      if [ -f "$state/$name.pid" ] && ! alive "$name"; then
        echo "$name exited; last lines of $state/$name.log:" >&2
        tail -n 30 "$state/$name.log" >&2
        return 1
      fi
    done
    sleep 1
  done
  echo "Timed out after $seconds s waiting for $what" >&2
  return 1
}

healthy() {
  "$bin/python" - "$url" <<'EOF'
import json, sys, urllib.request
health = json.load(urllib.request.urlopen(sys.argv[1] + "/api/v2/monitor/health", timeout=5))
sys.exit(0 if health["scheduler"]["status"] == health["dag_processor"]["status"] == "healthy" else 1)
EOF
}

write_connections() {  # the connections file to import: the bearer token never goes on a command line
  local file=$state/connections.json
  (umask 077 && "$bin/python" - "$file" "$kafka_port" "$sim_port" <<'EOF'
import json, os, sys
path, kafka_port, sim_port = sys.argv[1:]
token = os.environ.get("X_BEARER_TOKEN")
twitter = {"conn_type": "twitter", "password": token} if token else {
    "conn_type": "twitter",
    "host": f"http://127.0.0.1:{sim_port}",
    "password": os.environ.get("X_SIM_BEARER_TOKEN", "sim-token"),
}
twitter["port"] = 0  # the UI's Test button sends port 0 for a connection without one (Airflow 3.3.2)
kafka = {
    "bootstrap.servers": f"127.0.0.1:{kafka_port}",
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 20,
    "message.timeout.ms": 60000,
}
connections = {
    "twitter_default": {**twitter, "description": "X API v2 (make run)"},
    "kafka_default": {"conn_type": "kafka", "extra": json.dumps(kafka), "description": "Kafka (make run)"},
}
with open(path, "w") as file:
    json.dump(connections, file)
EOF
  )
  echo "$file"
}

start() {
  mkdir -p "$state"
  if ! alive api-server; then
    for port in "$airflow_port" $((airflow_port + 1)); do
      if port_taken "$port"; then
        echo "Port $port is taken by another process; set AIRFLOW_PORT to a free port" >&2
        return 1
      fi
    done
  fi
  printf 'KAFKA_PORT=%s\nX_SIM_PORT=%s\nAIRFLOW_PORT=%s\n' "$kafka_port" "$sim_port" "$airflow_port" >"$state/ports"

  KAFKA_PORT=$kafka_port "$root/scripts/kafka.sh" start

  if [ -n "${X_BEARER_TOKEN:-}" ]; then
    echo "X_BEARER_TOKEN is set: twitter_default uses the real X API, no simulator"
  elif ! alive x-api-simulator; then
    if port_taken "$sim_port"; then
      echo "Port $sim_port is taken by another process; set X_SIM_PORT to a free port" >&2
      return 1
    fi
    (cd "$root" && launch x-api-simulator "$bin/python" -m x_api_simulator --port "$sim_port")
    echo "X API simulator started on 127.0.0.1:$sim_port (pid $(cat "$state/x-api-simulator.pid"))"
  fi

  echo "Preparing Airflow's database in $home"
  airflow db migrate >"$state/db-migrate.log" 2>&1 || { tail -n 30 "$state/db-migrate.log" >&2; return 1; }
  "$bin/python" -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')" \
    "$home/airflow.db"  # readers and the writer stop blocking each other
  connections=$(write_connections)
  airflow connections import --overwrite "$connections" >/dev/null
  rm -f "$connections"
  airflow pools set x_api "${X_API_POOL_SLOTS:-2}" "X API searches at once (fetch_tweets)" >/dev/null

  for component in "${components[@]}"; do
    (cd "$root" && launch "$component" airflow "$component")
  done
  echo "Airflow starting (${components[*]}); output in $state/"
  wait_for 240 "Airflow's scheduler and dag-processor to report healthy on $url" healthy
  wait_for 240 "the DAG $dag_id to be parsed" airflow dags unpause "$dag_id"

  password=$("$bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" \
    "$home/simple_auth_manager_passwords.json.generated")
  cat <<EOF

Running. The DAG $dag_id is unpaused: each minute gets a run, 30 s after it ends, from the current one on.
  Airflow UI   $url   user: admin   password: $password
               (the password is kept in .airflow/simple_auth_manager_passwords.json.generated)
  Kafka        127.0.0.1:$kafka_port   topic: $topic
  X API        $([ -n "${X_BEARER_TOKEN:-}" ] && echo "the real X API (X_BEARER_TOKEN)" || echo "simulator on http://127.0.0.1:$sim_port")
Watch records arrive:  make tail     Stop everything:  make stop (or Ctrl-C here)
EOF
}

stop() {
  if [ "${1:-}" != from-run ] && alive run; then  # make run is in the foreground: let it stop and exit
    pid=$(cat "$state/run.pid")
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  for name in "${components[@]}" x-api-simulator; do
    if alive "$name"; then
      pid=$(cat "$state/$name.pid")
      kill -TERM -- "-$pid" 2>/dev/null || true  # its process group: the component and its children
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "Stopped $name (pid $pid)"
    fi
    rm -f "$state/$name.pid"
  done
  KAFKA_PORT=$kafka_port "$root/scripts/kafka.sh" stop
  rm -f "$state/ports"
}

run() {
  mkdir -p "$state"
  echo $$ >"$state/run.pid"
  trap 'echo; echo "Stopping"; stop from-run; rm -f "$state/run.pid"; exit 0' INT TERM
  if ! start; then
    stop from-run
    rm -f "$state/run.pid"
    return 1
  fi
  while true; do
    for name in "${components[@]}"; do
      if ! alive "$name"; then
        echo "$name exited; last lines of $state/$name.log:" >&2
        tail -n 30 "$state/$name.log" >&2
        stop from-run
        rm -f "$state/run.pid"
        return 1
      fi
    done
    sleep 2
  done
}

tail_topic() {
  echo "Records of topic $topic on 127.0.0.1:$kafka_port as they arrive (Ctrl-C to stop)"
  exec "$bin/python" - "127.0.0.1:$kafka_port" "$topic" "${TAIL_FROM:-latest}" <<'EOF'
import sys, uuid
from confluent_kafka import Consumer

bootstrap, topic, start = sys.argv[1:]
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": f"make-tail-{uuid.uuid4()}",
    "auto.offset.reset": "earliest" if start == "beginning" else "latest",
    "enable.auto.commit": False,
})
consumer.subscribe([topic])
try:
    while True:
        message = consumer.poll(1)
        if message is None:
            continue
        if message.error():
            print(f"error: {message.error()}", file=sys.stderr)
            continue
        key = message.key().decode() if message.key() else None
        print(f"[{message.partition()}:{message.offset()}] {key} {message.value().decode()}", flush=True)
except KeyboardInterrupt:
    pass
finally:
    consumer.close()
EOF
}

case "${1:-}" in
  run) run ;;
  start) start ;;
  stop) stop ;;
  tail) tail_topic ;;
  airflow) shift; cd "$root" && exec airflow "$@" ;;
  *) echo "usage: $0 run|start|stop|tail|airflow ARGS..." >&2; exit 2 ;;
esac
