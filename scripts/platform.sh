#!/usr/bin/env bash
# The full-mode platform on loopback: the backing services (scripts/services.sh) plus the
# application processes — API (granian, a WSGI server with a Rust HTTP core), Kafka bridge, Celery workers (allocation; mailer), Celery beat,
# Flower. The mailer has its own process so sending e-mail never delays a seat decision.
# Used by `make up` / `make down`, by the end-to-end tests and by `make bench`.
#
#   scripts/platform.sh up                  services, migrations, every process; waits until ready
#   scripts/platform.sh down                every process, then the services
#   scripts/platform.sh start <proc ...>    api | bridge | worker | mailer | beat | flower (idempotent),
#                                           or worker2: a second allocation worker (same queues, its own
#                                           hostname and metrics port; not part of `up`: make bench's
#                                           many-events phase scales out with it)
#   scripts/platform.sh stop <proc ...>     SIGTERM, SIGKILL after a timeout
#   scripts/platform.sh kill <proc ...>     SIGKILL at once (fault tests)
#   scripts/platform.sh status              one line per process
#   scripts/platform.sh env                 the environment the processes run with
#
# STACK=dev|test|bench as for services.sh (ports: API 5000 / 5100 / 5200, Flower +555,
# metrics of the bridge, worker and mailer +561, +562, +563; worker2 +564).
# Variables already set by the caller (DATABASE_URL, API_WORKERS, ...) win over the defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export STACK=${STACK:-dev}
case $STACK in
  dev) API_PORT_DEFAULT=5000 ;;
  test) API_PORT_DEFAULT=5100 ;;
  bench) API_PORT_DEFAULT=5200 ;;
  *) API_PORT_DEFAULT=$((5000 + ${STACK_PORT_OFFSET:-0})) ;;
esac
API_PORT=${API_PORT:-$API_PORT_DEFAULT}
FLOWER_PORT=${FLOWER_PORT:-$((API_PORT + 555))}
# Prometheus metrics: the API at /metrics on its own port; the others each on a port of their own.
BRIDGE_METRICS_PORT=${BRIDGE_METRICS_PORT:-$((API_PORT + 561))}
WORKER_METRICS_PORT=${WORKER_METRICS_PORT:-$((API_PORT + 562))}
MAILER_METRICS_PORT=${MAILER_METRICS_PORT:-$((API_PORT + 563))}
WORKER2_METRICS_PORT=${WORKER2_METRICS_PORT:-$((API_PORT + 564))}
APP_RUN=$ROOT/.run/$STACK/app
BIN=$ROOT/.venv/bin
STOP_TIMEOUT=${PLATFORM_STOP_TIMEOUT:-20}
START_TIMEOUT=${PLATFORM_START_TIMEOUT:-60}
ALL_PROCS=(bridge worker mailer beat api flower)
EXTRA_PROCS=(worker2)  # started only when asked for (`start worker2`); status and down know them
mkdir -p "$APP_RUN"

say() { echo "[platform:$STACK] $*"; }
die() { echo "[platform:$STACK] ERROR: $*" >&2; exit 1; }

load_env() {
  local caller_database_url=${DATABASE_URL:-} caller_redis_url=${REDIS_URL:-}
  eval "$(bash scripts/services.sh env)"
  [[ -n $caller_database_url ]] && export DATABASE_URL=$caller_database_url
  [[ -n $caller_redis_url ]] && export REDIS_URL=$caller_redis_url
  local caller_flower_auth=${FLOWER_BASIC_AUTH:-}
  local secrets=$APP_RUN/secrets.env
  if [[ ! -f $secrets ]]; then
    umask 077
    for name in SESSION_SECRET ACCESS_TOKEN_SECRET REFRESH_TOKEN_SECRET; do
      echo "export $name=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(48))')"
    done >"$secrets"
  fi
  # Flower's login (user:password; Flower reads FLOWER_BASIC_AUTH itself), generated once like
  # the secrets above (appended to a secrets file of an earlier checkout); the caller's wins.
  if ! grep -q '^export FLOWER_BASIC_AUTH=' "$secrets"; then
    echo "export FLOWER_BASIC_AUTH=flower:$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(24))')" >>"$secrets"
  fi
  # shellcheck disable=SC1090
  source "$secrets"
  FLOWER_AUTH_FROM="$secrets"
  if [[ -n $caller_flower_auth ]]; then export FLOWER_BASIC_AUTH=$caller_flower_auth FLOWER_AUTH_FROM="your FLOWER_BASIC_AUTH"; fi
  export FLOWER_URL=${FLOWER_URL:-http://127.0.0.1:$FLOWER_PORT}  # the admin pages link to it
  export ATOMICSEATS_ENV=${ATOMICSEATS_ENV:-production}
  export PIPELINE=kafka COOKIE_SECURE=${COOKIE_SECURE:-false} MAIL_SUPPRESS_SEND=false
  export LOG_LEVEL=${LOG_LEVEL:-INFO} LOG_JSON=${LOG_JSON:-true}
  export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:$API_PORT}  # the e-mails' links
  export FLASK_APP=wsgi PYTHONUNBUFFERED=1
  export BEAT_HEARTBEAT_FILE=${BEAT_HEARTBEAT_FILE:-$APP_RUN/beat.heartbeat}  # `flask health beat`
}

pid_of() { local file=$APP_RUN/$1.pid; [[ -f $file ]] && cat "$file" || true; }
is_running() {
  local pid; pid=$(pid_of "$1")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]
}

command_of() {
  case $1 in
    api) echo "env API_HOST=127.0.0.1 API_PORT=$API_PORT bash $ROOT/scripts/api_server.sh full" ;;  # granian: the one command of every mode
    bridge) echo "$BIN/python kafka_bridge.py" ;;
    worker | worker2) echo "$BIN/celery -A celery_worker worker --queues $ALLOCATION_QUEUES --concurrency ${WORKER_CONCURRENCY:-2} --hostname $1-$STACK@%h --without-gossip --without-mingle --loglevel ${LOG_LEVEL:-INFO}" ;;
    mailer) echo "$BIN/celery -A celery_worker worker --queues $MAILER_QUEUES --concurrency ${MAILER_CONCURRENCY:-2} --hostname mailer-$STACK@%h --without-gossip --without-mingle --loglevel ${LOG_LEVEL:-INFO}" ;;
    beat) echo "$BIN/celery -A celery_worker beat --schedule $APP_RUN/beat-schedule --loglevel INFO" ;;
    flower) echo "$BIN/celery -A celery_worker flower --address=127.0.0.1 --port=$FLOWER_PORT" ;;
    *) die "unknown process '$1' (api|bridge|worker|worker2|mailer|beat|flower)" ;;
  esac
}

metrics_port_of() {
  case $1 in
    bridge) echo "$BRIDGE_METRICS_PORT" ;;
    worker) echo "$WORKER_METRICS_PORT" ;;
    worker2) echo "$WORKER2_METRICS_PORT" ;;
    mailer) echo "$MAILER_METRICS_PORT" ;;
    *) echo 0 ;;
  esac
}

# Processes that fork workers (granian's, Celery's prefork pool) count in prometheus_client's
# multiprocess mode: a directory per process, emptied before it starts (what a dead run left
# there would be counted again). The others must not have the variable at all.
metrics_env_of() {
  case $1 in
    api | worker | worker2 | mailer)
      local dir=$APP_RUN/metrics/$1
      rm -rf "$dir" && mkdir -p "$dir"
      echo "PROMETHEUS_MULTIPROC_DIR=$dir" ;;
    *) echo "-u PROMETHEUS_MULTIPROC_DIR" ;;
  esac
}

# CPU priority (nice) when everything shares one machine: the API and the allocation worker
# first; then the bridge (in a burst the front door keeps answering, and accepted requests wait
# safely in Kafka, recorded in bigger batches); e-mail and the dashboards take what is left (the
# outbox keeps every e-mail, nothing is dropped). The worker's tasks wait on a dozen round trips
# each (PostgreSQL, Redis): at nice 5 each answer's wake-up queued behind the API's threads, and
# a decision at half load took ~1.3-2 times as long (make bench's open loop, 2026-12-01).
nice_of() {
  case $1 in
    bridge) echo "${BRIDGE_NICE:-5}" ;;
    worker | worker2) echo "${WORKER_NICE:-0}" ;;
    mailer) echo "${MAILER_NICE:-19}" ;;
    flower) echo "${FLOWER_NICE:-19}" ;;
    *) echo 0 ;;
  esac
}

wait_ready() {
  local proc=$1 deadline=$((SECONDS + START_TIMEOUT)) log=$APP_RUN/$1.log
  while ((SECONDS < deadline)); do
    is_running "$proc" || { tail -n 40 "$log" >&2; die "$proc exited during start (log $log)"; }
    case $proc in
      api) curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && return 0 ;;
      bridge | worker | worker2 | mailer | beat) [[ -f $APP_RUN/$proc.ready ]] && return 0 ;;
      flower) curl -fsS "http://127.0.0.1:$FLOWER_PORT/healthcheck" >/dev/null 2>&1 && return 0 ;;
    esac
    sleep 0.2
  done
  tail -n 40 "$log" >&2
  die "$proc not ready after ${START_TIMEOUT}s (log $log)"
}

start_proc() {
  local proc=$1
  if is_running "$proc"; then say "$proc already running (pid $(pid_of "$proc"))"; return 0; fi
  local log=$APP_RUN/$proc.log
  echo "--- start $(date -u +%FT%TZ)" >>"$log"
  rm -f "$APP_RUN/$proc.ready"  # the process writes it once ready (atomicseats.observability.announce_ready)
  # Each process runs under a restart loop in its own process group, as `restart: unless-stopped`
  # does in compose: a crash (e.g. kombu dying when Redis drops its connection) is restarted after
  # RESTART_DELAY_S; `stop`/`kill` signal the whole group, loop included.
  # Its own session is its own scheduler autogroup on Linux, and between autogroups only the
  # group's nice counts (a process's nice works inside its group): both are set.
  local nice; nice=$(nice_of "$proc")
  # shellcheck disable=SC2046  # metrics_env_of: words for env(1), no spaces inside any
  env $(metrics_env_of "$proc") METRICS_PORT="$(metrics_port_of "$proc")" \
    ATOMICSEATS_READY_FILE=$APP_RUN/$proc.ready AUTOGROUP_NICE=$nice setsid nice -n "$nice" bash -c \
    'echo "$AUTOGROUP_NICE" >/proc/self/autogroup 2>/dev/null || true
     while :; do "$@"; echo "[platform] $(date -u +%FT%TZ) exited with $?; restarting in ${RESTART_DELAY_S:-1}s"; sleep "${RESTART_DELAY_S:-1}"; done' \
    supervise $(command_of "$proc") >>"$log" 2>&1 </dev/null &
  echo $! >"$APP_RUN/$proc.pid"
  wait_ready "$proc"
  say "$proc ready (pid $(pid_of "$proc"), log $log)"
}

# Anything of the process group still alive (zombies aside): the restart loop is its leader, but
# the process it ran (and that one's children) can outlive it.
group_alive() { ps -e -o pgid=,stat= | awk -v group="$1" '$1 == group && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }

# TERM goes to the restart loop and to the process it runs, not to the whole group: a process
# with children of its own stops them itself (Celery's warm shutdown lets its pool finish the
# task in hand, granian drains its workers). TERM on the group reached the Celery pool at once,
# which dies on it mid-task: a mailer child left its batch leased (OUTBOX_SEND_LEASE_S, 3 min)
# and a restarted mailer could not finish its backlog until the lease ran out. After
# STOP_TIMEOUT whatever is left of the group gets KILL; `kill` sends KILL to the group at once.
stop_proc() {
  local proc=$1 signal=${2:-TERM} pid
  pid=$(pid_of "$proc")
  if [[ -z $pid ]] || ! group_alive "$pid"; then rm -f "$APP_RUN/$proc.pid"; return 0; fi
  if [[ $signal == TERM ]]; then
    local running; running=$(pgrep -P "$pid" || true)  # the loop's child: the process (or its sleep)
    kill -TERM "$pid" 2>/dev/null || true  # the loop first: it restarts nothing after
    # shellcheck disable=SC2086  # one pid a word
    [[ -n $running ]] && kill -TERM $running 2>/dev/null || true
  else
    kill "-$signal" -- "-$pid" 2>/dev/null || kill "-$signal" "$pid" 2>/dev/null || true
  fi
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while group_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  if group_alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$APP_RUN/$proc.pid"
  say "$proc stopped ($signal)"
}

# The queues come from atomicseats/names.py through the app (its KAFKA_PARTITIONS decides how many).
load_queues() {
  ALLOCATION_QUEUES=$("$BIN/flask" --app wsgi worker-queues --kind allocation)
  MAILER_QUEUES=$("$BIN/flask" --app wsgi worker-queues --kind notifications)
}

migrate() { "$BIN/flask" --app wsgi db upgrade >>"$APP_RUN/migrate.log" 2>&1 || { tail -n 40 "$APP_RUN/migrate.log" >&2; die "migrations failed"; }; }

main() {
  local action=${1:-status}; shift || true
  case $action in
    up)
      bash scripts/services.sh start
      load_env; load_queues; migrate
      for proc in "${ALL_PROCS[@]}"; do start_proc "$proc"; done
      say "AtomicSeats (full mode) is up:"
      say "  API      http://127.0.0.1:$API_PORT   (docs /api/docs)      log $APP_RUN/api.log"
      say "  Flower   http://127.0.0.1:$FLOWER_PORT   (Celery's task monitor)  log $APP_RUN/flower.log"
      say "           login: user ${FLOWER_BASIC_AUTH%%:*}, password: FLOWER_BASIC_AUTH=user:password in $FLOWER_AUTH_FROM"
      say "  bridge, worker, mailer, beat                         logs $APP_RUN/{bridge,worker,mailer,beat}.log"
      say "  Metrics  http://127.0.0.1:$API_PORT/metrics; bridge :$BRIDGE_METRICS_PORT, worker :$WORKER_METRICS_PORT, mailer :$MAILER_METRICS_PORT (/metrics)"
      say "  Postgres $DATABASE_URL"
      say "  Redis    $REDIS_URL   Kafka $KAFKA_BROKERS   SMTP sink $MAIL_SERVER:$MAIL_PORT -> $SMTP_SINK_DIR"
      ;;
    down)
      for proc in api flower beat mailer worker2 worker bridge; do stop_proc "$proc"; done
      bash scripts/services.sh stop
      ;;
    start) load_env; load_queues; for proc in "$@"; do start_proc "$proc"; done ;;
    stop) for proc in "$@"; do stop_proc "$proc"; done ;;
    kill) for proc in "$@"; do stop_proc "$proc" KILL; done ;;
    status) for proc in "${ALL_PROCS[@]}" "${EXTRA_PROCS[@]}"; do
        if is_running "$proc"; then echo "$proc running pid $(pid_of "$proc")"; else echo "$proc stopped"; fi
      done ;;
    env) load_env; env | grep -E '^(ATOMICSEATS_ENV|DATABASE_URL|REDIS_URL|KAFKA_BROKERS|MAIL_SERVER|MAIL_PORT|SMTP_SINK_DIR|PIPELINE|BEAT_HEARTBEAT_FILE|FLOWER_URL)=' | sed 's/^/export /'; echo "export API_URL=http://127.0.0.1:$API_PORT"
      for proc in bridge worker worker2 mailer; do echo "export ${proc^^}_METRICS_URL=http://127.0.0.1:$(metrics_port_of "$proc")/metrics"; done ;;
    *) die "usage: platform.sh up|down|start|stop|kill|status|env [proc ...]" ;;
  esac
}

main "$@"
