#!/usr/bin/env bash
# Native backing services for AtomicSeats' full mode: PostgreSQL, Redis, Kafka (one
# KRaft broker+controller) and an SMTP sink, all on 127.0.0.1, all started from this
# checkout with their state under .run/$STACK/<service>/ (data, log, pid).
# Used by `make test`, `make up` and `make bench`, and by CI on a fresh Debian 12 machine:
# whatever is missing (postgresql, redis-server, the Kafka jars) is installed on first use
# and skipped afterwards.
#
#   scripts/services.sh start   [postgres|redis|kafka|smtp ...]  default: all four. Idempotent:
#                                                   a running service is left alone (just re-checked).
#   scripts/services.sh stop    [names ...]         default: all. SIGTERM (pg: fast shutdown),
#                                                   SIGKILL after $SERVICES_STOP_TIMEOUT seconds.
#   scripts/services.sh restart <name ...>          stop + start (Redis has no persistence, so a
#                                                   restarted Redis is always empty; Kafka keeps its log).
#   scripts/services.sh kill    <name ...>          SIGKILL the service and its child processes at
#                                                   once, as a crash would (fault tests); `start` brings
#                                                   it back (Postgres replays its WAL: crash recovery).
#   scripts/services.sh status  [names ...]         exit 0 if all named services run, 3 otherwise.
#   scripts/services.sh env                         `export X=...` lines for this stack:
#                                                   eval "$(scripts/services.sh env)"
#
# Knobs (environment):
#   STACK=dev|test|bench      state dir .run/$STACK and port block (dev +0, test +100, bench +200):
#                             Postgres 55432, Redis 56379, Kafka 59092 (controller 59093), SMTP 58025.
#                             Any other name needs STACK_PORT_OFFSET=<n>.
#   SERVICES_START_TIMEOUT    seconds to wait for a service to become ready (default 120)
#   SERVICES_STOP_TIMEOUT     seconds before SIGKILL on stop (default 30)
#   KAFKA_HEAP_OPTS           default "-Xms256m -Xmx512m"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
STACK=${STACK:-dev}
[[ $STACK =~ ^[A-Za-z0-9_-]+$ ]] || { echo "services.sh: bad STACK name '$STACK'" >&2; exit 2; }
case $STACK in
  dev) PORT_OFFSET=0 ;;
  test) PORT_OFFSET=100 ;;
  bench) PORT_OFFSET=200 ;;
  *)
    [[ ${STACK_PORT_OFFSET:-} =~ ^[0-9]+$ ]] || {
      echo "services.sh: unknown STACK '$STACK' (dev|test|bench); set STACK_PORT_OFFSET=<n> to use it" >&2
      exit 2
    }
    PORT_OFFSET=$STACK_PORT_OFFSET
    ;;
esac

PG_PORT=$((55432 + PORT_OFFSET))
REDIS_PORT=$((56379 + PORT_OFFSET))
KAFKA_PORT=$((59092 + PORT_OFFSET))
KAFKA_CONTROLLER_PORT=$((59093 + PORT_OFFSET))
SMTP_PORT=$((58025 + PORT_OFFSET))
HOST=127.0.0.1

RUN=$ROOT/.run/$STACK
CACHE=$ROOT/.cache
KAFKA_LIBS=$CACHE/kafka-libs
KAFKA_POM=$ROOT/scripts/kafka/pom.xml
KAFKA_LOG4J=$ROOT/scripts/kafka/log4j2.properties
VENV_PY=$ROOT/.venv/bin/python
START_TIMEOUT=${SERVICES_START_TIMEOUT:-120}
STOP_TIMEOUT=${SERVICES_STOP_TIMEOUT:-30}
ALL_SERVICES=(postgres redis kafka smtp)

DB_USER=atomicseats
DB_PASSWORD=atomicseats
DB_NAME=atomicseats

# ----------------------------------------------------------------------------- helpers

say() { printf '[services:%s] %s\n' "$STACK" "$*"; }
warn() { printf '[services:%s] %s\n' "$STACK" "$*" >&2; }
die() { warn "ERROR: $*"; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# true while something accepts TCP connections on 127.0.0.1:$1
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# true if $1 is a live (non-zombie) process
pid_alive() {
  local pid=$1 state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
  [[ -n $state && $state != Z ]]
}

# true if process $1's command line contains every one of the remaining strings
pid_cmdline_has() {
  local pid=$1 cmd s
  shift
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  for s in "$@"; do [[ $cmd == *"$s"* ]] || return 1; done
}

read_pidfile() {
  local f=$1 pid
  [[ -s $f ]] || return 1
  pid=$(head -n1 "$f" 2>/dev/null | tr -dc '0-9')
  [[ -n $pid ]] && echo "$pid"
}

# pid of the process listening on 127.0.0.1:$1, if ss can tell
pid_on_port() {
  command -v ss >/dev/null 2>&1 || return 1
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2
}

# find_pid <pidfile> <port> <is-ours-fn>: the pid of our running service, from its pid file,
# or else (pid file lost) from the process listening on its port if that one is ours, in
# which case the pid file is rewritten. Never returns a pid the check does not recognise.
find_pid() {
  local pidfile=$1 port=$2 check=$3 pid
  if pid=$(read_pidfile "$pidfile") && "$check" "$pid"; then
    echo "$pid"
    return 0
  fi
  pid=$(pid_on_port "$port") && [[ -n $pid ]] && "$check" "$pid" || return 1
  echo "$pid" >"$pidfile" 2>/dev/null || true
  echo "$pid"
}

# wait_for <timeout-seconds> <pid-or-empty> <command...>: poll the command every 0.2s.
# Returns 0 when it succeeds, 1 on timeout, 2 if the given process died meanwhile.
wait_for() {
  local timeout=$1 pid=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  while :; do
    if "$@"; then return 0; fi
    if [[ -n $pid ]] && ! pid_alive "$pid"; then
      "$@" && return 0
      return 2
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

svc_log() { echo "$RUN/$1/log"; }
svc_port() {
  case $1 in
    postgres) echo "$PG_PORT" ;; redis) echo "$REDIS_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;; smtp) echo "$SMTP_PORT" ;;
  esac
}

# Loud failure: the reason, then the last 40 lines of the service's log.
start_failed() {
  local name=$1 log
  shift
  log=$(svc_log "$name")
  warn "ERROR: $name failed to start: $*"
  if [[ -s $log ]]; then
    warn "----- last 40 lines of $log -----"
    tail -n 40 "$log" >&2 || true
    warn "----- end of $log -----"
  else
    warn "(no log at $log)"
  fi
  exit 1
}

# Stop process $2 (service $1): SIGTERM, then SIGKILL after STOP_TIMEOUT seconds.
terminate_pid() {
  local name=$1 pid=$2
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for "$STOP_TIMEOUT" "" eval "! pid_alive $pid"; then
    warn "$name (pid $pid) did not stop within ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 10 "" eval "! pid_alive $pid" || warn "$name (pid $pid) survived SIGKILL?"
  fi
}

# ----------------------------------------------------------------------------- installs

APT_UPDATED=0
apt_install() {
  is_root || die "need to install $* but not running as root: install it (apt-get install $*) and retry"
  command -v apt-get >/dev/null 2>&1 || die "need $* but apt-get is not available"
  say "installing $* (apt-get)"
  local policy_created=0 rc=0
  # Keep Debian's maintainer scripts from starting their own system-wide daemons
  # (we never use those: we start our own processes on our own ports).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_created=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "$@" 9>&- 8>&-; then
    if ((APT_UPDATED == 0)); then
      APT_UPDATED=1
      apt-get update -q -o DPkg::Lock::Timeout=300 9>&- 8>&- || rc=$?
      ((rc == 0)) && { apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "$@" 9>&- 8>&- || rc=$?; }
    else
      rc=1
    fi
  fi
  ((policy_created == 0)) || rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "apt-get install $* failed"
}

PGBIN=
find_pgbin() {
  local d
  PGBIN=
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    [[ -x $d/pg_ctl && -x $d/initdb && -x $d/postgres ]] && PGBIN=$d
  done
  [[ -n $PGBIN ]]
}

ensure_postgres_installed() {
  find_pgbin || { apt_install postgresql && find_pgbin; } || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
  [[ -x $PGBIN/psql && -x $PGBIN/pg_isready ]] || {
    apt_install "postgresql-client-$(basename "$(dirname "$PGBIN")")"
    [[ -x $PGBIN/psql && -x $PGBIN/pg_isready ]] || die "psql/pg_isready missing in $PGBIN"
  }
  if is_root && ! id -u postgres >/dev/null 2>&1; then
    say "creating system user postgres"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

ensure_redis_installed() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server redis-tools
  fi
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found after install"
}

ensure_java() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v java >/dev/null 2>&1 || die "java not found"
}

kafka_libs_ready() {
  local want
  want=$(sha256sum "$KAFKA_POM" | cut -c1-64)
  [[ -f $KAFKA_LIBS/.stamp && $(cat "$KAFKA_LIBS/.stamp") == "$want" ]] &&
    compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null
}

# Resolve the broker's jars into .cache/kafka-libs once per pom.xml checksum.
ensure_kafka_libs() {
  ensure_java
  kafka_libs_ready && return 0
  mkdir -p "$CACHE"
  exec 8>"$CACHE/kafka-libs.lock"
  flock -w 900 8 || die "timed out waiting for another Kafka jar download"
  if ! kafka_libs_ready; then
    command -v mvn >/dev/null 2>&1 || apt_install maven
    local tmp=$CACHE/kafka-libs.tmp.$$ mvnlog=$CACHE/kafka-libs.mvn.log t0=$SECONDS
    say "resolving Kafka jars from $KAFKA_POM into $KAFKA_LIBS (once; maven log: $mvnlog)"
    rm -rf "$tmp"
    if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$mvnlog" 2>&1 9>&- 8>&-; then
      tail -n 40 "$mvnlog" >&2 || true
      rm -rf "$tmp"
      die "maven could not resolve the Kafka jars (see $mvnlog)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "maven ran but no kafka_2.13 jar in $tmp"
    sha256sum "$KAFKA_POM" | cut -c1-64 >"$tmp/.stamp"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    say "Kafka jars ready: $(ls "$KAFKA_LIBS"/*.jar | wc -l) jars in $((SECONDS - t0))s"
  fi
  flock -u 8
  exec 8>&-
}

ensure_smtp_python() {
  [[ -x $VENV_PY ]] || die "SMTP sink needs the project virtualenv, but $VENV_PY does not exist.
  Create it first:  python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   (needs aiosmtpd)"
  "$VENV_PY" -c 'import aiosmtpd' 2>/dev/null ||
    die "aiosmtpd is not installed in $ROOT/.venv: .venv/bin/pip install aiosmtpd (or -r requirements.txt)"
}

ensure_installed() {
  case $1 in
    postgres) ensure_postgres_installed ;;
    redis) ensure_redis_installed ;;
    kafka) ensure_kafka_libs ;;
    smtp) ensure_smtp_python ;;
  esac
}

# ----------------------------------------------------------------------------- postgres

# The postgres state dir must be reachable by the `postgres` user (initdb and the server
# refuse to run as root). If the checkout lives somewhere it cannot traverse (e.g. under
# /root), keep the real dir under /var/lib/atomicseats and symlink .run/$STACK/postgres to it.
PG_DIR=
pg_paths() {
  local link=$RUN/postgres
  if is_root && [[ ! -e $link ]]; then
    mkdir -p "$link"
    chown postgres:postgres "$link"
    chmod 700 "$link"
    if ! (cd / && runuser -u postgres -- test -w "$link/."); then
      local real
      real=/var/lib/atomicseats/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/$STACK/postgres
      warn "postgres cannot reach $link; keeping its data in $real (symlinked)"
      mkdir -p "$real"
      chown postgres:postgres "$real"
      chmod 700 "$real"
      rmdir "$link"
      ln -s "$real" "$link"
    fi
  fi
  mkdir -p "$link"
  PG_DIR=$(readlink -f "$link")
  PGDATA=$PG_DIR/data
  PG_LOG=$PG_DIR/log
  PG_PIDFILE=$PG_DIR/pid
  PG_SOCKDIR=$PG_DIR
  # unix socket paths are limited to 107 bytes
  if ((${#PG_SOCKDIR} + 16 > 100)); then
    PG_SOCKDIR=/tmp/.atomicseats-pg-$STACK-$PG_PORT
  fi
}

as_pg() {
  if is_root; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

postgres_pid() {
  local pid
  pid=$(read_pidfile "$PGDATA/postmaster.pid") || return 1
  pid_alive "$pid" && pid_cmdline_has "$pid" "postgres" "$PGDATA" && echo "$pid"
}

pg_ready() { "$PGBIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -d postgres -U postgres -t 2 9>&-; }

pg_login_ok() {
  PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=3 "$PGBIN/psql" -X -q -A -t -w -h "$HOST" -p "$PG_PORT" \
    -U "$DB_USER" -d "$DB_NAME" -c 'select 1' >/dev/null 2>&1 9>&-
}

pg_write_conf() {
  local conf=$PGDATA/atomicseats.conf
  {
    echo "# Written by scripts/services.sh on every start (STACK=$STACK). Do not edit."
    echo "listen_addresses = '$HOST'"
    echo "port = $PG_PORT"
    echo "unix_socket_directories = '$PG_SOCKDIR'"
    echo "unix_socket_permissions = 0700"
    echo "max_connections = 200"
    echo "shared_buffers = 128MB"
    echo "password_encryption = 'scram-sha-256'"
    echo "timezone = 'UTC'"
    echo "log_timezone = 'UTC'"
    echo "log_line_prefix = '%m [%p] %q%u@%d '"
    echo "log_min_messages = warning"
    echo "log_checkpoints = off"
    # test, e2e, ...: throwaway data, so trade durability for speed. dev and bench keep production's
    # settings: the benchmark's figures include every commit's fsync. Commits stay synchronous:
    # with fsync off that is one write() to the page cache, and it means a killed server (the e2e
    # fault tests SIGKILL it) forgets no commit; only a crash of the machine could.
    if [[ $STACK != dev && $STACK != bench ]]; then
      echo "# $STACK stack: throwaway data, so trade durability for speed. Never for dev/bench/prod."
      echo "fsync = off"
      echo "full_page_writes = off"
    fi
  } >"$conf"
  is_root && chown postgres:postgres "$conf"
  return 0
}

start_postgres() {
  ensure_postgres_installed
  pg_paths
  local pid
  if pid=$(postgres_pid); then
    echo "$pid" >"$PG_PIDFILE"
    wait_for "$START_TIMEOUT" "$pid" pg_ready || start_failed postgres "running (pid $pid) but not accepting connections on $HOST:$PG_PORT"
    pg_provision
    say "postgres already running (pid $pid) on $HOST:$PG_PORT"
    return 0
  fi
  rm -f "$PG_PIDFILE"
  if port_open "$PG_PORT"; then
    start_failed postgres "port $HOST:$PG_PORT is already in use by another process (pid $(pid_on_port "$PG_PORT" || echo '?')): another checkout's stack?"
  fi

  if [[ ! -s $PGDATA/PG_VERSION ]]; then
    # absent or a half-finished initdb: start from scratch
    rm -rf "$PGDATA"
    say "initdb $PGDATA"
    local initdb_opts=(-D "$PGDATA" -U postgres --encoding=UTF8 --locale=C
      --auth-local=trust --auth-host=scram-sha-256)
    [[ $STACK == dev ]] || initdb_opts+=(--no-sync)
    if ! as_pg "$PGBIN/initdb" "${initdb_opts[@]}" >>"$PG_LOG" 2>&1 9>&-; then
      rm -rf "$PGDATA"
      start_failed postgres "initdb failed"
    fi
    echo "include_if_exists = 'atomicseats.conf'" >>"$PGDATA/postgresql.conf"
  fi
  grep -q "^include_if_exists = 'atomicseats.conf'" "$PGDATA/postgresql.conf" ||
    echo "include_if_exists = 'atomicseats.conf'" >>"$PGDATA/postgresql.conf"
  pg_write_conf
  if [[ $PG_SOCKDIR != "$PG_DIR" ]]; then
    mkdir -p "$PG_SOCKDIR"
    is_root && chown postgres:postgres "$PG_SOCKDIR"
    chmod 700 "$PG_SOCKDIR"
  fi
  # No postmaster of ours runs and nothing listens on the port: a postmaster.pid or socket
  # lock file left behind by a killed server is stale (postgres itself would trust a pid
  # that now belongs to another process, or to a not yet reaped zombie, and refuse to start).
  rm -f "$PGDATA/postmaster.pid" "$PG_SOCKDIR/.s.PGSQL.$PG_PORT" "$PG_SOCKDIR/.s.PGSQL.$PG_PORT.lock"
  touch "$PG_LOG"
  is_root && chown postgres:postgres "$PG_LOG"

  say "starting postgres on $HOST:$PG_PORT"
  if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t "$START_TIMEOUT" -s start 9>&- 8>&- >>"$PG_LOG" 2>&1; then
    start_failed postgres "pg_ctl start failed"
  fi
  pid=$(postgres_pid) || start_failed postgres "pg_ctl returned but no postmaster is running"
  echo "$pid" >"$PG_PIDFILE"
  wait_for "$START_TIMEOUT" "$pid" pg_ready || start_failed postgres "not ready on $HOST:$PG_PORT"
  pg_provision
  say "postgres ready (pid $pid) on $HOST:$PG_PORT"
}

# Role and database, idempotently. The role is a SUPERUSER on the test and bench stacks
# so that tests can create and drop their own per-test databases (and extensions); on the
# dev stack it is an ordinary role that may create databases and owns its own.
pg_provision() {
  local attrs="LOGIN CREATEDB NOSUPERUSER"
  [[ $STACK == dev ]] || attrs="LOGIN SUPERUSER"
  if ! as_pg "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$PG_PORT" -U postgres -d postgres \
    >>"$PG_LOG" 2>&1 9>&- <<SQL; then
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER $attrs PASSWORD '$DB_PASSWORD';
  ELSE
    ALTER ROLE $DB_USER $attrs PASSWORD '$DB_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME')\gexec
SQL
    start_failed postgres "could not create role/database $DB_USER/$DB_NAME"
  fi
  pg_login_ok || start_failed postgres "cannot log in as $DB_USER over TCP on $HOST:$PG_PORT"
}

stop_postgres() {
  [[ -e $RUN/postgres ]] || { say "postgres not running"; return 0; }
  find_pgbin || { say "postgres not running (not installed)"; return 0; }
  pg_paths
  local pid
  if ! pid=$(postgres_pid); then
    rm -f "$PG_PIDFILE"
    say "postgres not running"
    return 0
  fi
  say "stopping postgres (pid $pid)"
  if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t "$STOP_TIMEOUT" -s stop >>"$PG_LOG" 2>&1 9>&-; then
    warn "postgres did not stop within ${STOP_TIMEOUT}s: SIGKILL"
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 10 "" eval "! pid_alive $pid" || true
  fi
  rm -f "$PG_PIDFILE"
}

status_postgres() {
  find_pgbin 2>/dev/null && [[ -e $RUN/postgres ]] || return 1
  pg_paths
  postgres_pid
}

# ----------------------------------------------------------------------------- redis

# ours: a redis-server on our port whose working directory is our --dir
redis_is_ours() {
  pid_alive "$1" && pid_cmdline_has "$1" "redis-server" ":$REDIS_PORT" &&
    [[ $(readlink "/proc/$1/cwd" 2>/dev/null) == "$RUN/redis/data" ]]
}

redis_pid() { find_pid "$RUN/redis/pid" "$REDIS_PORT" redis_is_ours; }

redis_ping() { [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null 9>&-) == PONG ]]; }

start_redis() {
  ensure_redis_installed
  local dir=$RUN/redis pid log=$RUN/redis/log
  mkdir -p "$dir/data"
  if pid=$(redis_pid); then
    wait_for "$START_TIMEOUT" "$pid" redis_ping || start_failed redis "running (pid $pid) but no PONG on $HOST:$REDIS_PORT"
    say "redis already running (pid $pid) on $HOST:$REDIS_PORT"
    return 0
  fi
  rm -f "$dir/pid"
  if port_open "$REDIS_PORT"; then
    start_failed redis "port $HOST:$REDIS_PORT is already in use by another process (pid $(pid_on_port "$REDIS_PORT" || echo '?'))"
  fi
  say "starting redis on $HOST:$REDIS_PORT"
  # No persistence at all (DESIGN: Redis only holds caches/mirrors that can be rebuilt).
  if ! redis-server --port "$REDIS_PORT" --bind "$HOST" --protected-mode yes \
    --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/pid" --logfile "$log" --dir "$dir/data" \
    --loglevel notice --databases 16 </dev/null >>"$log" 2>&1 9>&- 8>&-; then
    start_failed redis "redis-server refused to start"
  fi
  wait_for 10 "" test -s "$dir/pid" || start_failed redis "no pid file $dir/pid"
  pid=$(read_pidfile "$dir/pid") || start_failed redis "unreadable pid file"
  wait_for "$START_TIMEOUT" "$pid" redis_ping || start_failed redis "no PONG on $HOST:$REDIS_PORT"
  say "redis ready (pid $pid) on $HOST:$REDIS_PORT"
}

stop_redis() {
  local pid
  if ! pid=$(redis_pid); then
    rm -f "$RUN/redis/pid"
    say "redis not running"
    return 0
  fi
  say "stopping redis (pid $pid)"
  terminate_pid redis "$pid"
  rm -f "$RUN/redis/pid"
}

status_redis() { redis_pid; }

# ----------------------------------------------------------------------------- kafka

KAFKA_DIR=$RUN/kafka
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_DATA=$KAFKA_DIR/data

kafka_is_ours() { pid_alive "$1" && pid_cmdline_has "$1" "kafka.Kafka" "$KAFKA_PROPS"; }
kafka_pid() { find_pid "$KAFKA_DIR/pid" "$KAFKA_PORT" kafka_is_ours; }

kafka_write_props() {
  cat >"$KAFKA_PROPS" <<EOF
# Written by scripts/services.sh on every start (STACK=$STACK). Do not edit.
# Single KRaft node in combined mode: broker and controller in one process.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
# After a SIGKILL the restarted node cannot re-register its broker until the old
# registration's session expires (default 9s): keep that short on a single local node.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2500
num.network.threads=3
num.io.threads=4
log.retention.hours=168
EOF
}

# Python with confluent_kafka (the project venv), or nothing.
kafka_python() {
  [[ -x $VENV_PY ]] && "$VENV_PY" -c 'import confluent_kafka' 2>/dev/null && echo "$VENV_PY"
}

# Wait (up to $1 s) until the broker serves metadata, then create our topics and wait
# until every partition has a leader.
kafka_ready_python() {
  local py=$1 timeout=$2
  "$py" - "$HOST:$KAFKA_PORT" "$timeout" <<'PY' 9>&-
import sys, time
from confluent_kafka import KafkaException, KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

brokers, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
# log_level 2: keep librdkafka's connection-refused chatter out of our output
admin = AdminClient({"bootstrap.servers": brokers, "log_level": 2})
topics = {"booking-requests": 6, "booking-events": 3}

def md():
    return admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))

while True:
    try:
        if md().brokers:
            break
    except KafkaException:
        pass
    if time.monotonic() > deadline:
        sys.exit("broker does not answer metadata requests")
    time.sleep(0.2)

futs = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()],
                           operation_timeout=30, request_timeout=30)
for name, fut in futs.items():
    try:
        fut.result()
        print(f"created topic {name} ({topics[name]} partitions)")
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            sys.exit(f"cannot create topic {name}: {exc}")

# Make the group coordinator load now (first start: creates __consumer_offsets), so the
# first consumer of a test does not pay for it.
while True:
    try:
        fut = admin.describe_consumer_groups(["atomicseats-services-warmup"], request_timeout=10)
        fut["atomicseats-services-warmup"].result()
        break
    except KafkaException:
        if time.monotonic() > deadline:
            sys.exit("group coordinator not available")
        time.sleep(0.2)

# Make the broker allocate its first producer-id block now: until then an idempotent
# producer (acks=all, as the API uses) gets COORDINATOR_LOAD_IN_PROGRESS and retries for ~1s.
import logging, threading
from confluent_kafka import Producer
assigned = threading.Event()
class _PidWatch(logging.Handler):
    def emit(self, record):
        if "-> Assigned" in record.getMessage():
            assigned.set()
_log = logging.getLogger("services.kafka.warmup")
_log.addHandler(_PidWatch())
_log.setLevel(logging.DEBUG)
_log.propagate = False
producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "debug": "eos",
                     "logger": _log, "log_level": 7})
while not assigned.is_set():
    producer.poll(0.05)
    if time.monotonic() > deadline:
        sys.exit("idempotent producer could not get a producer id")
del producer

while True:
    m = md()
    ok = all(t in m.topics and m.topics[t].error is None and m.topics[t].partitions
             and all(p.leader >= 0 for p in m.topics[t].partitions.values()) for t in topics)
    if ok:
        break
    if time.monotonic() > deadline:
        sys.exit("topics have no leaders yet")
    time.sleep(0.2)
PY
}

start_kafka() {
  ensure_kafka_libs
  local pid log=$KAFKA_DIR/log offset py
  mkdir -p "$KAFKA_DIR"
  touch "$log"
  if pid=$(kafka_pid); then
    wait_for "$START_TIMEOUT" "$pid" port_open "$KAFKA_PORT" || start_failed kafka "running (pid $pid) but port $KAFKA_PORT closed"
    if py=$(kafka_python); then
      kafka_ready_python "$py" "$START_TIMEOUT" || start_failed kafka "running (pid $pid) but not ready"
    fi
    say "kafka already running (pid $pid) on $HOST:$KAFKA_PORT"
    return 0
  fi
  rm -f "$KAFKA_DIR/pid"
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$p"; then
      start_failed kafka "port $HOST:$p is already in use by another process (pid $(pid_on_port "$p" || echo '?'))"
    fi
  done
  kafka_write_props

  # shellcheck disable=SC2206  # KAFKA_HEAP_OPTS is a list of JVM flags: split on purpose
  local java_opts=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -XX:-UsePerfData -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dkafka.log.file="$log" -Dkafka.logs.dir="$KAFKA_DIR")

  if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
    # never formatted, or a format that did not finish: start from an empty log dir
    rm -rf "$KAFKA_DATA"
    mkdir -p "$KAFKA_DATA"
    local cluster_id
    cluster_id=$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"): print(s); break')
    say "formatting Kafka storage (cluster id $cluster_id)"
    if ! java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$KAFKA_PROPS" </dev/null >>"$log" 2>&1 9>&- 8>&-; then
      rm -rf "$KAFKA_DATA"
      start_failed kafka "kafka-storage format failed"
    fi
  fi

  say "starting kafka on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  # shellcheck disable=SC2034  # read by the eval'd log check below
  offset=$(stat -c %s "$log")
  setsid java "${java_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >>"$log" 2>&1 9>&- 8>&- &
  pid=$!
  echo "$pid" >"$KAFKA_DIR/pid"

  local rc=0
  wait_for "$START_TIMEOUT" "$pid" port_open "$KAFKA_PORT" || rc=$?
  ((rc == 0)) || start_failed kafka "$([[ $rc == 2 ]] && echo "process $pid exited" || echo "port $KAFKA_PORT not open after ${START_TIMEOUT}s")"
  if py=$(kafka_python); then
    kafka_ready_python "$py" "$START_TIMEOUT" || start_failed kafka "broker not ready (python check)"
  else
    warn "confluent_kafka not importable from $VENV_PY: readiness from the log only, topics not pre-created"
    rc=0
    wait_for "$START_TIMEOUT" "$pid" eval 'tail -c +$((offset + 1)) "$log" | grep -q "Kafka Server started"' || rc=$?
    ((rc == 0)) || start_failed kafka "no 'Kafka Server started' in the log"
  fi
  pid_alive "$pid" || start_failed kafka "process $pid exited"
  say "kafka ready (pid $pid) on $HOST:$KAFKA_PORT"
}

stop_kafka() {
  local pid
  if ! pid=$(kafka_pid); then
    rm -f "$KAFKA_DIR/pid"
    say "kafka not running"
    return 0
  fi
  say "stopping kafka (pid $pid)"
  terminate_pid kafka "$pid"
  rm -f "$KAFKA_DIR/pid"
}

status_kafka() { kafka_pid; }

# ----------------------------------------------------------------------------- smtp sink

SMTP_DIR=$RUN/smtp
SMTP_MESSAGES=$SMTP_DIR/messages

smtp_is_ours() { pid_alive "$1" && pid_cmdline_has "$1" "smtp_sink.py" "--port $SMTP_PORT" "$SMTP_MESSAGES"; }
smtp_pid() { find_pid "$SMTP_DIR/pid" "$SMTP_PORT" smtp_is_ours; }

# the sink answers with a 220 greeting
smtp_banner() {
  (
    exec 3<>"/dev/tcp/$HOST/$SMTP_PORT" || exit 1
    line=''
    read -r -t 3 line <&3 || exit 1
    printf 'QUIT\r\n' >&3 || true
    [[ $line == 220* ]]
  ) 2>/dev/null
}

start_smtp() {
  ensure_smtp_python
  local pid log=$SMTP_DIR/log
  mkdir -p "$SMTP_MESSAGES"
  if pid=$(smtp_pid); then
    wait_for "$START_TIMEOUT" "$pid" smtp_banner || start_failed smtp "running (pid $pid) but no SMTP greeting on $HOST:$SMTP_PORT"
    say "smtp sink already running (pid $pid) on $HOST:$SMTP_PORT"
    return 0
  fi
  rm -f "$SMTP_DIR/pid"
  if port_open "$SMTP_PORT"; then
    start_failed smtp "port $HOST:$SMTP_PORT is already in use by another process (pid $(pid_on_port "$SMTP_PORT" || echo '?'))"
  fi
  say "starting smtp sink on $HOST:$SMTP_PORT (messages in $SMTP_MESSAGES)"
  setsid "$VENV_PY" -u "$ROOT/scripts/smtp_sink.py" --host "$HOST" --port "$SMTP_PORT" --dir "$SMTP_MESSAGES" \
    </dev/null >>"$log" 2>&1 9>&- 8>&- &
  pid=$!
  echo "$pid" >"$SMTP_DIR/pid"
  local rc=0
  wait_for "$START_TIMEOUT" "$pid" smtp_banner || rc=$?
  ((rc == 0)) || start_failed smtp "$([[ $rc == 2 ]] && echo "process $pid exited" || echo "no SMTP greeting on $HOST:$SMTP_PORT")"
  say "smtp sink ready (pid $pid) on $HOST:$SMTP_PORT"
}

stop_smtp() {
  local pid
  if ! pid=$(smtp_pid); then
    rm -f "$SMTP_DIR/pid"
    say "smtp sink not running"
    return 0
  fi
  say "stopping smtp sink (pid $pid)"
  terminate_pid smtp "$pid"
  rm -f "$SMTP_DIR/pid"
}

status_smtp() { smtp_pid; }

# ----------------------------------------------------------------------------- commands

parse_names() {
  local n
  NAMES=()
  if (($# == 0)); then
    NAMES=("${ALL_SERVICES[@]}")
    return
  fi
  for n in "$@"; do
    case $n in
      postgres | redis | kafka | smtp) [[ " ${NAMES[*]-} " == *" $n "* ]] || NAMES+=("$n") ;;
      all) NAMES=("${ALL_SERVICES[@]}") ;;
      *) die "unknown service '$n' (postgres|redis|kafka|smtp)" ;;
    esac
  done
}

lock_stack() {
  mkdir -p "$RUN"
  chmod 755 "$ROOT/.run" "$RUN" 2>/dev/null || true
  exec 9>"$RUN/.lock"
  flock -w 600 9 || die "another services.sh is busy with STACK=$STACK for 10 minutes"
}

# Run "<verb>_<name>" for every name in parallel; print each one's output in order.
run_parallel() {
  local verb=$1 n rc=0 tmp
  shift
  tmp=$(mktemp -d)
  local -A pids=()
  for n in "$@"; do
    ("${verb}_$n") >"$tmp/$n.out" 2>&1 &
    pids[$n]=$!
  done
  for n in "$@"; do
    if ! wait "${pids[$n]}"; then rc=1; fi
    cat "$tmp/$n.out"
  done
  rm -rf "$tmp"
  return $rc
}

# Our ports (55432-59393 across the dev/test/e2e/bench stacks) lie inside Linux's ephemeral range
# (32768-60999): an outgoing connection can take one, and its TIME_WAIT then stops Kafka or
# Postgres from binding it on the next start. Reserve them for listeners (best-effort: in a
# container without the right to change it, starting still works as before).
RESERVED_PORTS=55400-59499
reserve_ports() {
  local file=/proc/sys/net/ipv4/ip_local_reserved_ports current
  [[ -w $file ]] || return 0
  current=$(cat "$file")
  [[ ,$current, == *",$RESERVED_PORTS,"* ]] && return 0
  echo "${current:+$current,}$RESERVED_PORTS" >"$file" 2>/dev/null || true
}

cmd_start() {
  reserve_ports
  parse_names "$@"
  lock_stack
  local t0=$SECONDS n
  # Installs first, one at a time (apt/dpkg cannot run twice at once), then start in parallel.
  for n in "${NAMES[@]}"; do ensure_installed "$n"; done
  if ! run_parallel start "${NAMES[@]}"; then
    die "start failed (STACK=$STACK); see the messages above. Logs: $RUN/<service>/log"
  fi
  say "started ${NAMES[*]} in $((SECONDS - t0))s"
}

cmd_stop() {
  parse_names "$@"
  lock_stack
  run_parallel stop "${NAMES[@]}"
}

cmd_restart() {
  (($# > 0)) || die "usage: services.sh restart <postgres|redis|kafka|smtp> ..."
  parse_names "$@"
  local names=("${NAMES[@]}")
  lock_stack
  run_parallel stop "${names[@]}"
  for n in "${names[@]}"; do ensure_installed "$n"; done
  run_parallel start "${names[@]}" || die "restart failed (STACK=$STACK); logs: $RUN/<service>/log"
}

# SIGKILL a running service and its children (Postgres: the postmaster and every backend)
# in one kill(1), so none of them gets to shut anything down cleanly.
kill_service() {
  local name=$1 pid children
  if ! pid=$("status_$name" 2>/dev/null); then
    say "$name not running"
    return 0
  fi
  children=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)
  say "SIGKILL $name (pid $pid${children:+, children $children})"
  # shellcheck disable=SC2086  # one word per child pid
  kill -KILL "$pid" $children 2>/dev/null || true
  wait_for 10 "" eval "! pid_alive $pid" || warn "$name (pid $pid) survived SIGKILL?"
}

cmd_kill() {
  (($# > 0)) || die "usage: services.sh kill <postgres|redis|kafka|smtp> ..."
  parse_names "$@"
  lock_stack
  local n
  for n in "${NAMES[@]}"; do kill_service "$n"; done
}

cmd_status() {
  parse_names "$@"
  local n pid rc=0
  for n in "${NAMES[@]}"; do
    if pid=$("status_$n" 2>/dev/null); then
      printf '%-9s running  pid %-8s %s:%-6s log %s\n' "$n" "$pid" "$HOST" "$(svc_port "$n")" "$(svc_log "$n")"
    else
      printf '%-9s stopped  %-12s %s:%-6s log %s\n' "$n" "" "$HOST" "$(svc_port "$n")" "$(svc_log "$n")"
      rc=3
    fi
  done
  return $rc
}

cmd_env() {
  printf 'export DATABASE_URL=%q\n' "postgresql://$DB_USER:$DB_PASSWORD@$HOST:$PG_PORT/$DB_NAME"
  printf 'export REDIS_URL=%q\n' "redis://$HOST:$REDIS_PORT/0"
  printf 'export KAFKA_BROKERS=%q\n' "$HOST:$KAFKA_PORT"
  printf 'export MAIL_SERVER=%q\n' "$HOST"
  printf 'export MAIL_PORT=%q\n' "$SMTP_PORT"
  printf 'export SMTP_SINK_DIR=%q\n' "$SMTP_MESSAGES"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  (($# > 0)) && shift
  case $cmd in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    restart) cmd_restart "$@" ;;
    kill) cmd_kill "$@" ;;
    status) cmd_status "$@" ;;
    env) (($# == 0)) || die "env takes no arguments"; cmd_env ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
