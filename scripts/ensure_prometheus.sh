#!/usr/bin/env bash
# tests/e2e/test_metrics.py runs Debian's Prometheus against the end-to-end stack: install the
# package when it is missing (idempotent; needs root for apt-get), and fail loudly when it cannot.
set -euo pipefail
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}
[[ -x "$PROMETHEUS" ]] && exit 0
if [[ "$(id -u)" != 0 ]]; then
  echo "the metrics e2e test needs $PROMETHEUS: run 'sudo apt-get install prometheus' (or make test as root)" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends prometheus >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; } \
  || { echo "could not install the Debian package prometheus (apt-get failed)" >&2; exit 2; }
[[ -x "$PROMETHEUS" ]] || { echo "apt-get installed prometheus but $PROMETHEUS is missing" >&2; exit 2; }
echo "installed $("$PROMETHEUS" --version 2>/dev/null | head -n 1 || echo prometheus)"
