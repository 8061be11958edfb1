"""Tickets on the pages: each confirmed booking's tickets on My bookings (code, QR code, the
.ics to download), and the host's check-in page for an event: a code typed, or sent by a
handheld scanner that types it and presses Enter, or read by the phone's camera where the
browser has a BarcodeDetector (never required); the outcome in green, amber or red, and the
counts. Every rule (who may, what a code is, once only) is services/tickets.py's."""

from __future__ import annotations

from flask import Response, render_template, request
from flask_login import current_user, login_required
from markupsafe import Markup

from atomicseats.domain import accounts
from atomicseats.services import events, tickets
from atomicseats.services.tickets import CheckInOutcome
from atomicseats.web import bp
from atomicseats.web.host_forms import CheckInForm
from atomicseats.web.views import EVENT_PATH

CHECK_IN_PATH = f"/host{EVENT_PATH}/check-in"
TICKETS_ICS_PATH = "/bookings/<int(max=9223372036854775807):booking_id>/tickets.ics"  # BIGINT ids: larger is a 404

# How each outcome reads at the door: the tone (green, amber, red) and the headline.
OUTCOME_WORDS: dict[CheckInOutcome, tuple[str, str]] = {
    CheckInOutcome.ADMITTED: ("ok", "Admitted"),
    CheckInOutcome.ALREADY_CHECKED_IN: ("warn", "Already checked in"),
    CheckInOutcome.CANCELLED: ("error", "Cancelled ticket: do not admit"),
    CheckInOutcome.WRONG_EVENT: ("error", "A ticket of another event"),
    CheckInOutcome.UNKNOWN: ("error", "Not a valid ticket: check the code"),
}


def ticket_qr(code: str, label: str) -> Markup:
    """The QR code of a ticket as inline SVG (markup we make: zxing-cpp's paths, an escaped label)."""
    return Markup(tickets.qr_svg(code, label))  # nosec B704  # our own SVG, its one text escaped


@bp.get(TICKETS_ICS_PATH)
@login_required
def booking_calendar_file(booking_id: int):
    account = current_user.account
    filename, data = tickets.booking_calendar(account.id, accounts.is_admin(account.role), booking_id)
    return Response(
        data,
        content_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route(CHECK_IN_PATH, methods=["GET", "POST"])
@login_required
def host_check_in(event_id: int):
    actor = current_user.account
    view = events.hosted_event(actor, event_id)  # its host or an admin: 403 for anyone else
    form = CheckInForm()
    # The field a scanner types into: focused on every load, so scan after scan needs no click.
    form.code.render_kw = {"autofocus": True, "autocapitalize": "characters", "spellcheck": "false"}
    result = None
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            result = tickets.check_in(actor, event_id, form.code.data, form.door.data or None)
            form.code.data = ""  # ready for the next one; the door stays
        else:
            status = 400
            if form.csrf_token.errors:
                form.form_errors.append("This form expired. Please scan again.")
    counts = tickets.event_check_in_counts(actor, event_id)
    context = {
        "view": view,
        "form": form,
        "result": result,
        "tone_and_words": OUTCOME_WORDS.get(result.outcome) if result else None,
        "counts": counts,
    }
    return render_template("web/host/check_in.html", **context), status
