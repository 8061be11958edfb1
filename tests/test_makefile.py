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
