"""An example of every operation's request body and response `data`, by operationId, for the
OpenAPI document (api/openapi.py wraps each response in its envelope). Data, not rules: the
tests check each against its operation's schemas, so an example cannot drift from the API.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    response: object
    request: dict | None = None


# Made-up tokens (signed by no key) and a password the document shows: public on purpose.
_ACCESS_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIyIiwidHlwZSI6ImFjY2VzcyJ9.c2lnbmF0dXJl"  # nosec  # B105 (hard-coded password)
_REFRESH_TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIyIiwidHlwZSI6InJlZnJlc2gifQ.c2lnbmF0dXJl"  # nosec  # B105 (hard-coded password)
_PASSWORD = "correct horse battery staple"  # nosec  # B105 (hard-coded password)
_REQUEST_ID = "1af77cb1-e189-59e2-8ace-bb5e836cf4de"
_PAGE_END = {"hasMore": False, "nextCursor": None}
_TICKET_CODE = "7F3KQ-0M2ZC-9XH4D-RB6TW-1NPEA"

GUEST = {"id": 2, "username": "grace", "name": "Grace Hopper", "email": "grace@example.com", "role": "guest"}
HOST = {"id": 1, "username": "ada_host", "name": "Ada Lovelace", "email": "ada@example.com", "role": "host"}

EVENT = {
    "id": 7,
    "name": "Jazz at the Barbican",
    "description": "An evening of modern jazz.",
    "hostId": 1,
    "venue": "Barbican Hall, London",
    "startsAt": "2026-12-30T19:30:00+00:00",
    "endsAt": "2026-12-30T22:30:00+00:00",
    "salesEndAt": "2026-12-30T19:30:00+00:00",
    "capacity": 500,
    "reservedSeats": 498,
    "seatsLeft": 2,
    "price": 4500,
    "waitlistOpen": True,
    "waitlistMode": "auto",
    "offerWindowMinutes": 1440,
    "seatsOffered": 0,
    "waitlistLength": 0,
    "waitlistSeats": 0,
    "status": "published",
    "tiers": [
        {
            "id": 15,
            "name": "Standard",
            "price": 4500,
            "quota": 500,
            "reservedSeats": 498,
            "seatsLeft": 2,
            "salesStartAt": None,
            "salesEndAt": None,
            "onSale": True,
        }
    ],
}
TIERED_EVENT = {
    **EVENT,
    "price": 2500,
    "tiers": [
        {
            "id": 16,
            "name": "Early bird",
            "price": 2500,
            "quota": 100,
            "reservedSeats": 0,
            "seatsLeft": 100,
            "salesStartAt": None,
            "salesEndAt": "2026-12-01T00:00:00+00:00",
            "onSale": True,
        },
        {
            "id": 17,
            "name": "Standard",
            "price": 4500,
            "quota": 400,
            "reservedSeats": 0,
            "seatsLeft": 400,
            "salesStartAt": None,
            "salesEndAt": None,
            "onSale": True,
        },
    ],
    "reservedSeats": 0,
    "seatsLeft": 500,
}
EVENT_BRIEF = {key: EVENT[key] for key in ("name", "venue", "startsAt", "endsAt", "price")}
NEW_EVENT = {
    "name": "Jazz at the Barbican",
    "description": "An evening of modern jazz.",
    "venue": "Barbican Hall, London",
    "startsAt": "2026-12-30T19:30:00Z",
    "endsAt": "2026-12-30T22:30:00Z",
    "capacity": 500,
    "price": 4500,
}

REQUEST = {
    "requestId": _REQUEST_ID,
    "eventId": 7,
    "status": "partial",
    "seatsRequested": 4,
    "seatsConfirmed": 2,
    "seatsCancelled": 0,
    "seatsHeld": 2,
    "seatsWaitlisted": 2,
    "bookingIds": [311],
    "waitlistPosition": 1,
    "placeInLine": {"queue": "waitlist", "position": 1, "seatsAhead": 0},
    "reason": None,
    "createdAt": "2026-11-30T10:00:00.104000+00:00",
    "decidedAt": "2026-11-30T10:00:00.118000+00:00",
    "tierId": 15,
    "tierName": "Standard",
    "offer": None,
}
PENDING = {
    **REQUEST,
    "status": "pending",
    "seatsConfirmed": 0,
    "seatsHeld": 0,
    "seatsWaitlisted": 0,
    "bookingIds": [],
    "waitlistPosition": None,
    "placeInLine": {"queue": "pending", "position": 1201, "peopleAhead": 1200, "estimatedWaitS": 5},
    "decidedAt": None,
    "tierId": None,
    "tierName": None,
}
EVENT_STATS = {
    "eventId": 7,
    "name": "Jazz at the Barbican",
    "capacity": 500,
    "reservedSeats": 498,
    "utilisation": 0.996,
    "revenue": 2241000,
    "waitlistLength": 1,
    "waitlistSeats": 2,
    "checkedIn": 312,
}

OPERATIONS: dict[str, Example] = {
    "register": Example(
        request={
            "username": "grace",
            "name": "Grace Hopper",
            "email": "grace@example.com",
            "password": _PASSWORD,
            "role": "guest",
        },
        response=GUEST,
    ),
    "login": Example(
        request={"username": "grace", "password": _PASSWORD},
        response={"user": GUEST, "accessToken": _ACCESS_TOKEN, "refreshToken": _REFRESH_TOKEN},
    ),
    "refresh": Example(
        request={"refreshToken": _REFRESH_TOKEN},
        response={"user": GUEST, "accessToken": _ACCESS_TOKEN, "refreshToken": _REFRESH_TOKEN},
    ),
    "logout": Example(response={}),
    "bookingHistory": Example(
        response={
            "items": [
                {
                    "id": 311,
                    "eventId": 7,
                    "event": EVENT_BRIEF,
                    "numberOfSeats": 2,
                    "cost": 9000,
                    "status": "confirmed",
                    "createdAt": "2026-11-30T10:00:00.118000+00:00",
                    "cancelledAt": None,
                    "requestId": _REQUEST_ID,
                    "requestStatus": "partial",
                    "tierId": 15,
                    "tierName": "Standard",
                }
            ],
            "pageInfo": _PAGE_END,
        }
    ),
    "listEvents": Example(
        response={"items": [EVENT], "pageInfo": {"hasMore": True, "nextCursor": "eyJzdGFydHNfYXQiOi4uLn0"}}
    ),
    "getEvent": Example(response=EVENT),
    "createEvent": Example(
        request={
            **{key: value for key, value in NEW_EVENT.items() if key != "price"},
            "tiers": [
                {"name": "Early bird", "price": 2500, "quota": 100, "salesEndAt": "2026-12-01T00:00:00Z"},
                {"name": "Standard", "price": 4500, "quota": 400},
            ],
        },
        response=TIERED_EVENT,
    ),
    "updateEvent": Example(  # its one tier covers the whole capacity, so it follows it
        request={"id": 7, "capacity": 600},
        response={
            **EVENT,
            "capacity": 600,
            "seatsLeft": 102,
            "tiers": [{**EVENT["tiers"][0], "quota": 600, "seatsLeft": 102}],  # type: ignore[index]
        },
    ),
    "deleteEvent": Example(request={"id": 7}, response={**EVENT, "status": "deleted", "reservedSeats": 0}),
    "closeWaitlist": Example(response={**EVENT, "waitlistOpen": False}),
    "reopenWaitlist": Example(response=EVENT),
    "roster": Example(
        response={
            "event": EVENT,
            "bookings": [
                {"id": 311, "userId": 2, "numberOfSeats": 2, "cost": 9000, "createdAt": "2026-11-30T10:00:00+00:00"}
            ],
            "waitlist": [
                {
                    "id": 12,
                    "userId": 2,
                    "seatsWaitlisted": 2,
                    "seatsRemaining": 2,
                    "createdAt": "2026-11-30T10:00:00+00:00",
                }
            ],
            "pageInfo": _PAGE_END,
        }
    ),
    "bookSeats": Example(
        request={"eventId": 7, "numberOfSeats": 4},
        response={
            **PENDING,
            # just accepted: on its way through Kafka, not counted into the event's line yet
            "placeInLine": {"queue": "pending", "position": None, "peopleAhead": None, "estimatedWaitS": None},
            "statusUrl": f"/api/bookings/requests/{_REQUEST_ID}",
        },
    ),
    "cancelBooking": Example(
        request={"eventId": 7, "bookingId": 311},
        response={
            "eventId": 7,
            "seatsFreed": 2,
            "bookingsCancelled": 1,
            "waitlistEntriesCancelled": 0,
            "seatsWithdrawn": 0,
        },
    ),
    "requestStatus": Example(response=REQUEST),
    "answerOffer": Example(
        request={"answer": "accepted", "seats": 2},
        response={
            "requestId": _REQUEST_ID,
            "eventId": 7,
            "answer": "accepted",
            "seatsConfirmed": 2,
            "bookingId": 312,
            "seatsStillWaiting": 0,
        },
    ),
    "leaveWaitlist": Example(
        response={
            **REQUEST,
            "seatsWaitlisted": 0,
            "waitlistPosition": None,
            "placeInLine": None,
            "reason": "withdrawn",
            "seatsWithdrawn": 2,
        }
    ),
    "bookingTickets": Example(
        response={
            "bookingId": 311,
            "eventId": 7,
            "event": {key: EVENT[key] for key in ("name", "venue", "startsAt", "endsAt")},
            "status": "confirmed",
            "isValid": True,
            "tickets": [
                {"seatNo": 1, "code": _TICKET_CODE, "checkedInAt": None},
                {"seatNo": 2, "code": "7F3KQ-1A8VD-CM40S-Z2HXJ-6GRYB", "checkedInAt": None},
            ],
            "calendarUrl": "/api/bookings/311/tickets.ics",
        }
    ),
    "bookingCalendar": Example(
        response="BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//AtomicSeats//Tickets//EN\r\n"
        "BEGIN:VEVENT\r\nSUMMARY:Jazz at the Barbican\r\nDTSTART:20261230T193000Z\r\n"
        "DTEND:20261230T223000Z\r\nUID:booking-311@atomicseats.local\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ),
    "checkIn": Example(
        request={"code": _TICKET_CODE, "door": "North door"},
        response={
            "outcome": "admitted",
            "eventId": 7,
            "bookingId": 311,
            "seatNo": 1,
            "seats": 2,
            "holderName": "Grace Hopper",
            "checkedInAt": "2026-12-30T19:02:11.250000+00:00",
            "checkedInBy": "Ada Lovelace",
            "door": "North door",
            "checkedIn": 1,
            "ticketsTotal": 498,
        },
    ),
    "platformAnalytics": Example(
        response={
            "totals": {
                "users": 1204,
                "guests": 1180,
                "hosts": 22,
                "admins": 2,
                "events": 48,
                "bookings": 9120,
                "ticketsCheckedIn": 6200,
            },
            "capacityUtilisation": 0.82,
            "revenue": 41040000,
            "topEvents": [EVENT_STATS],
            "events": [EVENT_STATS],
            "pageInfo": _PAGE_END,
            "requestOutcomes": {"confirmed": 8800, "partial": 120, "waitlisted": 310, "rejected": 95},
        }
    ),
    "listUsers": Example(
        response={"items": [{**GUEST, "createdAt": "2026-11-01T09:00:00+00:00"}], "pageInfo": _PAGE_END}
    ),
    "changeRole": Example(
        request={"role": "host"},
        response={
            "user": {**GUEST, "role": "host", "createdAt": "2026-11-01T09:00:00+00:00"},
            "previousRole": "guest",
            "sessionsEnded": 1,
        },
    ),
    "liveness": Example(response={"status": "ok"}),
    "readiness": Example(
        response={"status": "ready", "checks": {"database": True, "migrations": True, "redis": True, "kafka": True}}
    ),
    "metrics": Example(
        response="# HELP atomicseats_booking_requests_accepted_total Booking requests accepted\n"
        "# TYPE atomicseats_booking_requests_accepted_total counter\n"
        "atomicseats_booking_requests_accepted_total 1024.0\n"
    ),
}
