#!/usr/bin/env bash
# The browser tests (tests/browser) drive Debian's Chromium: installed when missing. Playwright
# never downloads a browser here: the suite launches /usr/bin/chromium.
exec bash "$(dirname "$0")/ensure_debian_package.sh" "${CHROMIUM:-/usr/bin/chromium}" "the browser tests" chromium fonts-dejavu-core
