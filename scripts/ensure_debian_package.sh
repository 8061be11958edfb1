#!/usr/bin/env bash
# Install Debian packages when the executable a test needs is missing (idempotent; needs root for
# apt-get), and fail loudly when they cannot be installed: a test never skips for want of them.
# Usage: ensure_debian_package.sh <executable> "<who needs it>" <package>...
set -euo pipefail
executable=$1 needed_by=$2; shift 2
[[ -x "$executable" ]] && exit 0
if [[ "$(id -u)" != 0 ]]; then
  echo "$needed_by needs $executable: run 'sudo apt-get install $*' (or make test as root)" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "$@" >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$@" >/dev/null; } \
  || { echo "could not install the Debian package(s) $* (apt-get failed): $needed_by cannot run" >&2; exit 2; }
[[ -x "$executable" ]] || { echo "apt-get installed $* but $executable is missing" >&2; exit 2; }
echo "installed $("$executable" --version 2>/dev/null | head -n 1 || echo "$1")"
