#!/usr/bin/env bash
# tests/e2e/test_metrics.py runs Debian's Prometheus against the end-to-end stack: installed when missing.
exec bash "$(dirname "$0")/ensure_debian_package.sh" "${PROMETHEUS:-/usr/bin/prometheus}" "the metrics e2e test" prometheus
