# PostgreSQL for scripts/services.sh (sourced by it): one cluster per stack under
# .run/$STACK/postgres, the role and database $DB_USER/$DB_NAME, on $HOST:$PG_PORT.
# shellcheck shell=bash

DB_USER=atomicseats
DB_PASSWORD=atomicseats
DB_NAME=atomicseats

postgres_port() { echo "$PG_PORT"; }

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
  claim_ports postgres "$PG_PIDFILE" "$PG_PORT"

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
  stop_service postgres "$PG_PIDFILE" postgres_pid INT  # SIGINT: the postmaster's fast shutdown
}

status_postgres() {
  find_pgbin 2>/dev/null && [[ -e $RUN/postgres ]] || return 1
  pg_paths
  postgres_pid
}
