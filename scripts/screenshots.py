"""The README's screenshots, taken again: `make screenshots` (writes docs/screenshots/*.png).

The embedded default on a fresh SQLite file with the demo data (`make run`'s accounts and
events), an on-sale played through the same services the API calls (the stadium show sells out
and a waitlist forms), served on loopback and photographed in Debian's Chromium through
Playwright, as the browser tests do.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
FLASH_SALE = "Flash Sale: Stadium Rock Reunion"
# Who books what in the flash sale (username, seats): more asked for than the 8 seats there are.
ON_SALE = (("grace", 3), ("gary", 2), ("fans1", 2), ("fans2", 4), ("fans3", 2))
DEMO_GUEST_PASSWORD = "guest-demo-pass"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the PNGs go (default: docs/screenshots)")
    out_dir = parser.parse_args(argv).out.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.update(
            ATOMICSEATS_ENV="development",
            DATABASE_URL=f"sqlite:///{scratch}/screenshots.db",
            REDIS_URL="",
            KAFKA_BROKERS="",
            MAIL_SUPPRESS_SEND="true",
            LOG_LEVEL="WARNING",
        )
        sys.path.insert(0, str(REPO_ROOT))
        from atomicseats import create_app

        app = create_app()
        event_id = prepare(app)
        url, stop = serve(app)
        try:
            photograph(url, event_id, out_dir)
        finally:
            stop()
    for path in sorted(out_dir.glob("*.png")):
        print(f"wrote {path}")
    return 0


def prepare(app) -> int:
    """Schema, demo data and the on-sale; the flash-sale event's id."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from atomicseats.extensions import db
    from atomicseats.models import Event, User
    from atomicseats.services import booking, users
    from atomicseats.services.demo import seed_demo

    with app.app_context():
        upgrade()
        seed_demo()
        event_id = db.session.execute(select(Event.id).where(Event.name == FLASH_SALE)).scalar_one()
        for username, seats in ON_SALE:
            user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                user = users.register_user(
                    username, f"Fan {username[-1]}", f"{username}@demo.atomicseats.local", DEMO_GUEST_PASSWORD, "guest"
                )
            booking.submit_request(user.id, event_id, seats, str(uuid.uuid4()), None)
        return event_id


def serve(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=10)

    return f"http://127.0.0.1:{server.server_port}", stop


def photograph(url: str, event_id: int, out_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    from scripts.chromium import CHROMIUM, CHROMIUM_ARGS

    out_dir.mkdir(parents=True, exist_ok=True)
    shots = (
        ("gary", DEMO_GUEST_PASSWORD, f"/events/{event_id}", "event-page"),
        ("gary", DEMO_GUEST_PASSWORD, "/bookings", "my-bookings"),
        ("hannah", "host-demo-pass", "/host", "host-dashboard"),
        ("admin", "admin-demo-pass", "/admin", "admin-analytics"),
    )
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for username, password, path, name in shots:
                for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                    context = browser.new_context(viewport=viewport, reduced_motion="reduce")
                    page = context.new_page()
                    page.goto(f"{url}/login")
                    page.get_by_label("Username or e-mail").fill(username)
                    page.get_by_label("Password").fill(password)
                    page.get_by_role("button", name="Log in").click()
                    page.wait_for_url(lambda current: "/login" not in current)
                    page.goto(f"{url}{path}")
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(out_dir / f"{name}-{width}.png"), full_page=True)
                    context.close()
        finally:
            browser.close()


if __name__ == "__main__":
    sys.exit(main())
