#!/usr/bin/env bash
# Native backing services for AtomicSeats' full mode: PostgreSQL, Redis, Kafka (one
# KRaft broker+controller) and an SMTP sink, all on 127.0.0.1, all started from this
# checkout with their state under .run/$STACK/<service>/ (data, log, pid). Each service has
# its own file, scripts/services/<name>.sh; scripts/services/lib.sh holds what they share
# (the one stop routine among it). Kafka's topics come from atomicseats/names.py.
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
VENV_PY=$ROOT/.venv/bin/python
START_TIMEOUT=${SERVICES_START_TIMEOUT:-120}
STOP_TIMEOUT=${SERVICES_STOP_TIMEOUT:-30}
ALL_SERVICES=(postgres redis kafka smtp)

# Helpers and the one stop routine, then one file per service (scripts/services/<name>.sh):
# each defines <name>_port, ensure_<name>_installed, start_<name>, stop_<name>, status_<name>.
# shellcheck source=services/lib.sh
source "$ROOT/scripts/services/lib.sh"
for service in "${ALL_SERVICES[@]}"; do
  # shellcheck disable=SC1090  # one file per service
  source "$ROOT/scripts/services/$service.sh"
done
unset service

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

# Our ports (55432-59393 across the dev/test/e2e/bench stacks, to 60993 with STACK_PORT_OFFSET up to 1900, as
# make bench's BENCH_PORT_OFFSET allows: Kafka 59093+offset) lie inside Linux's ephemeral range
# (32768-60999): an outgoing connection can take one, and its TIME_WAIT then stops Kafka or
# Postgres from binding it on the next start. Reserve them for listeners (best-effort: in a
# container without the right to change it, starting still works as before).
RESERVED_PORTS=55400-60999
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
