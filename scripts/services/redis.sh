# Redis for scripts/services.sh (sourced by it): no persistence, on $HOST:$REDIS_PORT,
# state under .run/$STACK/redis.
# shellcheck shell=bash

redis_port() { echo "$REDIS_PORT"; }

ensure_redis_installed() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server redis-tools
  fi
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found after install"
}

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
  claim_ports redis "$dir/pid" "$REDIS_PORT"
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

stop_redis() { stop_service redis "$RUN/redis/pid" redis_pid; }

status_redis() { redis_pid; }
