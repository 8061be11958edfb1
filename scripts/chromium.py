"""How the project runs Debian's Chromium headless (browser tests, `make screenshots`).

Playwright never downloads a browser here: it launches this executable, which
scripts/ensure_chromium.sh installs from Debian when missing.
"""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
