#!/usr/bin/env bash
# The API server of every mode, in one place: granian (a Rust HTTP core) serving asgi.py (the
# long poll served asynchronously, every other route by the Flask app on API_THREADS threads)
# or, with API_INTERFACE=wsgi, wsgi.py on granian's blocking threads.
#
#   scripts/api_server.sh full       the full mode's API (scripts/platform.sh: make up, e2e, bench)
#   scripts/api_server.sh embedded   the embedded default (make run, and make bench's embedded phase)
#
# Environment (the caller's values win): API_HOST (127.0.0.1), API_PORT (5000), API_WORKERS,
# API_THREADS, API_INTERFACE (asgi|wsgi), API_BACKPRESSURE (16384), API_LOOP (uvloop).
# Defaults per mode: full, 3 worker processes x 8 threads. Embedded, 2 workers x 32 threads: its
# pipeline decides in the process that answers, and the group commit (adapters/embedded.py
# GroupCommit) records and decides the bookings submitted concurrently in one process in one
# transaction, so the threads are what batches grow from (32: batches of ~20-25 under make
# bench's 64 connections). The workers write one SQLite file: their leaders take turns on a
# lock file (adapters/embedded.py WritersLock, flock: a waiting leader sleeps in the kernel and
# starts, with all that queued meanwhile, the moment the other's batch is over) instead of
# polling SQLite's write lock with busy_timeout's back-off, which doubled p99. Measured with
# make bench's embedded phase on a machine busy with other work (the API got ~0.6 of a core):
# 1 worker ~8.1 ms of API CPU per booking, outcome p50/p99 ~0.23/0.45 s; 2 workers ~8.8 ms,
# ~0.58/1.2-1.8 s, the same rate; at load 8-11, 1 worker 139/s (7.0 ms, 97 % of a core), 2
# workers 154/s (7.9 ms, 120 %). One process cannot use more than one core, and a hot event's
# 400 decisions/s need more than one at this cost: 2 workers, for the machine's second core.
# The server runs in the foreground (exec): Ctrl-C (SIGINT) or SIGTERM stops it gracefully.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
BIN=$ROOT/.venv/bin
mode=${1:?usage: api_server.sh full|embedded}
case $mode in
  full) workers=${API_WORKERS:-3} threads=${API_THREADS:-8} ;;
  embedded) workers=${API_WORKERS:-2} threads=${API_THREADS:-32} ;;
  *) echo "usage: api_server.sh full|embedded" >&2; exit 2 ;;
esac
export API_THREADS=$threads  # asgi.py's Flask threads (atomicseats.waiting.create_asgi_app)
common=(--host "${API_HOST:-127.0.0.1}" --port "${API_PORT:-5000}" --workers "$workers" --backlog 2048 --no-ws)
if [[ ${API_INTERFACE:-asgi} == wsgi ]]; then  # the former front end (a long poll holds a thread)
  exec "$BIN/granian" --interface wsgi "${common[@]}" --blocking-threads "$threads" wsgi:app
fi
exec "$BIN/granian" --interface asgi "${common[@]}" --backpressure "${API_BACKPRESSURE:-16384}" \
  --loop "${API_LOOP:-uvloop}" asgi:app
