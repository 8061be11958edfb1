#!/usr/bin/env bash
# The whole suite, against the real services. Used by `make test` (and so by CI).
# Uses TEST_DATABASE_URL / TEST_REDIS_URL when set; otherwise starts PostgreSQL and
# Redis on loopback (installing them if missing) and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export STACK=test

needed=()
[[ -n "${TEST_DATABASE_URL:-}" ]] || needed+=(postgres)
[[ -n "${TEST_REDIS_URL:-}" ]] || needed+=(redis)

if ((${#needed[@]})); then
  started=()  # stop only what this run started; a stack someone already runs stays up
  for service in "${needed[@]}"; do
    bash scripts/services.sh status "$service" >/dev/null 2>&1 || started+=("$service")
  done
  bash scripts/services.sh start "${needed[@]}"
  if ((${#started[@]})); then
    trap 'bash scripts/services.sh stop '"${started[*]}"' >/dev/null 2>&1 || true' EXIT
  fi
  eval "$(bash scripts/services.sh env)"
  export TEST_DATABASE_URL="${TEST_DATABASE_URL:-$DATABASE_URL}"
  export TEST_REDIS_URL="${TEST_REDIS_URL:-$REDIS_URL}"
fi

# The browser tests (tests/browser) drive Debian's Chromium: installed here when missing.
bash scripts/ensure_chromium.sh
# The metrics end-to-end test scrapes the stack with Debian's Prometheus: likewise.
bash scripts/ensure_prometheus.sh

# The suite chooses its own URLs per test; never let a developer's settings leak in.
unset DATABASE_URL REDIS_URL REDIS_HOST KAFKA_BROKERS KAFKA_BROKER ATOMICSEATS_ENV
export ATOMICSEATS_TEST_BACKENDS="${ATOMICSEATS_TEST_BACKENDS:-sqlite,postgres}"

# TEST_WORKERS test processes (pytest-xdist; 0: the suite in this one). In one, the suite kept
# one of two cores busy (much of it waits on the services, the browser and the stack's
# processes) and took ~20 minutes; in two, 13-14 (2026-12-02). The tests of the full-mode stack
# share one process (tests/conftest.py: pytest_xdist_make_scheduler), so one stack starts.
# The caller's arguments come after these, so PYTEST_ARGS="-n 0" wins.
workers=${TEST_WORKERS:-2}
echo "make test: PostgreSQL at ${TEST_DATABASE_URL%%@*}@…, Redis at ${TEST_REDIS_URL}; backends: ${ATOMICSEATS_TEST_BACKENDS}; ${workers} test processes"
.venv/bin/python -m pytest -p no:cacheprovider --timeout=300 -n "$workers" --durations=15 "$@"
