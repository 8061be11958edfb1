"""The host pages: a dashboard of the host's events with their fill rate, create and edit an
event, and one event's management page (its numbers, waitlist switch, capacity, bookings over
time, and its bookings and waitlist a page at a time).

Each view reads a form and calls the events service the JSON API calls; the service says who
may (the event's host or an admin: a guest gets a 403 in words, another host too) and what is
allowed (its field errors are shown next to the field they name)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from atomicseats.errors import AtomicSeatsError, InvalidInput
from atomicseats.services import events, tickets
from atomicseats.web import bp, present
from atomicseats.web.forms import explain_csrf, show_service_errors
from atomicseats.web.host_forms import SERVICE_FIELDS, SERVICE_WORDS, CapacityForm, EventForm, TierForm, WaitlistForm
from atomicseats.web.views import EVENT_PATH

DASHBOARD_PAGE_SIZE = 20
ROSTER_PAGE_SIZE = 25
POLL_NUMBERS_S = 2  # the management page's numbers follow bookings and promotions
HOST_EVENT_PATH = f"/host{EVENT_PATH}"
CURSOR_CHARS_MAX = 200
TIER_FORM_PREFIX = re.compile(r"tier(\d{1,19}|new)")


def _actor():
    return current_user.account


# --- dashboard ------------------------------------------------------------------------------


@bp.get("/host")
@login_required
def host_dashboard():
    cursor = _cursor_arg()
    try:
        page = events.host_events(_actor(), DASHBOARD_PAGE_SIZE, cursor)
    except InvalidInput:  # a cursor from elsewhere, or tampered with: start again
        return redirect(url_for("web.host_dashboard"), 303)
    now = present.now()
    rows = [
        (
            view,
            present.fill_percent(view.event.reserved_seats, view.event.capacity_seats),
            present.seat_badges(view, now),
        )
        for view in page.items
    ]
    percents = [percent for _, percent, _ in rows]
    fill_chart = {
        "labels": [view.event.name for view, _, _ in rows],
        "series": [{"label": "Seats sold (% of capacity)", "data": percents, "display": [f"{p}%" for p in percents]}],
        "summary": f"{len(rows)} events, from {min(percents)}% to {max(percents)}% sold" if rows else "",
    }
    next_url = url_for("web.host_dashboard") + "?" + urlencode({"cursor": page.next_cursor}) if page.has_more else None
    return render_template(
        "web/host/dashboard.html",
        rows=rows,
        fill_chart=fill_chart,
        check_ins=tickets.check_in_counts([view.event.id for view in page.items]),
        next_url=next_url,
        is_first_page=cursor is None,
    )


# --- create and edit ------------------------------------------------------------------------


@bp.route("/host/events/new", methods=["GET", "POST"])
@login_required
def host_create_event():
    events.check_can_host(_actor())
    form = EventForm()
    if request.method == "GET":  # a fresh form: app.js picks the browser's time zone
        form.timezone.render_kw = {"data-browser-zone": "yes"}
    problem, status = None, 200
    if form.validate_on_submit():
        try:
            view = events.create_event(_actor(), form.event_fields())
        except AtomicSeatsError as error:
            status = error.status
            if error.status >= 500 or not _show_errors(form, error):
                problem = error
        else:
            flash(f"“{view.event.name}” is published.", "host-ok")
            return redirect(url_for("web.host_event", event_id=view.event.id), 303)
    else:
        explain_csrf(form)
        status = 400 if form.errors else 200
    return _render_form(form, None, problem, status)


@bp.route(f"{HOST_EVENT_PATH}/edit", methods=["GET", "POST"])
@login_required
def host_edit_event(event_id: int):
    view = events.hosted_event(_actor(), event_id)
    form = EventForm() if request.method == "POST" else EventForm(data=_form_data(view))
    problem, status = None, 200
    if form.validate_on_submit():
        changes = _changes(view, form.event_fields())
        if not changes:
            flash("Nothing changed.", "host-info")
            return redirect(url_for("web.host_event", event_id=event_id), 303)
        try:
            events.update_event(_actor(), event_id, changes)
        except AtomicSeatsError as error:
            status = error.status  # 400, or 409: capacity below the seats sold, say
            if error.status >= 500 or not _show_errors(form, error):
                problem = error
        else:
            flash("Your changes are saved.", "host-ok")
            return redirect(url_for("web.host_event", event_id=event_id), 303)
    else:
        explain_csrf(form)
        status = 400 if form.errors else 200
    return _render_form(form, view, problem, status)


def _render_form(form: EventForm, view, problem: AtomicSeatsError | None, status: int):
    """The event form; a 503 or 429 says so in words, with the seconds to wait (the form keeps
    what was typed: pressing the button again is the retry)."""
    retry_after = (problem.headers or {}).get("Retry-After") if problem is not None else None
    if problem is not None and problem.status in (429, 503) and retry_after is None:
        retry_after = "2"
    page = render_template("web/host/event_form.html", form=form, view=view, problem=problem, retry_after=retry_after)
    return page, status, {"Retry-After": retry_after} if retry_after else {}


def _form_data(view) -> dict:
    event = view.event
    return {
        "name": event.name,
        "venue": event.venue,
        "description": event.description,
        "timezone": "UTC",
        "starts_at": event.starts_at.replace(tzinfo=None),
        "ends_at": event.ends_at.replace(tzinfo=None),
        "sales_end_at": None if event.sales_end_at == event.starts_at else event.sales_end_at.replace(tzinfo=None),
        "capacity": event.capacity_seats,
        "price": event.price_minor,
        "waitlist_open": event.is_waitlist_open,
        "waitlist_mode": event.waitlist_mode,
        "offer_window_minutes": event.offer_window_s // 60,
    }


def _changes(view, fields: dict) -> dict:
    """Only what the host changed: the service then checks only that (an unchanged start
    of an event under way is not "moved into the past")."""
    event = view.event
    current = {
        "name": event.name,
        "venue": event.venue,
        "description": event.description,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "capacity_seats": event.capacity_seats,
        "price_minor": event.price_minor,
        "is_waitlist_open": event.is_waitlist_open,
        "waitlist_mode": event.waitlist_mode,
        "offer_window_s": event.offer_window_s,
    }
    changes = {name: value for name, value in fields.items() if name in current and current[name] != value}
    sales_end = fields["sales_end_at"]
    if (sales_end or fields["starts_at"]) != event.sales_end_at:  # empty: sales close at the start
        changes["sales_end_at"] = sales_end
    return changes


# --- one event --------------------------------------------------------------------------------


@bp.get(HOST_EVENT_PATH)
@login_required
def host_event(event_id: int):
    return _render_event(event_id, CapacityForm(formdata=None))


@bp.get(f"{HOST_EVENT_PATH}/numbers")
@login_required
def host_event_numbers(event_id: int):
    """The live part of the management page, polled by htmx."""
    view = events.hosted_event(_actor(), event_id)
    return render_template("web/host/_numbers.html", view=view, **_numbers(view))


@bp.post(f"{HOST_EVENT_PATH}/capacity")
@login_required
def host_event_capacity(event_id: int):
    form = CapacityForm()
    if not form.validate_on_submit():
        explain_csrf(form)
        return _render_event(event_id, form, status=400)
    before = events.hosted_event(_actor(), event_id)
    try:
        after = events.update_event(_actor(), event_id, {"capacity_seats": form.capacity.data})
    except AtomicSeatsError as error:
        if error.status >= 500 or not _show_errors(form, error):
            raise
        return _render_event(event_id, form, status=error.status)
    message = f"Capacity is now {after.event.capacity_seats:,} seats."
    if after.waitlist_length < before.waitlist_length:
        served = before.waitlist_length - after.waitlist_length
        message += f" {served:,} waiting guest{'' if served == 1 else 's'} got their seats."
    elif after.waitlist_length:
        message += f" {after.waitlist_length:,} still waiting."
    flash(message, "host-ok")
    return redirect(url_for("web.host_event", event_id=event_id), 303)


@bp.post(f"{HOST_EVENT_PATH}/tiers")
@login_required
def host_event_tier(event_id: int):
    """Change one price tier, or add one (no `tier_id`). Each tier's form has its own prefix
    (`tier<id>`, or `tiernew`), so the page's fields have distinct ids."""
    prefixes = [key.removesuffix("-tier_id") for key in request.form if key.endswith("-tier_id")]
    prefix = prefixes[0] if len(prefixes) == 1 and TIER_FORM_PREFIX.fullmatch(prefixes[0]) else "tiernew"
    form = TierForm(prefix=prefix)
    if not form.validate_on_submit():
        explain_csrf(form)
        return _render_event(event_id, CapacityForm(formdata=None), status=400, tier_form=form)
    try:
        view = events.update_event(_actor(), event_id, {"tiers": [form.tier_fields()]})
    except AtomicSeatsError as error:
        if error.status >= 500 or not error.errors:
            raise
        form.form_errors.extend(_in_words(message) for messages in error.errors.values() for message in messages)
        return _render_event(event_id, CapacityForm(formdata=None), status=error.status, tier_form=form)
    flash(f"Saved the tier “{form.name.data.strip()}”: {len(view.tiers)} tier(s).", "host-ok")
    return redirect(url_for("web.host_event", event_id=event_id), 303)


def _tier_forms(view, posted: TierForm | None) -> list[TierForm]:
    """A form per tier (prefixed by its id, so their fields' ids differ), then one to add a tier;
    the posted form, with its errors, in its place."""
    posted_id = posted.tier_id.data if posted is not None else None
    forms = []
    for tier in view.tiers:
        if posted is not None and posted_id == str(tier.id):
            forms.append(posted)
            continue
        form = TierForm(
            formdata=None, prefix=f"tier{tier.id}", tier_id=str(tier.id), name=tier.name, quota=tier.quota_seats
        )
        form.price.data = tier.price_minor
        form.sales_starts_at.data = tier.sales_starts_at
        form.sales_ends_at.data = tier.sales_ends_at
        forms.append(form)
    forms.append(posted if posted is not None and not posted_id else TierForm(formdata=None, prefix="tiernew"))
    return forms


@bp.post(f"{HOST_EVENT_PATH}/waitlist")
@login_required
def host_event_waitlist(event_id: int):
    form = WaitlistForm()
    if not form.validate_on_submit():
        flash("That did not work: the form expired. Please try again.", "host-warn")
        return redirect(url_for("web.host_event", event_id=event_id), 303)
    is_open = form.action.data == "open"
    view = events.set_waitlist_open(_actor(), event_id, is_open)
    if is_open:
        flash(f"The waitlist is open. {view.waitlist_length:,} waiting.", "host-ok")
    else:
        flash(
            "The waitlist is closed: requests beyond the free seats are turned down. Those waiting keep their place.",
            "host-ok",
        )
    return redirect(url_for("web.host_event", event_id=event_id), 303)


def _render_event(event_id: int, capacity_form: CapacityForm, status: int = 200, tier_form: TierForm | None = None):
    cursor = _cursor_arg()
    try:
        roster = events.event_roster(_actor(), event_id, ROSTER_PAGE_SIZE, cursor)
    except InvalidInput:
        return redirect(url_for("web.host_event", event_id=event_id), 303)
    view = roster.event
    timeline = events.bookings_over_time(_actor(), event_id)
    if capacity_form.capacity.data is None and not capacity_form.errors:
        capacity_form.capacity.data = view.event.capacity_seats
    context = {
        "view": view,
        "roster": roster,
        "capacity_form": capacity_form,
        "waitlist_form": WaitlistForm(action="close" if view.event.is_waitlist_open else "open"),
        "tier_forms": _tier_forms(view, tier_form),
        "timeline_chart": _timeline_chart(timeline),
        "timeline": timeline,
        "next_url": (
            url_for("web.host_event", event_id=event_id) + "?" + urlencode({"cursor": roster.page.next_cursor})
            if roster.page.has_more
            else None
        ),
        "is_first_page": cursor is None,
        **_numbers(view),
    }
    return render_template("web/host/event.html", **context), status


def _numbers(view) -> dict:
    return {
        "fill_percent": present.fill_percent(view.event.reserved_seats, view.event.capacity_seats),
        "badges": present.seat_badges(view, present.now()),
        "poll_s": POLL_NUMBERS_S,
    }


def _timeline_chart(timeline) -> dict:
    return {
        "labels": [point.day.strftime("%-d %b %Y") for point in timeline],
        "series": [
            {"label": "Seats held", "data": [point.seats_held for point in timeline], "stepped": True},
            {"label": "Booked that day", "data": [point.seats_booked for point in timeline]},
            {"label": "Cancelled that day", "data": [point.seats_cancelled for point in timeline]},
        ],
        "summary": (
            f"{timeline[-1].seats_held:,} seats held on {timeline[-1].day.strftime('%-d %b %Y')}, "
            f"after {sum(point.seats_booked for point in timeline):,} booked and "
            f"{sum(point.seats_cancelled for point in timeline):,} cancelled"
            if timeline
            else ""
        ),
    }


def _show_errors(form, error: AtomicSeatsError) -> bool:
    """The service's field errors next to their field, its API names said in words."""
    errors = {name: [_in_words(message) for message in messages] for name, messages in (error.errors or {}).items()}
    return show_service_errors(form, errors, SERVICE_FIELDS)


def _in_words(message: str) -> str:
    for api_name, words in SERVICE_WORDS.items():
        message = message.replace(api_name, words)
    return message


def _cursor_arg() -> str | None:
    cursor = request.args.get("cursor", "").strip()
    if not cursor or len(cursor) > CURSOR_CHARS_MAX:
        return None
    return cursor
