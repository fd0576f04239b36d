"""Contact phones (a booking's contact_phone, an organisation's secretary_phone) are personal
data: only the booking's organisation, its station's hosts and admins see them, on pages and in
exports and calendar feeds. Each route is requested as anonymous, secretary of the booking's
organisation (A) and of another (B), host of the booking's station (X) and of another (Y), and
an admin; the table says what each must get."""
from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from blueprints.booking.models import BookingStatus
from blueprints.feeds import services as feed_services
from blueprints.host import checkin

from . import factories

PHONE = "13812345678"  # the confirmed booking's contact
PENDING_PHONE = "13811112222"  # a booking waiting for approval
SECRETARY_PHONE_A = "13987654321"
SECRETARY_PHONE_UNCOVERED = "13600002222"  # an organisation with no booking (admin coverage export)

ROLES = ["anonymous", "secretary_a", "secretary_b", "host_x", "host_y", "admin"]


@pytest.fixture
def scene(client):
    station_x, station_y = factories.create_station(), factories.create_station()
    package = factories.create_package(stations=[station_x, station_y])
    slot = factories.create_slot(package=package, station=station_x)
    other_slot = factories.create_slot(package=package, station=station_x)
    org_a = factories.create_organisation(secretary_phone=SECRETARY_PHONE_A)
    org_b = factories.create_organisation(secretary_phone="13700001111")
    factories.create_organisation(secretary_phone=SECRETARY_PHONE_UNCOVERED)
    booking = factories.create_booking(slot=slot, organisation=org_a, contact_phone=PHONE)
    pending = factories.create_booking(slot=other_slot, organisation=org_a, contact_phone=PENDING_PHONE,
                                       status=BookingStatus.PENDING)
    makers = {  # users are made on first use: hashing a password is the slow part of these tests
        "secretary_a": lambda: factories.create_secretary(organisation=org_a),
        "secretary_b": lambda: factories.create_secretary(organisation=org_b),
        "host_x": lambda: factories.create_host(stations=[station_x]),
        "host_y": lambda: factories.create_host(stations=[station_y]),
        "admin": lambda: factories.create_admin(),
    }
    return {"slot": slot, "booking": booking, "pending": pending, "users": _Users(makers),
            "station_x": station_x}


class _Users(dict):
    def __init__(self, makers):
        super().__init__()
        self.makers = makers

    def __missing__(self, role):
        self[role] = self.makers[role]()
        return self[role]


def _as(client, scene, role):
    if role != "anonymous":
        user = scene["users"][role]
        response = client.post("/login", data={"username": user.username, "password": factories.PASSWORD})
        assert response.status_code == 302


def _text(response) -> str:
    if response.mimetype.endswith("spreadsheetml.sheet"):
        workbook = load_workbook(io.BytesIO(response.get_data()))
        return " ".join(str(cell) for sheet in workbook for row in sheet.iter_rows(values_only=True)
                        for cell in row if cell is not None)
    return response.get_data(as_text=True).replace("\r\n ", "")  # unfold iCalendar lines


SEEN, HIDDEN = True, False
LOGIN = (302, HIDDEN)
# route -> role -> (status, phone shown)
MATRIX = {
    "booking detail": ("/bookings/{booking}", PHONE, {
        "anonymous": LOGIN, "secretary_a": (200, SEEN), "secretary_b": (404, HIDDEN),
        "host_x": (200, SEEN), "host_y": (404, HIDDEN), "admin": (200, SEEN)}),
    "booking calendar file": ("/bookings/{booking}.ics", PHONE, {
        "anonymous": LOGIN, "secretary_a": (200, SEEN), "secretary_b": (404, HIDDEN),
        "host_x": (200, SEEN), "host_y": (404, HIDDEN), "admin": (404, HIDDEN)}),
    "roster page": ("/host/slots/{slot}/roster", PHONE, {
        "anonymous": LOGIN, "secretary_a": (403, HIDDEN), "secretary_b": (403, HIDDEN),
        "host_x": (200, SEEN), "host_y": (404, HIDDEN), "admin": (403, HIDDEN)}),
    "roster CSV": ("/host/slots/{slot}/roster.csv", PHONE, {
        "anonymous": LOGIN, "secretary_a": (403, HIDDEN), "secretary_b": (403, HIDDEN),
        "host_x": (200, SEEN), "host_y": (404, HIDDEN), "admin": (403, HIDDEN)}),
    "roster XLSX": ("/host/slots/{slot}/roster.xlsx", PHONE, {
        "anonymous": LOGIN, "secretary_a": (403, HIDDEN), "secretary_b": (403, HIDDEN),
        "host_x": (200, SEEN), "host_y": (404, HIDDEN), "admin": (403, HIDDEN)}),
    "approvals": ("/host/approvals", PENDING_PHONE, {
        "anonymous": LOGIN, "secretary_a": (403, HIDDEN), "secretary_b": (403, HIDDEN),
        "host_x": (200, SEEN), "host_y": (200, HIDDEN), "admin": (403, HIDDEN)}),
    # Whoever runs the station checks in (User.runs_station), as on the booking page: admins too.
    "check-in code": ("/host/check-in/{token}", PHONE, {
        "anonymous": LOGIN, "secretary_a": (403, HIDDEN), "secretary_b": (403, HIDDEN),
        "host_x": (200, SEEN), "host_y": (403, HIDDEN), "admin": (200, SEEN)}),
    "slot page": ("/slots/{slot}", PHONE, {
        "anonymous": (200, HIDDEN), "secretary_a": (200, HIDDEN), "secretary_b": (200, HIDDEN),
        "host_x": (200, HIDDEN), "host_y": (200, HIDDEN), "admin": (200, HIDDEN)}),
    "slot page (secretary's phone)": ("/slots/{slot}", SECRETARY_PHONE_A, {
        "anonymous": (200, HIDDEN), "secretary_b": (200, HIDDEN), "host_x": (200, HIDDEN),
        "host_y": (200, HIDDEN), "admin": (200, HIDDEN)}),
    "menu": ("/", PHONE, {role: (200, HIDDEN) for role in ROLES}),
    "admin uncovered export": ("/admin/stats/uncovered.xlsx", SECRETARY_PHONE_UNCOVERED, {
        "anonymous": LOGIN, "secretary_a": (403, HIDDEN), "secretary_b": (403, HIDDEN),
        "host_x": (403, HIDDEN), "host_y": (403, HIDDEN), "admin": (200, SEEN)}),
    "host uncovered export": ("/host/stats/uncovered.xlsx", SECRETARY_PHONE_UNCOVERED, {
        "anonymous": LOGIN, "secretary_a": (403, HIDDEN), "host_x": (404, HIDDEN), "admin": (403, HIDDEN)}),
}
CASES = [(route, role) for route, (_url, _phone, table) in MATRIX.items() for role in table]


@pytest.mark.parametrize("route,role", CASES, ids=[f"{route}-{role}" for route, role in CASES])
def test_contact_phone_visibility(client, scene, route, role):
    url, phone, table = MATRIX[route]
    expected_status, shown = table[role]
    _as(client, scene, role)
    token = checkin.checkin_token(scene["booking"])
    response = client.get(url.format(booking=scene["booking"].id, slot=scene["slot"].id, token=token))
    assert response.status_code == expected_status, response.get_data(as_text=True)[:500]
    assert (phone in _text(response)) is shown


def test_every_role_fragment_of_the_roster_keeps_the_rule_host_x_and_host_y(client, scene, htmx_headers):
    url = f"/host/slots/{scene['slot'].id}/roster"
    _as(client, scene, "host_x")
    fragment = client.get(url, headers=htmx_headers)
    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True)
    assert PHONE in fragment.get_data(as_text=True)
    client.post("/logout")
    _as(client, scene, "host_y")
    assert client.get(url, headers=htmx_headers).status_code == 404


def _feed_text(client, token) -> str:
    response = client.get(f"/feeds/{token}.ics")
    assert response.status_code == 200
    return _text(response)


def test_calendar_feeds_carry_phones_only_to_the_organisation_and_the_station_hosts(client, scene):
    users = scene["users"]
    feeds = {}
    for role in ("secretary_a", "secretary_b", "host_x", "host_y"):
        for subscription in feed_services.subscriptions_for(users[role]):
            feeds[(role, subscription.kind if isinstance(subscription.kind, str) else subscription.kind.value)] \
                = subscription.token
    factories.db.session.commit()
    texts = {key: _feed_text(client, token) for key, token in feeds.items()}
    assert PHONE in texts[("secretary_a", "organisation")]
    assert PHONE in texts[("host_x", "station")]
    for key, text in texts.items():
        if key not in {("secretary_a", "organisation"), ("host_x", "station")}:
            assert PHONE not in text and PENDING_PHONE not in text, key
    # The public feed of the booking's own station has no personal data either.
    public = [t for (role, kind), t in feeds.items() if role == "host_x" and kind not in ("station",)]
    assert public and all(PHONE not in _feed_text(client, t) for t in public)


def test_a_host_who_leaves_the_station_loses_the_phones_in_the_feed(client, scene):
    host = scene["users"]["host_x"]
    token = next(s.token for s in feed_services.subscriptions_for(host)
                 if getattr(s.kind, "value", s.kind) == "station")
    factories.db.session.commit()
    assert PHONE in _feed_text(client, token)
    host.stations = []
    factories.db.session.commit()
    assert client.get(f"/feeds/{token}.ics").status_code == 404
