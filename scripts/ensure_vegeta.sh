#!/usr/bin/env bash
# make bench's open-loop phase sends at a fixed rate with vegeta (github.com/tsenart/vegeta, Go):
# built from the Go module proxy into .run/bin/vegeta when missing or another version (idempotent;
# needs the Go toolchain, `apt-get install golang-go` or go.dev/dl). Prints the binary's path.
set -euo pipefail
PATH=$PATH:/usr/local/go/bin  # where the Go tarball installs it
VEGETA_MODULE=github.com/tsenart/vegeta/v12
VEGETA_VERSION=v12.13.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BIN_DIR=$ROOT/.run/bin
vegeta=$BIN_DIR/vegeta
installed() { [[ -x $vegeta ]] && go version -m "$vegeta" 2>/dev/null | grep -qE "^\s+mod\s+$VEGETA_MODULE\s+$VEGETA_VERSION(\s|$)"; }
if ! command -v go >/dev/null 2>&1; then
  [[ -x $vegeta ]] && { echo "$vegeta"; exit 0; }  # built earlier; no toolchain to check its version
  echo "make bench's open-loop phase needs vegeta, built with Go: install Go (apt-get install golang-go)" >&2
  exit 2
fi
if ! installed; then
  mkdir -p "$BIN_DIR"
  GOBIN=$BIN_DIR go install "$VEGETA_MODULE@$VEGETA_VERSION" >&2 \
    || { echo "go install $VEGETA_MODULE@$VEGETA_VERSION failed" >&2; exit 2; }
  installed || { echo "go install left no $VEGETA_MODULE $VEGETA_VERSION at $vegeta" >&2; exit 2; }
fi
echo "$vegeta"
