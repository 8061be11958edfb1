"""The README's screenshots exist and `make screenshots` can take them again (issue 10 point 9)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.browser

README_IMAGE = re.compile(r"!\[[^\]]+\]\((docs/screenshots/[^)]+\.png)\)")


def readme_images() -> list[str]:
    return README_IMAGE.findall((REPO_ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_shows_the_event_page_and_the_host_dashboard_from_docs():
    images = readme_images()
    assert any("event-page" in image for image in images) and any("host-dashboard" in image for image in images)
    for image in images:
        assert (REPO_ROOT / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{image} is not a committed PNG"


def test_make_screenshots_takes_every_readme_screenshot_again(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scripts.screenshots", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    taken = {path.name for path in tmp_path.glob("*.png")}
    assert {image.rsplit("/", 1)[1] for image in readme_images()} <= taken
    assert all(path.stat().st_size > 10_000 for path in tmp_path.glob("*.png")), "a blank page photographed"
