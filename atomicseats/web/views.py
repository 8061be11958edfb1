"""The routes of the pages. Each reads a form, calls the service the API calls, renders."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode, urlsplit

from flask import current_app, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import HTTPException
from wtforms import SelectChoice

from atomicseats.domain import accounts
from atomicseats.domain.states import RequestStatus
from atomicseats.errors import (
    AccountDisabled,
    AtomicSeatsError,
    InvalidInput,
    NotAuthenticated,
    RateLimited,
    ServiceBusy,
)
from atomicseats.extensions import limiter
from atomicseats.observability import get_correlation_id
from atomicseats.services import booking, events, users
from atomicseats.web import bp, present, sessions
from atomicseats.web.forms import (
    BookForm,
    LoginForm,
    LogoutForm,
    PasswordForm,
    RegisterForm,
    SearchForm,
    explain_csrf,
    show_service_errors,
)

CATALOGUE_PAGE_SIZE = 12
# The pages poll with htmx: this often while a request is pending or an event page is open
# (a change shows within 2 s), less often while a request waits on the waitlist.
POLL_PENDING_S = 1
POLL_WAITING_S = 5
# With JavaScript off the status page reloads itself while pending: a <meta http-equiv=refresh>
# inside <noscript> (CSP governs scripts, not a meta refresh, and browsers running scripts
# ignore noscript content, so htmx's polling and the reload never both run).
NO_SCRIPT_REFRESH_S = 2
SERVICE_FIELD_ALIASES = {"numberOfSeats": "seats", "tierId": "tier_id"}  # the services' API wire names -> form fields
EVENT_PATH = "/events/<int(max=9223372036854775807):event_id>"  # ids are BIGINTs: a larger one is a 404


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


def _limits_off() -> bool:
    return not current_app.config["RATELIMIT_ENABLED"]


@bp.app_context_processor
def _page_context():
    return {"logout_form": LogoutForm(), "current_user": current_user}


# --- catalogue and event ------------------------------------------------------------------


@bp.get("/")
def catalogue():
    form = SearchForm(request.args)
    page, filters = None, None
    if form.validate():
        filters = events.EventFilter(
            text=(form.q.data or "").strip() or None,
            starts_from=_day_start(form.starts_from.data),
            starts_to=_day_end(form.starts_to.data),
        )
        try:
            page = events.list_events(filters, CATALOGUE_PAGE_SIZE, form.cursor.data or None)
        except InvalidInput as error:  # a cursor from another search, or tampered with
            form.cursor.errors = [error.message]
    now = present.now()
    cards = [(view, present.seat_badges(view, now)) for view in (page.items if page else [])]
    next_url = None
    if page is not None and page.has_more:
        query = {name: value for name, value in request.args.items() if name != "cursor" and value}
        next_url = url_for("web.catalogue") + "?" + urlencode({**query, "cursor": page.next_cursor})
    is_first_page = not form.cursor.data
    return render_template("web/catalogue.html", form=form, cards=cards, next_url=next_url, is_first_page=is_first_page)


def _day_start(day) -> datetime | None:
    return None if day is None else datetime.combine(day, time.min, tzinfo=UTC)


def _day_end(day) -> datetime | None:
    return None if day is None else datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1, microseconds=-1)


@bp.get(EVENT_PATH)
def event_page(event_id: int):
    return _render_event(event_id, BookForm())


def _tier_choices(view: events.EventView) -> list[SelectChoice]:
    """The booking form's tier choices: the rule's (cheapest with the seats), then each tier on sale."""
    return [SelectChoice("", "Cheapest available")] + [
        SelectChoice(str(tier.id), f"{tier.name} ({present.money(tier.price_minor)})")
        for tier in view.tiers
        if tier.is_on_sale
    ]


@bp.get(f"{EVENT_PATH}/availability")
def event_availability(event_id: int):
    """The live part of the event page, polled by htmx (and its own fallback: a plain page)."""
    view = events.get_event(event_id)
    badges = present.seat_badges(view, present.now())
    return render_template(
        "web/_availability.html", view=view, badges=badges, poll_s=POLL_PENDING_S, my_places=_my_places(event_id)
    )


def _my_places(event_id: int) -> list:
    """The signed-in guest's pending requests for the event, with their places in line."""
    if not current_user.is_authenticated:
        return []
    return booking.my_places_in_line(current_user.id, event_id)


def _render_event(event_id: int, form: BookForm, problem: AtomicSeatsError | None = None, status: int = 200):
    view = events.get_event(event_id)
    form.tier_id.choices = _tier_choices(view)
    host = users.get_user(view.event.host_id)
    now = present.now()
    context = {
        "view": view,
        "host_name": host.name if host is not None else "",
        "badges": present.seat_badges(view, now),
        "is_sales_open": view.event.availability.is_sales_open(now),
        "seats_max": current_app.config["SEATS_PER_REQUEST_MAX"],
        "form": form,
        "problem": problem,
        "retry_after": (problem.headers or {}).get("Retry-After") if problem else None,
        "poll_s": POLL_PENDING_S,
        "my_places": _my_places(event_id),
        "now": now,
    }
    headers = {"Retry-After": context["retry_after"]} if context["retry_after"] else {}
    return render_template("web/event.html", **context), status, headers


# --- booking ----------------------------------------------------------------------------


@bp.post(f"{EVENT_PATH}/book")
def book(event_id: int):
    if not current_user.is_authenticated:  # back to the event page after logging in, not to this POST
        return redirect(url_for("web.login", next=url_for("web.event_page", event_id=event_id)), 303)
    form = BookForm()
    form.tier_id.choices = _tier_choices(events.get_event(event_id))
    if not form.validate_on_submit():
        explain_csrf(form)
        return _render_event(event_id, form, status=400)
    try:
        accepted = booking.submit_request(
            user_id=current_user.id,
            event_id=event_id,
            seats=form.seats.data,
            idempotency_key=form.idempotency_key.data or None,
            correlation_id=get_correlation_id(),
            tier_id=int(form.tier_id.data) if form.tier_id.data else None,
        )
    except (ServiceBusy, RateLimited) as error:  # said in words, with the same key to retry safely
        return _render_event(event_id, form, problem=error, status=error.status)
    except AtomicSeatsError as error:
        if error.status >= 500 or not show_service_errors(form, error.errors, SERVICE_FIELD_ALIASES):
            return _render_event(event_id, form, problem=error, status=error.status)
        return _render_event(event_id, form, status=error.status)
    return redirect(url_for("web.request_page", request_id=accepted.request_id), 303)


@bp.get("/requests/<request_id>")
@login_required
def request_page(request_id: str):
    status = booking.request_status(request_id, current_user.id, accounts.is_admin(current_user.role))
    view = events.get_event(status.event_id) if request.headers.get("HX-Request") is None else None
    is_pending = status.status == RequestStatus.PENDING
    context = {
        "status": status,
        "view": view,
        "poll_s": _poll_interval(status.status),
        "no_script_refresh_s": NO_SCRIPT_REFRESH_S if is_pending else None,
    }
    if request.headers.get("HX-Request"):
        return render_template("web/_request_status.html", **context)
    return render_template("web/request.html", **context)


def _poll_interval(status: str) -> int | None:
    """Pending: every second, until decided. Waitlisted or partial: now and then, since
    freed seats may promote it. Anything else is where it stays."""
    if status == RequestStatus.PENDING:
        return POLL_PENDING_S
    if status in (RequestStatus.WAITLISTED, RequestStatus.PARTIAL):
        return POLL_WAITING_S
    return None


# --- accounts -----------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_auth_limit, methods=["POST"], exempt_when=_limits_off)
def login():
    form = LoginForm(next=request.args.get("next", ""))
    status = 200
    if form.validate_on_submit():
        try:
            sessions.sign_in(form.login.data.strip(), form.password.data)
        except NotAuthenticated:
            form.password.errors = ["That username or e-mail and password do not match."]
        except AccountDisabled as error:  # the right password for a disabled account
            form.login.errors = [error.message]
            status = 403
        else:
            return redirect(_safe_next(form.next.data), 303)
    else:
        explain_csrf(form)
    if status == 200 and form.errors:
        status = 400
    return render_template("web/login.html", form=form), status


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(_auth_limit, methods=["POST"], exempt_when=_limits_off)
def register():
    form = RegisterForm()
    problem = None
    if form.validate_on_submit():
        try:
            account = users.register_user(
                form.username.data.strip(),
                form.name.data.strip(),
                form.email.data.strip(),
                form.password.data,
                form.role.data,
            )
        except AtomicSeatsError as error:
            if error.status == 409:
                form.username.errors = [error.message]
            elif not show_service_errors(form, error.errors):
                problem = error
        else:
            sessions.sign_in(account.username, form.password.data)
            return redirect(url_for("web.catalogue"), 303)
    else:
        explain_csrf(form)
    status = 400 if form.errors or problem else 200
    return render_template("web/register.html", form=form, problem=problem), status


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """A new password ends every other session of the account (this one stays)."""
    form = PasswordForm()
    sessions_ended = None
    if form.validate_on_submit():
        try:
            sessions_ended = users.change_password(
                current_user.id, current_user.session_id, form.current_password.data, form.password.data
            )
        except InvalidInput as error:
            show_service_errors(form, error.errors)
    else:
        explain_csrf(form)
    status = 400 if form.errors else 200
    return render_template("web/password.html", form=form, sessions_ended=sessions_ended), status


@bp.post("/logout")
def logout():
    form = LogoutForm()
    if form.validate_on_submit():
        sessions.sign_out()
    return redirect(url_for("web.catalogue"), 303)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never `//elsewhere` or a full URL): no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("web.catalogue")


# --- errors ---------------------------------------------------------------------------------


@bp.errorhandler(AtomicSeatsError)
def _service_error(error: AtomicSeatsError):
    return _error_page(error.status, error.message, error.headers)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    status = error.code or 500
    headers = {}
    if status == 429:
        headers["Retry-After"] = error.get_response().headers.get("Retry-After", "60")
    return _error_page(status, ERROR_WORDS.get(status, error.description or error.name), headers)


ERROR_WORDS = {
    400: "That request did not make sense to us.",
    403: "You are not allowed to see this page.",
    404: "We could not find that page.",
    405: "That page does not take this kind of request.",
    429: "You are going faster than we allow. Please wait a moment and try again.",
}


def _error_page(status: int, message: str, headers: dict | None):
    retry_after = (headers or {}).get("Retry-After")
    if status in (429, 503) and retry_after is None:
        retry_after = "2"
    page = render_template(
        "web/error.html",
        status=status,
        message=message,
        retry_after=retry_after,
        retry_url=request.full_path if request.method == "GET" else None,
        correlation_id=get_correlation_id(),
    )
    return page, status, dict(headers or {})
