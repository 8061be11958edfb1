"""The admins' pages: analytics, the user list and role changes.

Each view reads a form and calls the service the JSON API calls (services/analytics,
services/users): the service decides who may do what and what a change may be (the last
admin cannot be demoted); the views only check that the visitor is a signed-in admin first,
so nobody else sees even an empty page.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SearchField, SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from atomicseats.domain import accounts, limits
from atomicseats.errors import Conflict, Forbidden, InvalidInput
from atomicseats.services import analytics, users
from atomicseats.web import bp, present
from atomicseats.web.forms import explain_csrf, show_service_errors

USERS_PAGE_SIZE = 20
ANALYTICS_EVENTS_PAGE_SIZE = 20
USER_PATH = "/admin/users/<int(max=9223372036854775807):user_id>"  # ids are BIGINTs: a larger one is a 404
# Only the admin pages (and base.html, for an admin who stepped down) show these categories:
# the guest and host pages show their own.
FLASH_OK, FLASH_INFO = "admin-ok", "admin-info"
ROLE_WORDS = {"guest": "a guest", "host": "a host", "admin": "an admin"}
ROLE_CHOICES = [
    SelectChoice("guest", "Guest: books seats"),
    SelectChoice("host", "Host: publishes events and sees their bookings"),
    SelectChoice("admin", "Admin: analytics, users and roles"),
]
assert [choice.value for choice in ROLE_CHOICES] == list(accounts.ROLES)


class UserSearchForm(FlaskForm):
    """The user list's search: a GET form (bookmarkable), so no CSRF token."""

    class Meta:
        csrf = False

    q = SearchField(
        "Search by username, name or e-mail", validators=[Optional(), Length(max=limits.USER_SEARCH_CHARS_MAX)]
    )
    cursor = HiddenField(validators=[Optional(), Length(max=200)])


class RoleForm(FlaskForm):
    role = RadioField("New role", choices=ROLE_CHOICES, validators=[InputRequired("Choose a role.")])


def admin_required(view):
    """Signed in (else the login page, back here after), and an admin (else 403 in words)."""

    @functools.wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if current_user.role != accounts.ADMIN_ROLE:
            raise Forbidden("This page is for admins only. Ask an admin if you need access.")
        return view(*args, **kwargs)

    return wrapper


@bp.app_context_processor
def _admin_context():
    return {"flower_url": current_app.config.get("FLOWER_URL") or None}


# --- analytics ------------------------------------------------------------------------------


@bp.get("/admin")
@admin_required
def admin_analytics():
    cursor = request.args.get("cursor") or None
    try:
        report = analytics.platform_analytics(current_user.account, ANALYTICS_EVENTS_PAGE_SIZE, cursor)
    except InvalidInput:  # a cursor this page did not issue: start from the first page
        return redirect(url_for("web.admin_analytics"), 303)
    next_url = None
    if report.events.has_more:
        next_url = url_for("web.admin_analytics", cursor=report.events.next_cursor)
    return render_template(
        "web/admin/analytics.html",
        report=report,
        charts=_analytics_charts(report),
        next_url=next_url,
        is_first_page=not cursor,
    )


@dataclass(frozen=True)
class ChartData:
    """What `chart(...)` (templates/web/_charts.html) takes: labels, series, a one-line summary."""

    labels: list[str]
    series: list[dict]
    summary: str


def _analytics_charts(report: analytics.Analytics) -> dict[str, ChartData]:
    """The analytics as the charts draw them: presentation of the service's figures only."""
    top, page = report.top_events, report.events.items
    leader = f"{top[0].name} leads with {top[0].reserved_seats:,} seats sold" if top else ""
    waiting = sum(stats.waitlist_length for stats in page)
    return {
        "top": ChartData(
            [stats.name for stats in top],
            [
                {"label": "Seats sold", "data": [stats.reserved_seats for stats in top]},
                {"label": "Seats free", "data": [stats.capacity_seats - stats.reserved_seats for stats in top]},
            ],
            leader,
        ),
        "utilisation": ChartData(
            [stats.name for stats in page],
            [
                {
                    "label": "Seats filled",
                    "data": [round(stats.utilisation * 100, 1) for stats in page],
                    "display": [percent(stats.utilisation) for stats in page],
                }
            ],
            f"{len(page)} events by id; {percent(report.capacity_utilisation)} of all seats filled",
        ),
        "waitlists": ChartData(
            [stats.name for stats in page],
            [
                {"label": "People waiting", "data": [stats.waitlist_length for stats in page]},
                {"label": "Seats they want", "data": [stats.waitlist_seats for stats in page]},
            ],
            f"{waiting:,} {'person' if waiting == 1 else 'people'} waiting for these events",
        ),
    }


@bp.app_template_filter("amount")
def amount(minor_units: int) -> str:
    """Money as a figure: like the `money` filter, but nothing earned is "€0.00", not "Free"."""
    if minor_units:
        return present.money(minor_units)
    return f"{current_app.config.get('CURRENCY_SYMBOL', '€')}0.00"


@bp.app_template_filter("percent")
def percent(ratio: float) -> str:
    """0.4567 -> "45.7%"."""
    return f"{ratio * 100:.1f}%"


# --- users ----------------------------------------------------------------------------------


@bp.get("/admin/users")
@admin_required
def admin_users():
    form = UserSearchForm(request.args)
    page = None
    if form.validate():
        try:
            page = users.list_users(
                current_user.account, (form.q.data or "").strip() or None, USERS_PAGE_SIZE, form.cursor.data or None
            )
        except InvalidInput as error:  # a cursor from elsewhere, or tampered with
            form.cursor.errors = [error.message]
    next_url = None
    if page is not None and page.has_more:
        query = {"q": form.q.data} if form.q.data else {}
        next_url = url_for("web.admin_users") + "?" + urlencode({**query, "cursor": page.next_cursor})
    return render_template(
        "web/admin/users.html",
        form=form,
        users=page.items if page else [],
        roles=accounts.ROLES,
        next_url=next_url,
        is_first_page=not form.cursor.data,
    )


@bp.route(f"{USER_PATH}/role", methods=["GET", "POST"])
@admin_required
def admin_change_role(user_id: int):
    """GET: the confirmation step (the list's "Change…" leads here with the chosen role).
    POST: the change itself (CSRF), then back to the list with what happened."""
    account = users.get_account(current_user.account, user_id)
    if request.method == "GET":
        chosen = request.args.get("role")
        form = RoleForm(formdata=None, role=chosen if chosen in accounts.ROLES else None)
        return render_template("web/admin/role.html", account=account, form=form)
    form = RoleForm()
    if not form.validate_on_submit():
        explain_csrf(form)
        return render_template("web/admin/role.html", account=account, form=form), 400
    try:
        change = users.change_role(current_user.account, user_id, form.role.data, current_user.session_id)
    except (Conflict, InvalidInput) as error:
        if not show_service_errors(form, error.errors):
            form.form_errors.append(error.message)
        return render_template("web/admin/role.html", account=account, form=form), error.status
    return _after_change(change)


def _after_change(change: users.RoleChange):
    user, ended = change.user, change.sessions_ended
    sessions = f"{ended} session{'' if ended == 1 else 's'}"
    if not change.is_changed:
        flash(f"{user.name} ({user.username}) is already {ROLE_WORDS[user.role]}: nothing changed.", FLASH_INFO)
    elif user.id == current_user.id:
        elsewhere = f" Your {sessions} elsewhere ended." if ended else ""
        flash(f"You ({user.username}) are now {ROLE_WORDS[user.role]}.{elsewhere}", FLASH_OK)
    else:
        signed_out = (
            f" They were signed out of {sessions} and log in again as {user.role}."
            if ended
            else " They are not signed in anywhere right now."
        )
        flash(f"{user.name} ({user.username}) is now {ROLE_WORDS[user.role]}.{signed_out}", FLASH_OK)
    if current_user.id == user.id and user.role != accounts.ADMIN_ROLE:
        return redirect(url_for("web.catalogue"), 303)  # no longer an admin: the list is not theirs
    return redirect(url_for("web.admin_users", q=user.username), 303)
