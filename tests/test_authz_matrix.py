"""Authorisation matrix: every route of the URL map × every kind of visitor.

Each route (rule and method, except ``static``) is requested as an anonymous visitor, the
secretary of organisation A, the secretary of B, the host of station X, the host of Y and an
administrator, with URL parameters taken from one small dataset (a booking of A at station X, a
slot at X, …). The answer's status class must match the table ``ROUTES`` below. A request that
is refused (anything but OK or DONE) must not change a single row: the whole database is
compared before and after.

A route in the URL map without an entry fails ``test_every_route_has_an_entry``: add it to
``ROUTES`` after reading its code. An entry whose route is gone fails
``test_every_entry_has_a_route``.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from blueprints.quotas.models import Quota, QuotaPeriod
from blueprints.booking.models import BookingStatus
from blueprints.catalog.models import Category, SlotStatus
from blueprints.core import clock
from blueprints.core.extensions import db, login_manager

from . import factories as f

ROLES = ("anon", "sec_a", "sec_b", "host_x", "host_y", "admin")

# Status classes of an answer.
OK = "OK"  # 2xx
DONE = "DONE"  # 3xx to somewhere other than the login page (post/redirect/get after success)
LOGIN = "LOGIN"  # 3xx to the login page
BAD = "BAD"  # 400
FORBIDDEN = "FORBIDDEN"  # 403
NOT_FOUND = "NOT_FOUND"  # 404
CONFLICT = "CONFLICT"  # 409
INVALID = "INVALID"  # 422
SUCCESS = (OK, DONE)


def classify(response) -> str:
    code = response.status_code
    if 300 <= code < 400:
        return LOGIN if urlsplit(response.headers.get("Location", "")).path == "/login" else DONE
    if 200 <= code < 300:
        return OK
    return {400: BAD, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT, 422: INVALID}.get(code, str(code))


@dataclass(frozen=True)
class Entry:
    expected: dict[str, str]
    # URL parameters other than the defaults: {"booking_id": "attended"} names a World attribute.
    args: dict[str, str] = field(default_factory=dict)
    # Form data for POST (valid-looking, so that the right role succeeds).
    data: dict[str, str] = field(default_factory=dict)


def row(anon, sec_a, sec_b, host_x, host_y, admin, *, args=None, data=None) -> Entry:
    return Entry(dict(zip(ROLES, (anon, sec_a, sec_b, host_x, host_y, admin))), args or {}, data or {})


def everyone(status, **kwargs) -> Entry:
    return row(*(status,) * 6, **kwargs)


def admin_only(status, **kwargs) -> Entry:
    """District administration: anonymous visitors log in, secretaries and hosts get 403."""
    return row(LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, status, **kwargs)


STATION_FORM = {"name": "矩阵测试站X", "address": "闵行区申长路1号", "subdistrict": "新虹街道", "phone": "021-64000000",
                "speciality": "", "description": "", "requires_approval": "", "booking_cutoff_hours": "24",
                "cancel_deadline_hours": "24", "active": "y", "hosts": "{host_x}"}
CAMPAIGN_FORM = {"name": "矩阵测试主题活动", "starts_on": "{day_in_0}", "ends_on": "{day_in_40}", "description": "",
                 "active": "y"}
PACKAGE_FORM = {"category": "theory", "title": "矩阵测试服务包", "summary": "测试", "description": "",
                "duration_minutes": "120", "min_group_size": "1", "max_group_size": "50", "campaign": "{campaign}",
                "stations": "{station_x}", "active": "y"}
QUOTA_FORM = {"organisation": "矩阵测试B支部", "category": "practice", "period": "month", "max_bookings": "3"}
ORGANISATION_FORM = {"name": "矩阵测试C支部", "kind": "branch", "parent": "", "subdistrict": "新虹街道",
                     "member_count": "20", "secretary_name": "赵书记", "secretary_phone": "13900000001", "active": "y"}
ACCOUNT_FORM = {"display_name": "矩阵新书记", "role": "secretary", "organisation": "矩阵测试B支部", "phone": "",
                "email": ""}


# Who may do what. Columns: anonymous, secretary of A, secretary of B, host of X, host of Y,
# admin. The default dataset: booking = A's pending booking at station X; slot = a future slot
# at X; package = a package offered at X and Y; feed token = A's branch feed; check-in token =
# A's confirmed booking at X today.
ROUTES: dict[tuple[str, str], Entry] = {
    # -- public pages ------------------------------------------------------------------------
    ("GET", "/"): everyone(OK),
    # The date-first calendar: the menu's open slots by day, for everyone who sees the menu.
    ("GET", "/calendar"): everyone(OK),
    ("GET", "/robots.txt"): everyone(OK),
    ("GET", "/favicon.ico"): everyone(DONE),  # to /static/favicon.svg
    ("GET", "/healthz"): everyone(OK),
    ("GET", "/packages/<int:package_id>"): everyone(OK),
    ("GET", "/slots/<int:slot_id>"): everyone(OK),
    # Without htmx the live element redirects to the slot page.
    ("GET", "/slots/<int:slot_id>/places"): everyone(DONE),
    ("POST", "/lang"): everyone(DONE, data={"lang": "en"}),
    # A feed's secret token is its credential: the same answer whoever asks.
    ("GET", "/feeds/<token>.ics"): everyone(OK),
    # -- accounts ----------------------------------------------------------------------------
    ("GET", "/login"): everyone(OK),
    ("POST", "/login"): everyone(DONE, data={"username": "matrix_sec_a", "password": f.PASSWORD}),
    ("POST", "/logout"): everyone(DONE),
    ("GET", "/account/password"): row(LOGIN, OK, OK, OK, OK, OK),
    ("POST", "/account/password"): row(
        LOGIN, DONE, DONE, DONE, DONE, DONE,
        data={"current_password": f.PASSWORD, "new_password": "a new long passphrase 2026",
              "confirm_password": "a new long passphrase 2026"}),
    # -- booking (secretaries) ---------------------------------------------------------------
    # A already holds a booking of the slot: it is sent to that booking; B books.
    ("POST", "/slots/<int:slot_id>/book"): row(
        LOGIN, DONE, DONE, FORBIDDEN, FORBIDDEN, FORBIDDEN,
        data={"headcount": "5", "contact_name": "李书记", "contact_phone": "13800000000", "note": ""}),
    ("GET", "/bookings"): row(LOGIN, OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN),
    ("GET", "/bookings/<int:booking_id>"): row(LOGIN, OK, NOT_FOUND, OK, NOT_FOUND, OK),
    # The printable confirmation: the same visitors as the booking page (services.may_see).
    ("GET", "/bookings/<int:booking_id>/confirmation"): row(LOGIN, OK, NOT_FOUND, OK, NOT_FOUND, OK),
    ("POST", "/bookings/<int:booking_id>/headcount"): row(
        LOGIN, DONE, NOT_FOUND, FORBIDDEN, FORBIDDEN, FORBIDDEN, data={"headcount": "12"}),
    # The branch, its station's host and an admin may cancel.
    ("POST", "/bookings/<int:booking_id>/cancel"): row(
        LOGIN, DONE, NOT_FOUND, DONE, NOT_FOUND, DONE, data={"reason": "时间冲突"}),
    # Moving a booking (改期): only its own organisation's secretaries; hosts and admins get 404 like B.
    ("GET", "/bookings/<int:booking_id>/move"): row(LOGIN, OK, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND),
    ("POST", "/bookings/<int:booking_id>/move"): row(
        LOGIN, DONE, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, data={"slot_id": "{slot_y}"}),
    # Feedback after the day: only the booking organisation's secretary rates its attended session;
    # the station's host and admins (who may see the booking) get 404 like another branch.
    ("POST", "/bookings/<int:booking_id>/feedback"): row(
        LOGIN, DONE, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, args={"booking_id": "attended"},
        data={"rating": "5", "comment": "讲解很好"}),
    ("GET", "/notifications"): row(LOGIN, OK, OK, OK, OK, OK),
    ("POST", "/notifications/read"): row(LOGIN, DONE, DONE, DONE, DONE, DONE),
    # -- calendar feeds ----------------------------------------------------------------------
    # Admins are not offered the single-booking calendar (they have no calendar at all).
    ("GET", "/bookings/<int:booking_id>.ics"): row(LOGIN, OK, NOT_FOUND, OK, NOT_FOUND, NOT_FOUND),
    ("GET", "/account/calendar"): row(LOGIN, OK, OK, OK, OK, FORBIDDEN),
    # feed = "organisation-<A>": only A's secretary may reset it; others get 404.
    ("POST", "/account/calendar/reset"): row(
        LOGIN, DONE, NOT_FOUND, NOT_FOUND, NOT_FOUND, FORBIDDEN, data={"feed": "organisation-{org_a}"}),
    # -- station hosts -----------------------------------------------------------------------
    ("GET", "/host/"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    ("GET", "/host/approvals"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    # Each host's calendar shows their own stations' slots (host_y: an empty week, still OK).
    ("GET", "/host/calendar"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    ("POST", "/host/bookings/<int:booking_id>/approve"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN),
    ("POST", "/host/bookings/<int:booking_id>/decline"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN, data={"reason": "当天场地检修"}),
    # Bulk approvals follow the single approve: hosts only; ids of no booking of one's own stations
    # are "not found" (Y's host sends only X's booking).
    ("POST", "/host/approvals/bulk"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN, data={"booking_ids": "{booking}", "action": "approve"}),
    # Only for attended bookings: the branch, its station's host and admins.
    ("GET", "/host/bookings/<int:booking_id>/sign-in-sheet.xlsx"): row(
        LOGIN, OK, NOT_FOUND, OK, NOT_FOUND, OK, args={"booking_id": "attended"}),
    # The ratings of the host's own stations (the page narrows with ?station=, 404 for another's).
    ("GET", "/host/feedback"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    # Whoever runs the station checks in (``User.runs_station``): its hosts and administrators.
    ("GET", "/host/check-in/<token>"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN, OK),
    ("POST", "/host/check-in/<token>"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, FORBIDDEN, DONE, data={"attended_headcount": "8"}),
    ("GET", "/host/slots/new"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    # station = X: host_y may not create slots at X (its form has no such choice).
    ("POST", "/host/slots/new"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, INVALID, FORBIDDEN,
        data={"station": "{station_x}", "package": "{package}", "day": "{day_in_10}", "start": "09:00",
              "end": "11:00", "capacity": "20", "max_groups": "", "note": ""}),
    ("GET", "/host/series/new"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    ("POST", "/host/series/new"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, INVALID, FORBIDDEN,
        data={"station": "{station_x}", "package": "{package}", "kind": "weekly", "weekdays": "2",
              "week_of_month": "1", "weekday": "0", "first_day": "{day_in_10}", "last_day": "{day_in_40}",
              "times": "09:00", "duration_minutes": "120", "capacity": "20", "max_groups": "", "note": "",
              "action": "save"}),
    ("GET", "/host/slots/<int:slot_id>"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, NOT_FOUND, FORBIDDEN),
    ("POST", "/host/slots/<int:slot_id>/edit"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN,
        data={"day": "{day_in_7}", "start": "14:00", "end": "16:00", "capacity": "25", "max_groups": "",
              "note": "改到下午"}),
    ("POST", "/host/slots/<int:slot_id>/capacity"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN, data={"capacity": "40"}),
    ("POST", "/host/slots/<int:slot_id>/close"): row(LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN),
    ("POST", "/host/slots/<int:slot_id>/reopen"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN, args={"slot_id": "closed_slot"}),
    ("POST", "/host/slots/<int:slot_id>/cancel"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN, data={"reason": "场地临时关闭"}),
    ("GET", "/host/slots/<int:slot_id>/roster"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, NOT_FOUND, FORBIDDEN,
                                                         args={"slot_id": "past_slot"}),
    ("GET", "/host/slots/<int:slot_id>/roster.csv"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, NOT_FOUND, FORBIDDEN,
                                                         args={"slot_id": "past_slot"}),
    ("GET", "/host/slots/<int:slot_id>/roster.xlsx"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, NOT_FOUND, FORBIDDEN,
                                                         args={"slot_id": "past_slot"}),
    ("POST", "/host/slots/<int:slot_id>/no-shows"): row(
        LOGIN, FORBIDDEN, FORBIDDEN, DONE, NOT_FOUND, FORBIDDEN, args={"slot_id": "past_slot"}),
    ("GET", "/host/slots/<int:slot_id>/check-in"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, NOT_FOUND, FORBIDDEN),
    # -- statistics --------------------------------------------------------------------------
    ("GET", "/host/stats"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    ("GET", "/host/stats/<table>.xlsx"): row(LOGIN, FORBIDDEN, FORBIDDEN, OK, OK, FORBIDDEN),
    ("GET", "/admin/stats"): row(LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    ("GET", "/admin/stats/<table>.xlsx"): row(LOGIN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    # -- district administration: catalogue (blueprints/catalogue) ---------------------------
    ("GET", "/admin/"): admin_only(OK),
    ("GET", "/admin/audit"): admin_only(OK),
    ("GET", "/admin/stations"): admin_only(OK),
    ("GET", "/admin/stations/new"): admin_only(OK),
    ("POST", "/admin/stations/new"): admin_only(DONE, data={**STATION_FORM, "name": "矩阵新站"}),
    ("GET", "/admin/stations/<int:station_id>"): admin_only(OK),
    ("POST", "/admin/stations/<int:station_id>"): admin_only(DONE, data=STATION_FORM),
    ("POST", "/admin/stations/<int:station_id>/active"): admin_only(DONE, data={"active": "0"}),
    # Still referred to: the admin is sent back with a message to deactivate instead.
    ("POST", "/admin/stations/<int:station_id>/delete"): admin_only(DONE),
    ("GET", "/admin/campaigns"): admin_only(OK),
    ("GET", "/admin/campaigns/new"): admin_only(OK),
    ("POST", "/admin/campaigns/new"): admin_only(DONE, data={**CAMPAIGN_FORM, "name": "矩阵新主题活动"}),
    ("GET", "/admin/campaigns/<int:campaign_id>"): admin_only(OK),
    ("POST", "/admin/campaigns/<int:campaign_id>"): admin_only(DONE, data=CAMPAIGN_FORM),
    ("POST", "/admin/campaigns/<int:campaign_id>/active"): admin_only(DONE, data={"active": "0"}),
    ("POST", "/admin/campaigns/<int:campaign_id>/delete"): admin_only(DONE),
    ("GET", "/admin/packages"): admin_only(OK),
    ("GET", "/admin/packages/new"): admin_only(OK),
    ("POST", "/admin/packages/new"): admin_only(DONE, data=PACKAGE_FORM),
    ("GET", "/admin/packages/<int:package_id>"): admin_only(OK),
    ("POST", "/admin/packages/<int:package_id>"): admin_only(DONE, data=PACKAGE_FORM),
    ("POST", "/admin/packages/<int:package_id>/active"): admin_only(DONE, data={"active": "0"}),
    ("POST", "/admin/packages/<int:package_id>/delete"): admin_only(DONE),
    ("GET", "/admin/quotas"): admin_only(OK),
    ("GET", "/admin/quotas/new"): admin_only(OK),
    ("POST", "/admin/quotas/new"): admin_only(DONE, data=QUOTA_FORM),
    ("GET", "/admin/quotas/<int:quota_id>"): admin_only(OK),
    ("POST", "/admin/quotas/<int:quota_id>"): admin_only(DONE, data={**QUOTA_FORM, "organisation": "矩阵测试A支部"}),
    ("POST", "/admin/quotas/<int:quota_id>/delete"): admin_only(DONE),
    ("GET", "/admin/quotas/organisations"): admin_only(OK),
    # -- district administration: organisations and accounts (blueprints/directory) ---------
    ("GET", "/admin/organisations"): admin_only(OK),
    ("GET", "/admin/organisations/suggest"): admin_only(OK),
    ("GET", "/admin/organisations/new"): admin_only(OK),
    ("POST", "/admin/organisations/new"): admin_only(DONE, data=ORGANISATION_FORM),
    ("GET", "/admin/organisations/<int:organisation_id>/edit"): admin_only(OK),
    ("POST", "/admin/organisations/<int:organisation_id>/edit"): admin_only(
        DONE, data={**ORGANISATION_FORM, "name": "矩阵测试A支部"}),
    ("GET", "/admin/organisations/export.csv"): admin_only(OK),
    ("GET", "/admin/organisations/export.xlsx"): admin_only(OK),
    ("GET", "/admin/organisations/import"): admin_only(OK),
    # No file chosen: the admin is told so (422); the upload itself is tested in the directory's tests.
    ("POST", "/admin/organisations/import"): admin_only(INVALID),
    # No signed preview: 400 with "upload again".
    ("POST", "/admin/organisations/import/confirm"): admin_only(BAD),
    ("GET", "/admin/accounts"): admin_only(OK),
    ("GET", "/admin/accounts/new"): admin_only(OK),
    # The new account's one-time password is shown once, on the answer itself (200).
    ("POST", "/admin/accounts/new"): admin_only(OK, data={**ACCOUNT_FORM, "username": "matrix_new"}),
    ("GET", "/admin/accounts/<int:user_id>/edit"): admin_only(OK),
    ("POST", "/admin/accounts/<int:user_id>/edit"): admin_only(
        DONE, data={**ACCOUNT_FORM, "organisation": "矩阵测试A支部"}),
    ("POST", "/admin/accounts/<int:user_id>/reset-password"): admin_only(OK),
    ("POST", "/admin/accounts/<int:user_id>/deactivate"): admin_only(DONE),
    ("POST", "/admin/accounts/<int:user_id>/activate"): admin_only(DONE),
}


# -- the dataset -------------------------------------------------------------------------------

class World:
    """Two organisations, two stations with one host each, an admin, and bookings of A at X.

    Built in one transaction (the factories' commits become flushes), then only plain values
    are kept: ``ids`` of every object, the users' session ids and the placeholders of form data,
    so that no test touches an expired ORM object (each would cost a query)."""

    def __init__(self):
        from blueprints.feeds import services as feed_services
        from blueprints.host import checkin

        commit = db.session.commit
        db.session.commit = db.session.flush  # the factories commit after each object
        try:
            now = clock.now()
            o = {}
            o["station_x"] = f.create_station(name="矩阵测试站X")
            o["station_y"] = f.create_station(name="矩阵测试站Y")
            o["campaign"] = f.create_campaign()
            o["package"] = f.create_package(stations=[o["station_x"], o["station_y"]], category=Category.THEORY,
                                            campaign=o["campaign"])
            o["org_a"] = f.create_organisation(name="矩阵测试A支部")
            o["org_b"] = f.create_organisation(name="矩阵测试B支部")
            o["sec_a"] = f.create_secretary(username="matrix_sec_a", organisation=o["org_a"])
            o["sec_b"] = f.create_secretary(username="matrix_sec_b", organisation=o["org_b"])
            o["host_x"] = f.create_host(username="matrix_host_x", stations=[o["station_x"]])
            o["host_y"] = f.create_host(username="matrix_host_y", stations=[o["station_y"]])
            o["admin"] = f.create_admin(username="matrix_admin")

            def slot(station, **params):
                return f.create_slot(package=o["package"], station=o[station], capacity=30, **params)

            o["slot"] = slot("station_x", starts_at=now + timedelta(days=7))
            o["slot_y"] = slot("station_y", starts_at=now + timedelta(days=7))
            o["closed_slot"] = slot("station_x", starts_at=now + timedelta(days=8), status=SlotStatus.CLOSED)
            o["today_slot"] = slot("station_x", starts_at=now + timedelta(hours=2))
            o["past_slot"] = slot("station_x", starts_at=now - timedelta(days=2))
            o["booking"] = f.create_booking(slot=o["slot"], organisation=o["org_a"], status=BookingStatus.PENDING)
            o["confirmed"] = f.create_booking(slot=o["today_slot"], organisation=o["org_a"], headcount=8)
            o["attended"] = f.create_booking(slot=o["past_slot"], organisation=o["org_a"],
                                             status=BookingStatus.ATTENDED, attended_headcount=8)
            # Over, and nobody checked the group in: a GET of its roster must not settle it.
            o["unsettled"] = f.create_booking(slot=o["past_slot"], organisation=o["org_b"], headcount=6)
            o["booking_b"] = f.create_booking(slot=o["slot_y"], organisation=o["org_b"])
            o["quota"] = Quota(organisation=o["org_a"], category=Category.THEORY, period=QuotaPeriod.YEAR,
                               max_bookings=50)
            db.session.add(o["quota"])
            self.feed_token = feed_services.subscriptions_for(o["sec_a"])[0].token
            feed_services.subscriptions_for(o["host_x"])
            db.session.flush()
            self.checkin_token = checkin.checkin_token(o["confirmed"])
            self.ids = {name: obj.id for name, obj in o.items()}
            self.logins = {role: o[role].get_id() for role in ROLES if role != "anon"}
        finally:
            db.session.commit = commit
        db.session.commit()
        today = clock.today()
        self.values = {
            **{name: str(value) for name, value in self.ids.items()},
            "checkin_token": self.checkin_token, "feed_token": self.feed_token,
            **{f"day_in_{n}": (today + timedelta(days=n)).isoformat() for n in (0, 7, 10, 40)},
        }

    def user(self, role: str) -> str | None:
        """The session id (Flask-Login's ``get_id``) of ``role``'s user; None for anonymous."""
        return self.logins.get(role)

    def placeholders(self) -> dict[str, str]:
        return self.values


@pytest.fixture
def fast_passwords(monkeypatch):
    """Every dataset has six users; hash the one test password once instead of 6 × per rebuild."""
    from blueprints.accounts import models

    cache: dict[tuple, str] = {}
    real = models.generate_password_hash

    def cached(password, *args, **kwargs):
        key = (password, args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = real(password, *args, **kwargs)
        return cache[key]

    monkeypatch.setattr(models, "generate_password_hash", cached)


def fresh_world() -> World:
    """Empty every table and build the World again. DELETE, not conftest's TRUNCATE: on tables
    this small it is many times faster on PostgreSQL, and the ids need not restart."""
    db.session.rollback()
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()
    return World()


def client_as(app, login_id: str | None):
    """A new client, logged in by its session cookie (the login form itself is tested elsewhere)."""
    client = app.test_client()
    if login_id is not None:
        # Flask-Login's "strong" session protection wants the client's address and user agent too.
        with app.test_request_context(environ_base=client.environ_base):
            identifier = login_manager._session_identifier_generator()
        with client.session_transaction() as session:
            session["_user_id"] = login_id
            session["_fresh"] = True
            session["_id"] = identifier
    return client


# -- filling URL rules -------------------------------------------------------------------------

def argument_value(world: World, rule, name: str, overrides: dict[str, str]):
    if name in overrides:
        return world.values[overrides[name]]
    path = rule.rule
    defaults = {"booking_id": "booking", "slot_id": "slot", "package_id": "package", "station_id": "station_x",
                "campaign_id": "campaign", "organisation_id": "org_a", "user_id": "sec_a", "quota_id": "quota"}
    if name in defaults:
        return world.ids[defaults[name]]
    if name == "token":
        if path.startswith("/feeds/"):
            return world.feed_token
        if "check-in" in path:
            return world.checkin_token
    if name == "table":
        return "categories"
    raise AssertionError(f"tests/test_authz_matrix.py does not know how to fill <{name}> of {path}: "
                         "teach argument_value() or give args= in its ROUTES entry")


def build_path(world: World, rule, overrides: dict[str, str]) -> str:
    from flask import url_for

    values = {name: argument_value(world, rule, name, overrides) for name in rule.arguments}
    return url_for(rule.endpoint, _method=None, **values).replace("http://localhost", "")


def routes_in_url_map(app) -> dict[tuple[str, str], object]:
    found = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found[(method, rule.rule)] = rule
    return found


def snapshot() -> dict[str, list]:
    """Every row of every table, so that "nothing changed" means exactly that."""
    db.session.expire_all()
    state = {}
    for table in db.metadata.sorted_tables:
        rows = db.session.execute(sa.select(table)).all()
        state[table.name] = sorted((tuple(r) for r in rows), key=repr)
    db.session.rollback()
    return state


def fill(text: str, world: World) -> str:
    """"{station_x}" → the id of station X (see ``World.placeholders``)."""
    values = world.placeholders()
    # Text that only looks like a placeholder (the fuzzer's "{0}") stays as it is.
    return re.sub(r"\{(\w+)\}", lambda match: values.get(match.group(1), match.group(0)), text)


def request_as(app, world: World, role: str, method: str, rule, entry: Entry):
    client = client_as(app, world.user(role))
    path = build_path(world, rule, entry.args)
    return path, client.open(path, method=method, data={k: fill(v, world) for k, v in entry.data.items()} if method != "GET" else None)


def _diff(before: dict, after: dict) -> str:
    return ", ".join(name for name in before if before[name] != after.get(name)) or "(new tables)"


# -- the tests ---------------------------------------------------------------------------------

@functools.cache
def application_routes() -> frozenset:
    """The routes of a freshly made application: the session's ``app`` may carry test-only routes
    (tests/test_accounts.py adds /_probe/… to exercise the guards)."""
    from app import create_app

    from .conftest import app_config

    return frozenset(routes_in_url_map(create_app(app_config("sqlite://"))))


def test_every_route_has_an_entry():
    missing = sorted(application_routes() - set(ROUTES))
    assert not missing, "routes without an authorisation entry:\n" + "\n".join(
        f"  {method} {path}: add it to ROUTES in tests/test_authz_matrix.py" for method, path in missing)


def test_every_entry_has_a_route():
    stale = sorted(set(ROUTES) - application_routes())
    assert not stale, "ROUTES entries without a route (remove them from tests/test_authz_matrix.py):\n" + \
        "\n".join(f"  {method} {path}" for method, path in stale)


@pytest.mark.parametrize(("method", "rule_text"), sorted(ROUTES), ids=[f"{m} {p}" for m, p in sorted(ROUTES)])
def test_route_answers_each_role_as_the_table_says(app, frozen_now, fast_passwords, method, rule_text):
    rule = routes_in_url_map(app).get((method, rule_text))
    if rule is None:
        pytest.skip("no such route (test_every_entry_has_a_route says so)")
    entry = ROUTES[(method, rule_text)]
    failures = []
    world, changed = fresh_world(), False
    for role in ROLES:
        if changed:
            world = fresh_world()  # the previous role's request succeeded and may have changed the scene
        before = snapshot()
        path, response = request_as(app, world, role, method, rule, entry)
        got, expected = classify(response), entry.expected[role]
        if got != expected:
            failures.append(f"{role}: {method} {path} answered {response.status_code} ({got}), expected {expected}")
        after = snapshot()
        changed = after != before
        if changed and method == "GET":
            failures.append(f"{role}: GET {path} changed rows in {_diff(before, after)} (a GET never writes)")
        elif changed and (got not in SUCCESS or expected not in SUCCESS):
            failures.append(f"{role}: {method} {path} was refused ({got}) but changed rows in {_diff(before, after)}")
    assert not failures, "\n".join(failures)
