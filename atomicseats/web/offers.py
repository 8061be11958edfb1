"""Answering a waitlist offer (issue 13 point 2): the page behind the offer e-mail's link
(`names.OFFER_PAGE_PATH`, no sign-in: the signed, single-use token is the credential) and the
same page for a signed-in guest from My bookings (by request id, its own requests only).

A GET only shows the offer: mail scanners prefetch links, so nothing is ever answered by
opening one. Each of the three answers (accept all, accept some, decline) is a POST with a
CSRF token to the service the API calls (services/offers.py), which locks the event and checks
the offer again. A link that opens no offer (answered, ended, superseded, forged) is a 404
page saying so."""

from __future__ import annotations

from collections.abc import Callable

from flask import render_template
from flask_login import current_user, login_required

from atomicseats import names
from atomicseats.errors import Conflict, InvalidInput, ServiceBusy
from atomicseats.services import offers
from atomicseats.web import bp
from atomicseats.web.forms import OfferAnswerForm, show_service_errors

MY_OFFER_PATH = "/bookings/offers/<request_id>"
TOKEN_PATH = names.OFFER_PAGE_PATH.replace("{token}", "<token>")
ANSWER_OF_ACTION = {"all": "accepted", "some": "accepted", "decline": "declined"}


@bp.get(TOKEN_PATH)
def offer_page(token: str):
    return _render_offer(offers.offer_for_token(token), OfferAnswerForm(formdata=None))


@bp.post(TOKEN_PATH)
def answer_offer(token: str):
    return _answer(
        lambda: offers.offer_for_token(token),
        lambda answer, seats: offers.answer_by_token(token, answer, seats),
    )


@bp.get(MY_OFFER_PATH)
@login_required
def my_offer(request_id: str):
    return _render_offer(offers.offer_of_request(current_user.id, request_id), OfferAnswerForm(formdata=None))


@bp.post(MY_OFFER_PATH)
@login_required
def answer_my_offer(request_id: str):
    user_id = current_user.id
    return _answer(
        lambda: offers.offer_of_request(user_id, request_id),
        lambda answer, seats: offers.answer_by_owner(user_id, request_id, answer, seats),
    )


def _answer(
    view: Callable[[], offers.OfferView],
    answer_with: Callable[[str, int | None], offers.OfferAnswer],
):
    offer = view()  # NotFound (404 page) when it opens no offer: before anything else
    form = OfferAnswerForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            form.form_errors.append("This form expired. Please answer again.")
        elif form.action.errors:
            form.form_errors.append("Choose one of the answers below.")
        return _render_offer(offer, form, status=400)
    seats = form.seats.data if form.action.data == "some" else None
    try:
        result = answer_with(ANSWER_OF_ACTION[form.action.data], seats)
    except InvalidInput as error:  # seats out of the offer's range
        if not show_service_errors(form, error.errors):
            form.form_errors.append(error.message)
        return _render_offer(offer, form, status=400)
    except Conflict as error:  # its time is over, or sales ended: nothing changed
        return _render_offer(offer, form, status=409, refusal=REFUSAL_WORDS.get(error.code or "", error.message))
    except ServiceBusy as error:
        return _render_offer(offer, form, status=error.status, problem=error, headers=error.headers)
    return render_template("web/offer_answered.html", offer=offer, result=result)


REFUSAL_WORDS = {
    "offer_ended": "This offer has ended: its time to answer is over. The seats pass to the next in line.",
    "sales_ended": "Sales for this event have ended, so this offer can no longer be accepted.",
}


def _render_offer(
    offer: offers.OfferView,
    form: OfferAnswerForm,
    status: int = 200,
    refusal: str | None = None,
    problem: ServiceBusy | None = None,
    headers: dict | None = None,
):
    page = render_template("web/offer.html", offer=offer, form=form, refusal=refusal, problem=problem)
    return page, status, dict(headers or {})
