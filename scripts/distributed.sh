#!/usr/bin/env bash
# PostgreSQL and Redis for Airflow's CeleryExecutor, run from Debian's packages without Docker.
#   scripts/distributed.sh install  apt-get install what is missing: postgresql, redis-server, docker-compose
#   scripts/distributed.sh start    create the database cluster once, start PostgreSQL and Redis on 127.0.0.1,
#                                   wait until both answer (a no-op for a server that already runs)
#   scripts/distributed.sh stop     stop the servers started here, by their pids, and nothing else
# Environment: POSTGRES_PORT (5432), REDIS_PORT (6379), DISTRIBUTED_STATE_DIR (.distributed/pg-$POSTGRES_PORT-redis-
# $REDIS_PORT: data, logs, pids). Database "airflow", owned by role "airflow" with password "airflow" (local only).
# PostgreSQL refuses to run as root, so as root it runs as the "postgres" user that Debian's package creates.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pg_port=${POSTGRES_PORT:-5432}
redis_port=${REDIS_PORT:-6379}
state=${DISTRIBUTED_STATE_DIR:-$root/.distributed/pg-$pg_port-redis-$redis_port}
redis_pidfile=$state/redis.pid
pg_log=$state/postgres-log/postgres.log

install() {
  local missing=()
  pg_bin >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

# Run a command as the owner of the database cluster.
as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_data_dir() {
  echo "$state/postgres"
}

pg_running() {
  [ -f "$(pg_data_dir)/postmaster.pid" ] && as_pg_user "$(pg_bin)/pg_ctl" status -D "$(pg_data_dir)" >/dev/null 2>&1
}

redis_running() {
  [ -f "$redis_pidfile" ] && kill -0 "$(cat "$redis_pidfile")" 2>/dev/null \
    && grep -q redis-server "/proc/$(cat "$redis_pidfile")/cmdline" 2>/dev/null
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_postgres() {
  local bin data
  bin=$(pg_bin) || { echo "PostgreSQL is not installed; run: $0 install" >&2; return 1; }
  data=$(pg_data_dir)
  if pg_running; then
    echo "PostgreSQL already running on 127.0.0.1:$pg_port (data in $data)"
    return
  fi
  if port_taken "$pg_port"; then
    echo "Port $pg_port is taken by another process; set POSTGRES_PORT to a free port" >&2
    return 1
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data" "$(dirname "$pg_log")"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$data" "$(dirname "$pg_log")"; fi
    if ! as_pg_user test -w "$data"; then
      echo "The postgres user cannot write $data: a parent folder is not readable by others;" \
        "set DISTRIBUTED_STATE_DIR to a folder it can reach" >&2
      return 1
    fi
    as_pg_user "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  as_pg_user "$bin/pg_ctl" start -D "$data" -l "$pg_log" -w -t 60 \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$data' -c fsync=off" >/dev/null
  local psql=("$bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [ -z "$(as_pg_user "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = 'airflow'")" ]; then
    as_pg_user "${psql[@]}" -c "CREATE ROLE airflow LOGIN PASSWORD 'airflow'"
    as_pg_user "${psql[@]}" -c "CREATE DATABASE airflow OWNER airflow"
  fi
  echo "PostgreSQL ready on 127.0.0.1:$pg_port (data in $data, log $pg_log)"
}

start_redis() {
  if redis_running; then
    echo "Redis already running on 127.0.0.1:$redis_port (pid $(cat "$redis_pidfile"))"
    return
  fi
  command -v redis-server >/dev/null || { echo "redis-server is not installed; run: $0 install" >&2; return 1; }
  if port_taken "$redis_port"; then
    echo "Port $redis_port is taken by another process; set REDIS_PORT to a free port" >&2
    return 1
  fi
  mkdir -p "$state/redis"
  nohup redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$state/redis" --save "" --appendonly no \
    --daemonize no --logfile "$state/redis.log" >/dev/null 2>&1 &
  local pid=$!
  echo "$pid" > "$redis_pidfile"
  for _ in $(seq 1 60); do
    # Not redis_running: until nohup has exec'd redis-server, the pid's command line is this script's.
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "Redis exited during start-up; last lines of $state/redis.log:" >&2
      tail -n 20 "$state/redis.log" >&2 || true
      return 1
    fi
    if [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; then
      echo "Redis ready on 127.0.0.1:$redis_port (pid $(cat "$redis_pidfile"), log $state/redis.log)"
      return
    fi
    sleep 0.5
  done
  echo "Redis did not answer within 30 s; see $state/redis.log" >&2
  return 1
}

stop_postgres() {
  if ! pg_running; then
    echo "No PostgreSQL of this project runs from $(pg_data_dir)"
    return
  fi
  as_pg_user "$(pg_bin)/pg_ctl" stop -D "$(pg_data_dir)" -m fast -w -t 60 >/dev/null
  echo "PostgreSQL on 127.0.0.1:$pg_port stopped"
}

stop_redis() {
  if ! redis_running; then
    echo "No Redis of this project runs on 127.0.0.1:$redis_port"
    rm -f "$redis_pidfile"
    return
  fi
  local pid
  pid=$(cat "$redis_pidfile")
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$redis_pidfile"
  echo "Redis on 127.0.0.1:$redis_port stopped (pid $pid)"
}

case "${1:-}" in
  install) install ;;
  start)
    mkdir -p "$state"
    start_postgres
    start_redis
    ;;
  stop) stop_redis; stop_postgres ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
