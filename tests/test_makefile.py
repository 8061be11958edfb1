"""`make up` on a fresh clone installs what its processes import (the SMTP sink is aiosmtpd)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP_FILES = {"$(STAMP_RUNTIME)": ["requirements.txt"], "$(STAMP_DEV)": ["requirements-dev.txt", "requirements.txt"]}


def pinned_by(target: str) -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    prerequisites = re.search(rf"^{target}:(.*)$", makefile, re.MULTILINE)
    assert prerequisites, f"no '{target}' target in the Makefile"
    names = set()
    for stamp, files in STAMP_FILES.items():
        if stamp in prerequisites.group(1):
            for name in files:
                for line in (ROOT / name).read_text().splitlines():
                    if "==" in line and not line.startswith("#"):
                        names.add(line.split("==")[0].strip().lower())
    return names


def test_make_up_installs_the_smtp_sink_it_starts():
    assert "aiosmtpd" in (ROOT / "scripts" / "smtp_sink.py").read_text()
    assert {"aiosmtpd", "granian", "celery", "flower"} <= pinned_by("up")


def test_make_run_needs_only_the_runtime_pins():
    assert "pytest" not in pinned_by("run")


def recipe_of(target: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert match, f"no '{target}' recipe in the Makefile"
    return match.group(1)


def test_make_run_serves_with_granian_from_the_one_server_script():
    """`make run`, the full mode's API and make bench's embedded phase start the server from
    one script (scripts/api_server.sh), which runs granian; never Werkzeug's development server."""
    from scripts.bench.embedded import server_command

    recipe = recipe_of("run")
    assert "scripts/api_server.sh embedded" in recipe
    assert " run --host" not in recipe and "flask --app wsgi run" not in recipe
    assert "db upgrade" in recipe and "seed-demo" in recipe  # the demo data stays
    script = (ROOT / "scripts" / "api_server.sh").read_text()
    assert script.count('exec "$BIN/granian"') == 2  # the ASGI and the WSGI interface, nothing else
    assert "scripts/api_server.sh full" in (ROOT / "scripts" / "platform.sh").read_text()
    command = server_command(5090)
    assert command[-2:] == [str(ROOT / "scripts" / "api_server.sh"), "embedded"]
