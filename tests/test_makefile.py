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
    assert script.count('exec "$GRANIAN"') == 2  # the ASGI and the WSGI interface, nothing else
    assert "scripts/api_server.sh full" in (ROOT / "scripts" / "platform.sh").read_text()
    command = server_command(5090)
    assert command[-2:] == [str(ROOT / "scripts" / "api_server.sh"), "embedded"]


def test_make_test_runs_the_suite_in_two_processes_and_the_stacks_tests_in_one():
    from tests.conftest import needs_full_stack

    script = (ROOT / "scripts" / "run_tests.sh").read_text()
    assert "workers=${TEST_WORKERS:-2}" in script
    assert '-n "$workers"' in script and script.rstrip().endswith('"$@"')  # the caller's arguments last
    assert needs_full_stack("tests/e2e/test_pipeline.py::test_a")
    assert needs_full_stack("tests/browser/test_guest_pages.py::test_b[pipeline]")
    assert needs_full_stack("tests/browser/test_guest_pages.py::test_b[pipeline-2]")
    assert not needs_full_stack("tests/browser/test_guest_pages.py::test_b[embedded]")
    assert not needs_full_stack("tests/api/test_bookings.py::test_pipeline_c[postgres]")


def test_each_test_process_flushes_a_redis_database_of_its_own():
    from tests.conftest import redis_database_after

    assert redis_database_after("redis://127.0.0.1:56379/0", 1) == "redis://127.0.0.1:56379/1"
    assert redis_database_after("redis://:secret@127.0.0.1:56379/3", 2) == "redis://:secret@127.0.0.1:56379/5"
    assert redis_database_after("redis://127.0.0.1:56379", 0) == "redis://127.0.0.1:56379/0"
