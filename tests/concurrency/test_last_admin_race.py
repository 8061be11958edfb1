"""Two admins step down at the same moment, on real PostgreSQL: one of them stays admin.

Each change counts the admins, then demotes; the two transactions touch different rows,
so only the lock on the admins (services/users._lock_admins) makes the second wait for the
first and count again. The negative control skips that lock and pauses after the count:
both changes must then succeed and leave no admin at all, or this test tests nothing.
"""

from __future__ import annotations

import threading

from atomicseats.errors import AtomicSeatsError
from atomicseats.extensions import db
from atomicseats.models import User
from atomicseats.services import users
from tests.conftest import fresh_app
from tests.helpers import PASSWORD

PAUSE_S = 0.3


def both_step_down(app) -> tuple[list[str], int]:
    """Two admins demote themselves at once; what each got, and how many admins remain."""
    admin_ids = [
        users.create_admin(f"admin{number}", "Admin", f"admin{number}@example.test", PASSWORD).id for number in range(2)
    ]
    db.session.remove()
    start = threading.Barrier(len(admin_ids))
    outcomes: list[str] = []

    def step_down(user_id: int) -> None:
        with app.app_context():
            actor = users.get_user(user_id)
            start.wait()
            try:
                users.change_role(actor, user_id, "host")
                outcomes.append("demoted")
            except AtomicSeatsError as error:
                outcomes.append(f"{error.status}")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=step_down, args=(user_id,)) for user_id in admin_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    admins = db.session.query(User).filter(User.role == "admin").count()
    return sorted(outcomes), admins


def test_two_admins_stepping_down_at_once_leave_one_admin(postgres_url):
    with fresh_app(postgres_url, TESTING_PAUSE_AFTER_ADMINS_S=PAUSE_S) as app:
        outcomes, admins = both_step_down(app)
    assert outcomes == ["409", "demoted"]
    assert admins == 1


def test_negative_control_without_the_lock_both_step_down_and_no_admin_is_left(postgres_url):
    with fresh_app(postgres_url, TESTING_SKIP_ADMIN_LOCK=True, TESTING_PAUSE_AFTER_ADMINS_S=PAUSE_S) as app:
        outcomes, admins = both_step_down(app)
    assert outcomes == ["demoted", "demoted"], "without the lock a change still waited: the race did not run"
    assert admins == 0
