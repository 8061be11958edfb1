# Shared by every service of scripts/services.sh (sourced by it, never run on its own):
# logging, process checks, waiting, the one stop routine and apt installs. Each service's
# own file (postgres.sh, redis.sh, kafka.sh, smtp.sh) defines <name>_port, ensure_<name>_installed,
# start_<name>, stop_<name> (through stop_service) and status_<name> (its pid, or failure).
# shellcheck shell=bash

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
svc_port() { "$1_port"; }

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

# Before a fresh start: claim_ports <name> <pidfile> <port>... drops the stale pid file of a
# service that is not running and fails loudly when another process holds one of its ports.
claim_ports() {
  local name=$1 pidfile=$2 port
  shift 2
  rm -f "$pidfile"
  for port in "$@"; do
    if port_open "$port"; then
      start_failed "$name" "port $HOST:$port is already in use by another process (pid $(pid_on_port "$port" || echo '?')): another checkout's stack?"
    fi
  done
}

# The one stop routine of every service: stop_service <name> <pidfile> <pid-fn> [<signal>]
# <pid-fn> prints the pid of our running service (checked to be ours) or fails: then the
# service is not running and its pid file is removed. Otherwise the process gets <signal>
# (default TERM; Postgres: INT, its fast shutdown), STOP_TIMEOUT seconds to exit, and then
# SIGKILL with its child processes. The pid file is removed either way.
stop_service() {
  local name=$1 pidfile=$2 pid_fn=$3 signal=${4:-TERM} pid
  if ! pid=$("$pid_fn"); then
    rm -f "$pidfile"
    say "$name not running"
    return 0
  fi
  say "stopping $name (pid $pid)"
  kill "-$signal" "$pid" 2>/dev/null || true
  if ! wait_for "$STOP_TIMEOUT" "" eval "! pid_alive $pid"; then
    warn "$name (pid $pid) did not stop within ${STOP_TIMEOUT}s: SIGKILL"
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 10 "" eval "! pid_alive $pid" || warn "$name (pid $pid) survived SIGKILL?"
  fi
  rm -f "$pidfile"
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

ensure_installed() { "ensure_$1_installed"; }
