# The SMTP sink for scripts/services.sh (sourced by it): scripts/smtp_sink.py on
# $HOST:$SMTP_PORT, every message it receives kept under .run/$STACK/smtp/messages; with
# SMTP_SINK_DISCARD=1 (make bench) only counted (a sink running the other way is restarted).
# shellcheck shell=bash

smtp_port() { echo "$SMTP_PORT"; }

ensure_smtp_installed() {
  [[ -x $VENV_PY ]] || die "SMTP sink needs the project virtualenv, but $VENV_PY does not exist.
  Create it first:  python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   (needs aiosmtpd)"
  "$VENV_PY" -c 'import aiosmtpd' 2>/dev/null ||
    die "aiosmtpd is not installed in $ROOT/.venv: .venv/bin/pip install aiosmtpd (or -r requirements.txt)"
}

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

smtp_discards() { [[ ${SMTP_SINK_DISCARD:-0} == 1 ]]; }

start_smtp() {
  ensure_smtp_installed
  local pid log=$SMTP_DIR/log mode=()
  mkdir -p "$SMTP_MESSAGES"
  smtp_discards && mode=(--discard)
  if pid=$(smtp_pid); then
    if { smtp_discards && ! pid_cmdline_has "$pid" --discard; } || { ! smtp_discards && pid_cmdline_has "$pid" --discard; }; then
      say "smtp sink (pid $pid) runs with the other SMTP_SINK_DISCARD: restarting it"
      stop_smtp
    else
      wait_for "$START_TIMEOUT" "$pid" smtp_banner || start_failed smtp "running (pid $pid) but no SMTP greeting on $HOST:$SMTP_PORT"
      say "smtp sink already running (pid $pid) on $HOST:$SMTP_PORT"
      return 0
    fi
  fi
  claim_ports smtp "$SMTP_DIR/pid" "$SMTP_PORT"
  say "starting smtp sink on $HOST:$SMTP_PORT ($(smtp_discards && echo "counting, storing nothing" || echo "messages in $SMTP_MESSAGES"))"
  setsid "$VENV_PY" -u "$ROOT/scripts/smtp_sink.py" --host "$HOST" --port "$SMTP_PORT" --dir "$SMTP_MESSAGES" "${mode[@]}" \
    </dev/null >>"$log" 2>&1 9>&- 8>&- &
  pid=$!
  echo "$pid" >"$SMTP_DIR/pid"
  local rc=0
  wait_for "$START_TIMEOUT" "$pid" smtp_banner || rc=$?
  ((rc == 0)) || start_failed smtp "$([[ $rc == 2 ]] && echo "process $pid exited" || echo "no SMTP greeting on $HOST:$SMTP_PORT")"
  say "smtp sink ready (pid $pid) on $HOST:$SMTP_PORT"
}

stop_smtp() { stop_service "smtp sink" "$SMTP_DIR/pid" smtp_pid; }

status_smtp() { smtp_pid; }
