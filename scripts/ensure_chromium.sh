#!/usr/bin/env bash
# The browser tests (tests/browser) drive Debian's Chromium: install the package when it is
# missing (idempotent; needs root for apt-get), and fail loudly when it cannot be installed.
# Playwright never downloads a browser here: the suite launches /usr/bin/chromium.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[[ -x "$CHROMIUM" ]] && exit 0
if [[ "$(id -u)" != 0 ]]; then
  echo "browser tests need $CHROMIUM: run 'sudo apt-get install chromium' (or make test as root)" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null; } \
  || { echo "could not install the Debian package chromium (apt-get failed): the browser tests cannot run" >&2; exit 2; }
[[ -x "$CHROMIUM" ]] || { echo "apt-get installed chromium but $CHROMIUM is missing" >&2; exit 2; }
echo "installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
