"""My bookings: a guest's bookings (upcoming and past, with totals), cancelling with a
confirmation step, the waitlist places they hold with their place in line now, and leaving
the waitlist. The page polls (htmx) so a booking promoted from the waitlist appears without
any action; with JavaScript off it is there on the next load.

Cancelling and leaving are two steps that work without JavaScript: a GET shows what will
happen (only the guest's own bookings and places: the services read by the signed-in user),
and its form POSTs to the service the API calls (booking.cancel_bookings,
booking.leave_waitlist), which checks ownership again."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from atomicseats import names
from atomicseats.errors import Conflict, NotFound, ServiceBusy
from atomicseats.services import booking, history, tickets
from atomicseats.web import bp, present
from atomicseats.web.forms import CancelForm, LeaveWaitlistForm

# A promotion from the waitlist (someone cancelled, the host added seats) shows within this.
MY_BOOKINGS_POLL_S = 5
FLASH_OK, FLASH_WARN = "guest-ok", "guest-warn"  # only this page shows these (base.html shows none)
LEAVE_PATH = "/bookings/waitlist/<request_id>/leave"


@bp.get(names.MY_BOOKINGS_PATH)
def my_bookings():
    if not current_user.is_authenticated:  # as login_required, and a polling page whose session ended leaves whole
        login_url = url_for("web.login", next=url_for("web.my_bookings"))
        if request.headers.get("HX-Request"):
            return "", 204, {"HX-Redirect": login_url}
        return redirect(login_url)
    context = {
        "mine": history.guest_bookings(current_user.id, present.now()),
        "places": booking.waitlist_places(current_user.id),
        "tickets": tickets.user_tickets(current_user.id),
        "poll_s": MY_BOOKINGS_POLL_S,
    }
    if request.headers.get("HX-Request"):
        return render_template("web/guest/_bookings.html", **context)
    return render_template("web/guest/bookings.html", **context, flash_categories=[FLASH_OK, FLASH_WARN])


# --- cancelling -----------------------------------------------------------------------------


@bp.get("/bookings/cancel")
@login_required
def confirm_cancel():
    """What a cancellation will give up, with the form that does it: ?event_id=..&booking_id=..
    for one booking, ?event_id=..&scope=all for everything held or awaited for the event."""
    query = CancelForm(formdata=request.args, meta={"csrf": False})
    if not query.validate():
        raise NotFound("Booking not found")
    form = CancelForm(formdata=None, event_id=query.event_id.data, booking_id=query.booking_id.data)
    form.scope.data = query.scope.data
    return _render_confirm_cancel(form)


@bp.post("/bookings/cancel")
@login_required
def cancel():
    form = CancelForm()
    if not form.validate_on_submit():
        if form.event_id.errors or form.booking_id.errors or form.scope.errors:  # not a form this site rendered
            raise NotFound("Booking not found")
        if form.csrf_token.errors:
            form.form_errors.append("This form expired. Please confirm again.")
        return _render_confirm_cancel(form, status=400)
    booking_id = None if form.is_cancel_all else form.booking_id.data
    try:
        result = booking.cancel_bookings(current_user.id, form.event_id.data, booking_id, form.is_cancel_all)
    except Conflict as error:  # cancelled meanwhile (another tab, the host withdrew the event)
        flash(f"Nothing was cancelled: {_sentence(error.message)}", FLASH_WARN)
        return redirect(url_for("web.my_bookings"), 303)
    except ServiceBusy as error:
        return _render_confirm_cancel(form, status=error.status, problem=error)
    flash(_cancelled_words(result, booking_id), FLASH_OK)
    return redirect(url_for("web.my_bookings"), 303)


def _render_confirm_cancel(form: CancelForm, status: int = 200, problem: ServiceBusy | None = None):
    """The confirmation page, from the service's preview (what cancel_bookings would give up)."""
    booking_id = None if form.is_cancel_all else form.booking_id.data
    try:
        preview = booking.cancel_preview(current_user.id, form.event_id.data, booking_id, form.is_cancel_all)
    except Conflict as error:  # already cancelled, or nothing held for the event
        flash(_sentence(error.message, capital=True), FLASH_WARN)
        return redirect(url_for("web.my_bookings"), 303)
    context = {
        "form": form,
        "event": preview.event,
        "held": preview.bookings,
        "waiting": preview.waiting,
        "problem": problem,
    }
    headers = problem.headers or {} if problem else {}
    return render_template("web/guest/confirm_cancel.html", **context), status, headers


def _cancelled_words(result: booking.CancelResult, booking_id: int | None) -> str:
    seats = f"{result.seats_freed} seat{'' if result.seats_freed == 1 else 's'}"
    if booking_id is not None:
        words = f"Booking #{booking_id} is cancelled: {seats} released."
    else:
        count = result.bookings_cancelled
        words = f"{count} booking{'' if count == 1 else 's'} cancelled: {seats} released."
    if result.seats_withdrawn:
        words += f" {result.seats_withdrawn} waiting seat{'' if result.seats_withdrawn == 1 else 's'} withdrawn too."
    return words + " A confirmation e-mail is on its way."


# --- leaving the waitlist -------------------------------------------------------------------


@bp.get(LEAVE_PATH)
@login_required
def confirm_leave_waitlist(request_id: str):
    return _render_confirm_leave(request_id, LeaveWaitlistForm())


@bp.post(LEAVE_PATH)
@login_required
def leave_waitlist(request_id: str):
    form = LeaveWaitlistForm()
    if not form.validate_on_submit():
        form.form_errors.append("This form expired. Please confirm again.")
        return _render_confirm_leave(request_id, form, status=400)
    try:
        withdrawal = booking.leave_waitlist(current_user.id, request_id)
    except Conflict as error:  # served or expired meanwhile
        flash(f"Nothing changed: {_sentence(error.message)}", FLASH_WARN)
        return redirect(url_for("web.my_bookings"), 303)
    except ServiceBusy as error:
        return _render_confirm_leave(request_id, form, status=error.status, problem=error)
    seats = withdrawal.seats_withdrawn
    flash(f"You left the waitlist: {seats} waiting seat{'' if seats == 1 else 's'} withdrawn.", FLASH_OK)
    return redirect(url_for("web.my_bookings"), 303)


def _render_confirm_leave(request_id: str, form, status: int = 200, problem: ServiceBusy | None = None):
    places = [place for place in booking.waitlist_places(current_user.id).items if place.request_id == request_id]
    if not places:
        raise NotFound("You are not waiting with this request")
    context = {"form": form, "place": places[0], "problem": problem}
    headers = problem.headers or {} if problem else {}
    return render_template("web/guest/confirm_leave.html", **context), status, headers


def _sentence(message: str, capital: bool = False) -> str:
    """A service's message inside (or as) a sentence of ours."""
    first = message[:1].upper() if capital else message[:1].lower()
    return first + message[1:] + ("" if message.endswith(".") else ".")
