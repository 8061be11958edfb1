#!/usr/bin/env bash
# The API server of every mode, in one place: granian (a Rust HTTP core) serving asgi.py (the
# long poll served asynchronously, every other route by the Flask app on API_THREADS threads)
# or, with API_INTERFACE=wsgi, wsgi.py on granian's blocking threads.
#
#   scripts/api_server.sh full       the full mode's API (scripts/platform.sh: make up, e2e, bench;
#                                    the image's command, Dockerfile)
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
# make bench's embedded phase (--skip-full --warmup 5 --duration 15), back to back at 539fb3b on
# a machine busy with other work (load 11-27): 1 worker 108-147/s (4.4-4.9 ms of API CPU per
# booking; one process's threads share one GIL and got ~0.6 of a core), 2 workers 262-343/s
# (3.6-4.1 ms), 3 workers 277-281/s (3.7-4.4 ms, outcome p50 ~108 ms against ~75). A hot
# event's 400 decisions/s need more than one core at this cost: 2 workers, one per core.
# The server runs in the foreground (exec): Ctrl-C (SIGINT) or SIGTERM stops it gracefully, and
# a worker still running KILL_TIMEOUT_S after the stop began is killed (granian's
# --workers-kill-timeout; off by default). Without that bound the server could wait forever on a
# worker that missed its signal. A terminal's Ctrl-C reaches every process of the group, the
# workers as well as the master, which then signals them again. Two granian 2.8.9 races turn
# this into a worker that never stops, seen in ~1 of 10 Ctrl-Cs on a 2-core machine:
#  - a worker still loading the app when the signals come has no handler of its own yet, so
#    it drops them and then serves on;
#  - the worker's stop flag is a channel with room for one message, so a worker signalled
#    more often than it reads the flag blocks its event loop for good in the signal handler
#    (py-spy: the loop thread in WorkerSignal.set()).
# tests/test_api_server.py sends Ctrl-C to the group while a worker is starting. The bound is
# short enough to come before platform.sh's KILL (PLATFORM_STOP_TIMEOUT, 20 s) and the API's
# stop_grace_period in docker-compose.yml (20 s), and long enough for a booking in flight (the
# Kafka delivery timeout, 5 s). A long poll still waiting is cut; its client asks again.
KILL_TIMEOUT_S=10
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
GRANIAN=$ROOT/.venv/bin/granian  # the repo's virtualenv; in the image (Dockerfile), the one on PATH
[[ -x $GRANIAN ]] || GRANIAN=granian
mode=${1:?usage: api_server.sh full|embedded}
case $mode in
  full) workers=${API_WORKERS:-3} threads=${API_THREADS:-8} ;;
  embedded) workers=${API_WORKERS:-2} threads=${API_THREADS:-32} ;;
  *) echo "usage: api_server.sh full|embedded" >&2; exit 2 ;;
esac
export API_THREADS=$threads  # asgi.py's Flask threads (atomicseats.waiting.create_asgi_app)
common=(--host "${API_HOST:-127.0.0.1}" --port "${API_PORT:-5000}" --workers "$workers" --backlog 2048 --no-ws
  --workers-kill-timeout "$KILL_TIMEOUT_S")
if [[ ${API_INTERFACE:-asgi} == wsgi ]]; then  # the former front end (a long poll holds a thread)
  exec "$GRANIAN" --interface wsgi "${common[@]}" --blocking-threads "$threads" wsgi:app
fi
exec "$GRANIAN" --interface asgi "${common[@]}" --backpressure "${API_BACKPRESSURE:-16384}" \
  --loop "${API_LOOP:-uvloop}" asgi:app
