"""The pages' forms: shape only (required, lengths, types), with a CSRF token on every form
that changes something (Flask-WTF). The rules themselves (username pattern, password
strength, seat limits, clashes) are the services': their field errors are shown next to
the field they name (`show_service_errors`)."""

from __future__ import annotations

import uuid

from flask import request
from flask_wtf import FlaskForm
from marshmallow import ValidationError as ShapeError
from marshmallow import validate as shape
from wtforms import (
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SearchField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import UUID, AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import HiddenInput

from atomicseats.domain import accounts, limits

NAME_LENGTH_MAX = 100  # the users.name column


class Email:
    """The API's e-mail check (marshmallow's), so both accept the same addresses."""

    _check = shape.Email()

    def __call__(self, _form, field) -> None:
        try:
            self._check(field.data or "")
        except ShapeError as error:
            raise ValidationError("Enter an e-mail address like name@example.com.") from error


class LoginForm(FlaskForm):
    login = StringField("Username or e-mail", validators=[DataRequired(), Length(max=limits.EMAIL_LENGTH_MAX)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=limits.PASSWORD_LENGTH_MAX)])
    next = HiddenField()


class RegisterForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[DataRequired(), Length(max=limits.USERNAME_LENGTH_MAX)],
        description=accounts.USERNAME_RULE.capitalize(),
    )
    name = StringField("Your name", validators=[DataRequired(), Length(max=NAME_LENGTH_MAX)])
    email = EmailField("E-mail", validators=[DataRequired(), Email(), Length(max=limits.EMAIL_LENGTH_MAX)])
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=limits.PASSWORD_LENGTH_MAX)],
        description=accounts.PASSWORD_RULE.capitalize(),
    )
    role = RadioField(
        "I want to",
        choices=[SelectChoice("guest", "Book seats (guest)"), SelectChoice("host", "Publish events (host)")],
        default="guest",
        validators=[InputRequired()],
    )


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=limits.PASSWORD_LENGTH_MAX)]
    )
    password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(max=limits.PASSWORD_LENGTH_MAX)],
        description=accounts.PASSWORD_RULE.capitalize(),
    )


class BookForm(FlaskForm):
    seats = IntegerField("Seats", validators=[InputRequired(), NumberRange(min=1)], default=1)
    # The event's tiers on sale, set per event by the page (`tier_choices`); "" lets the rule
    # choose (the cheapest tier on sale that has the seats). Shown only for a tiered event.
    tier_id = SelectField("Price tier", choices=[SelectChoice("", "Cheapest available")], default="")
    # A fresh key per rendered form: a double submit, or a retry after a 503, is one request.
    idempotency_key = HiddenField(validators=[DataRequired(), UUID()], default=lambda: str(uuid.uuid4()))


class LogoutForm(FlaskForm):
    pass


ROW_ID_MAX = 2**63 - 1  # ids are BIGINTs


class CancelForm(FlaskForm):
    """Cancel one booking (`booking_id`) or everything a guest holds for an event (`cancel_all`):
    the confirmation page's form, hidden fields only."""

    event_id = IntegerField(widget=HiddenInput(), validators=[InputRequired(), NumberRange(min=1, max=ROW_ID_MAX)])
    booking_id = IntegerField(widget=HiddenInput(), validators=[Optional(), NumberRange(min=1, max=ROW_ID_MAX)])
    scope = HiddenField(validators=[AnyOf(("one", "all"))], default="one")

    @property
    def is_cancel_all(self) -> bool:
        return self.scope.data == "all"

    def validate(self, extra_validators=None) -> bool:
        """One booking needs its id (an inline validator would not run: Optional stops the chain)."""
        if not super().validate(extra_validators):
            return False
        if self.scope.data == "one" and self.booking_id.data is None:
            self.booking_id.errors = ["Choose the booking to cancel."]
            return False
        return True


class LeaveWaitlistForm(FlaskForm):
    pass


class OfferAnswerForm(FlaskForm):
    """An answer to a waitlist offer: accept all of it, accept `seats` of it, or decline (one
    form per button on the offer page; the services check the seats against the offer)."""

    action = HiddenField(validators=[AnyOf(("all", "some", "decline"))])
    seats = IntegerField("Seats", validators=[Optional(), NumberRange(min=1, max=limits.CAPACITY_SEATS_MAX)])

    def validate(self, extra_validators=None) -> bool:
        """Accepting some needs how many (an inline validator would not run: Optional stops the chain)."""
        if not super().validate(extra_validators):
            return False
        if self.action.data == "some" and self.seats.data is None:
            self.seats.errors = ["Enter how many of the offered seats you take."]
            return False
        return True


class SearchForm(FlaskForm):
    """The catalogue's filters: a GET form (bookmarkable), so no CSRF token."""

    class Meta:
        csrf = False

    q = SearchField("Search by name or venue", validators=[Optional(), Length(max=limits.EVENT_SEARCH_CHARS_MAX)])
    starts_from = DateField("From", validators=[Optional()])
    starts_to = DateField("To", validators=[Optional()])
    cursor = HiddenField(validators=[Optional(), Length(max=200)])


def show_service_errors(form: FlaskForm, errors: dict | None, aliases: dict[str, str] | None = None) -> bool:
    """Put a service's field errors on the form's fields (by name, or through `aliases`
    for the API's wire names); True when at least one landed on a field."""
    placed = False
    for name, messages in (errors or {}).items():
        field = getattr(form, (aliases or {}).get(name, name), None)
        if field is None or not hasattr(field, "errors"):
            continue
        field.errors = [*list(field.errors or ()), *messages]
        placed = True
    return placed


def explain_csrf(form) -> None:
    """A POST whose CSRF token failed says so above the form (the token expired with the session)."""
    if request.method == "POST" and getattr(form, "csrf_token", None) is not None and form.csrf_token.errors:
        form.form_errors.append("This form expired. Please submit it again.")
