"""Booking domain rules (blueprints/booking/services.py) as matrices with a frozen clock.

role × slot state × time × capacity, phone numbers, duplicates, waitlist, changes, cancellation,
approval, check-in, no-shows and quotas. Every success asserts the exact revision and the
BookingEvent written; every refusal asserts that nothing changed in the database.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from blueprints.accounts.models import User
from blueprints.quotas.models import Quota, QuotaPeriod
from blueprints.booking import services
from blueprints.booking.capacity import availability
from blueprints.booking.models import Booking, BookingEvent, BookingStatus, Notification
from blueprints.catalog.models import Category, Package, Slot, SlotStatus, Station
from blueprints.core import clock
from blueprints.core.extensions import db

from . import factories as f
from .conftest import FROZEN_NOW

S = BookingStatus
START = FROZEN_NOW + timedelta(days=7)  # the slot of the scene starts a week after "now"
PHONE = "021-64001234"  # the station's phone, named in "please call" messages


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    """These tests never log in: skip the deliberately slow scrypt hashing of the factories."""
    from blueprints.accounts import models

    monkeypatch.setattr(models, "generate_password_hash",
                        lambda password, method=None: "pbkdf2:sha256:1$salt$" + str(len(password)))


# -- the scene --------------------------------------------------------------------------------

@dataclass
class Scene:
    station: Station
    package: Package
    slot: Slot
    secretary: User  # secretary of the booking organisation
    other_secretary: User  # secretary of another organisation
    host: User  # host of the slot's station
    other_host: User  # host of another station
    admin: User
    inactive_secretary: User  # a deactivated secretary of the booking organisation
    inactive_host: User  # a deactivated host of the slot's station

    def user(self, role: str) -> User:
        return getattr(self, role)


@pytest.fixture
def scene(frozen_now) -> Scene:
    station = f.create_station(phone=PHONE, booking_cutoff_hours=24, cancel_deadline_hours=48)
    package = f.create_package(stations=[station], min_group_size=2, max_group_size=20)
    slot = f.create_slot(package=package, station=station, capacity=30, starts_at=START)
    secretary = f.create_secretary()
    return Scene(
        station=station,
        package=package,
        slot=slot,
        secretary=secretary,
        other_secretary=f.create_secretary(),
        host=f.create_host(stations=[station]),
        other_host=f.create_host(),
        admin=f.create_admin(),
        inactive_secretary=f.create_secretary(organisation=secretary.organisation, active=False),
        inactive_host=f.create_host(stations=[station], active=False),
    )


def request(headcount: int = 10, phone: str = "13912345678", name: str = "王书记", note: str = ""):
    return services.BookingRequest(headcount=headcount, contact_name=name, contact_phone=phone, note=note)


def fresh(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def events_of(booking_id: int) -> list[tuple]:
    return [
        (e.from_status, e.to_status, e.action)
        for e in db.session.scalars(
            sa.select(BookingEvent).where(BookingEvent.booking_id == booking_id).order_by(BookingEvent.id)
        )
    ]


def notifications(kind: str | None = None, user: User | None = None) -> list[Notification]:
    query = sa.select(Notification).order_by(Notification.id)
    if kind:
        query = query.where(Notification.kind == kind)
    if user:
        query = query.where(Notification.user_id == user.id)
    return list(db.session.scalars(query))


def snapshot() -> tuple:
    """Everything a booking rule may change."""
    db.session.rollback()
    db.session.expire_all()
    return (
        db.session.execute(
            sa.select(Booking.id, Booking.slot_id, Booking.organisation_id, Booking.status, Booking.headcount,
                      Booking.revision, Booking.contact_phone, Booking.attended_headcount).order_by(Booking.id)
        ).all(),
        db.session.execute(
            sa.select(BookingEvent.id, BookingEvent.booking_id, BookingEvent.from_status, BookingEvent.to_status,
                      BookingEvent.action).order_by(BookingEvent.id)
        ).all(),
        db.session.execute(sa.select(Notification.id, Notification.kind, Notification.user_id)
                           .order_by(Notification.id)).all(),
        db.session.execute(sa.select(Slot.id, Slot.capacity, Slot.status, Slot.revision).order_by(Slot.id)).all(),
    )


def refused(action, error=services.BookingError):
    """Run ``action``, expect ``error``, and prove that nothing changed."""
    before = snapshot()
    with pytest.raises(error) as caught:
        action()
    assert snapshot() == before
    return caught.value


def held(slot: Slot) -> int:
    db.session.expire_all()
    return availability(slot.id).held


# -- role × action ----------------------------------------------------------------------------

ROLES = ["secretary", "other_secretary", "host", "other_host", "admin", "inactive_secretary", "inactive_host"]
OK, NA, ERR = "ok", services.NotAllowed, services.BookingError


@pytest.mark.parametrize("role,expected", list(zip(ROLES, [OK, OK, NA, NA, NA, NA, NA])))
def test_book_only_an_active_secretary_books_for_her_own_organisation(scene, role, expected):
    user = scene.user(role)
    if expected is OK:
        booking = services.book(user, scene.slot.id, request())
        booking = fresh(Booking, booking.id)
        assert booking.organisation_id == user.organisation_id and booking.created_by_id == user.id
        assert booking.status is S.CONFIRMED and booking.revision == 0
        assert events_of(booking.id) == [(None, S.CONFIRMED, "created")]
        assert booking.events[0].actor_id == user.id
    else:
        refused(lambda: services.book(user, scene.slot.id, request()), expected)


ACTIONS = {
    "see": lambda user, b: services.visible_booking(user, b.id),
    "change_headcount": lambda user, b: services.change_headcount(user, b.id, 12),
    "cancel": lambda user, b: services.cancel(user, b.id, "场地临时检修"),
    "approve": lambda user, b: services.approve(user, b.id),
    "decline": lambda user, b: services.decline(user, b.id, "当天已满"),
    "check_in": lambda user, b: services.check_in(user, b.id, 9),
}
# Expected outcome per action for each role of ROLES (in that order).
ROLE_MATRIX = {
    "see": [OK, NA, OK, NA, OK, NA, NA],
    "change_headcount": [OK, NA, ERR, NA, ERR, NA, NA],
    "cancel": [OK, NA, OK, NA, OK, NA, NA],
    "approve": [NA, NA, OK, NA, OK, NA, NA],
    "decline": [NA, NA, OK, NA, OK, NA, NA],
    "check_in": [NA, NA, OK, NA, OK, NA, NA],
}
RESULT = {"change_headcount": S.CONFIRMED, "cancel": S.CANCELLED, "approve": S.CONFIRMED,
          "decline": S.DECLINED, "check_in": S.ATTENDED}


@pytest.mark.parametrize("action,role,expected", [
    (action, role, outcome) for action, outcomes in ROLE_MATRIX.items() for role, outcome in zip(ROLES, outcomes)
])
def test_role_and_ownership_matrix_for_actions_on_a_booking(scene, frozen_now, action, role, expected):
    status = S.PENDING if action in ("approve", "decline") else S.CONFIRMED
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, headcount=10,
                               status=status)
    if action == "check_in":
        frozen_now.set(START - timedelta(hours=1))
    user = scene.user(role)
    if expected is OK:
        ACTIONS[action](user, booking)
        if action != "see":
            changed = fresh(Booking, booking.id)
            assert changed.status is RESULT[action] and changed.revision == 1
            assert events_of(booking.id)[-1][:2] == (status, RESULT[action])
            assert changed.events[-1].actor_id == user.id
    else:
        refused(lambda: ACTIONS[action](user, booking), expected)


# -- slot state -------------------------------------------------------------------------------

def _close(scene):
    scene.slot.status = SlotStatus.CLOSED


def _cancel(scene):
    scene.slot.status = SlotStatus.CANCELLED


def _package_inactive(scene):
    scene.package.active = False


def _station_inactive(scene):
    scene.station.active = False


def _not_offered(scene):
    # The station stopped offering the package; its old slot must not take bookings.
    scene.package.stations = [f.create_station()]


SLOT_STATES = [
    ("open", None, None),
    ("closed", _close, "该场次已停止预约"),
    ("cancelled", _cancel, "该场次已取消"),
    ("package_inactive", _package_inactive, "不再提供此服务包"),
    ("station_inactive", _station_inactive, "不再提供此服务包"),
    ("package_not_offered_at_station", _not_offered, "不再提供此服务包"),
]


@pytest.mark.parametrize("state,change,message", SLOT_STATES, ids=[s[0] for s in SLOT_STATES])
def test_book_by_slot_state(scene, state, change, message):
    if change:
        change(scene)
        db.session.commit()
    if message is None:
        assert services.book(scene.secretary, scene.slot.id, request()).status is S.CONFIRMED
    else:
        error = refused(lambda: services.book(scene.secretary, scene.slot.id, request()))
        assert message in error.message and not error.waitlist_possible


@pytest.mark.parametrize("state,change,message", SLOT_STATES, ids=[s[0] for s in SLOT_STATES])
def test_change_headcount_by_slot_state(scene, state, change, message):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, headcount=10)
    if change:
        change(scene)
        db.session.commit()
    if message is None:
        assert services.change_headcount(scene.secretary, booking.id, 12).headcount == 12
    else:
        assert message in refused(lambda: services.change_headcount(scene.secretary, booking.id, 12)).message


# -- time: booking cut-off (24 h) and start ---------------------------------------------------

BOOKING_TIMES = [
    ("well_before", START - timedelta(days=7), None),
    ("just_before_cutoff", START - timedelta(hours=24, seconds=1), None),
    ("at_cutoff", START - timedelta(hours=24), None),
    ("just_after_cutoff", START - timedelta(hours=24) + timedelta(seconds=1), "开始前24小时已截止预约"),
    ("just_before_start", START - timedelta(seconds=1), "开始前24小时已截止预约"),
    ("after_start", START + timedelta(minutes=1), "该场次已经开始"),
]


@pytest.mark.parametrize("label,now,message", BOOKING_TIMES, ids=[t[0] for t in BOOKING_TIMES])
def test_book_by_time_against_cutoff(scene, frozen_now, label, now, message):
    frozen_now.set(now)
    if message is None:
        booking = services.book(scene.secretary, scene.slot.id, request())
        assert fresh(Booking, booking.id).status is S.CONFIRMED
    else:
        error = refused(lambda: services.book(scene.secretary, scene.slot.id, request()))
        assert message in error.message
        if "截止" in message:
            assert PHONE in error.message  # whom to call


# -- time: cancellation deadline (48 h) × who cancels ------------------------------------------

CANCEL_TIMES = {
    "well_before": START - timedelta(days=6),
    "just_before_deadline": START - timedelta(hours=48, seconds=1),
    "just_after_deadline": START - timedelta(hours=48) + timedelta(seconds=1),
    "after_start": START + timedelta(minutes=30),
}


@pytest.mark.parametrize("when", list(CANCEL_TIMES))
@pytest.mark.parametrize("role,reason", [("secretary", ""), ("host", "暴雨预警"), ("admin", "区里统一调整")])
def test_cancel_by_deadline_and_role(scene, frozen_now, when, role, reason):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, headcount=10)
    frozen_now.set(CANCEL_TIMES[when])
    user = scene.user(role)
    too_late = role == "secretary" and when in ("just_after_deadline", "after_start")
    if too_late:
        error = refused(lambda: services.cancel(user, booking.id, reason))
        assert "开始前48小时起不能在线取消" in error.message
        assert scene.station.name in error.message and PHONE in error.message
        return
    services.cancel(user, booking.id, reason)
    cancelled = fresh(Booking, booking.id)
    assert cancelled.status is S.CANCELLED and cancelled.revision == 1
    assert events_of(booking.id) == [(None, S.CONFIRMED, "created"), (S.CONFIRMED, S.CANCELLED, "cancelled")]
    assert cancelled.events[-1].reason == reason and cancelled.events[-1].actor_id == user.id
    assert held(scene.slot) == 0
    kind = "cancelled_by_branch" if role == "secretary" else "cancelled_by_station"
    assert [n.kind for n in notifications()] == [kind]


@pytest.mark.parametrize("role", ["host", "admin"])
@pytest.mark.parametrize("reason", ["", "   "])
def test_station_or_admin_cancel_needs_a_reason(scene, role, reason):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation)
    error = refused(lambda: services.cancel(scene.user(role), booking.id, reason))
    assert error.field == "reason" and "原因" in error.message


@pytest.mark.parametrize("status", [S.CANCELLED, S.DECLINED, S.ATTENDED, S.NO_SHOW])
def test_cancel_refuses_a_booking_that_has_ended(scene, status):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, status=status)
    error = refused(lambda: services.cancel(scene.secretary, booking.id, ""))
    assert str(status.label) in error.message


# -- capacity × approval ----------------------------------------------------------------------

CAPACITY = [
    # label, headcount, max_groups, join_waitlist, expected status or refusal text, waitlist_possible
    ("fits", 5, None, False, "booked", False),
    ("exactly_fills", 10, None, False, "booked", False),
    ("exceeds", 11, None, False, "仅剩10个名额", True),
    ("exceeds_joins_waitlist", 11, None, True, S.WAITLISTED, False),
    ("group_limit_reached", 5, 1, False, "可接待的批数已满", True),
    ("group_limit_reached_joins_waitlist", 5, 1, True, S.WAITLISTED, False),
    ("group_left", 5, 2, False, "booked", False),
    ("below_min_group_size", 1, None, False, "每批接待2至20人", False),
    ("above_max_group_size_even_for_waitlist", 21, None, True, "每批接待2至20人", False),
]


@pytest.mark.parametrize("approval", [False, True], ids=["direct", "approval"])
@pytest.mark.parametrize("label,headcount,max_groups,waitlist,expected,waitlist_possible", CAPACITY,
                         ids=[c[0] for c in CAPACITY])
def test_book_by_capacity(scene, approval, label, headcount, max_groups, waitlist, expected, waitlist_possible):
    scene.station.requires_approval = approval
    scene.slot.max_groups = max_groups
    db.session.commit()
    f.create_booking(slot=scene.slot, headcount=20)  # another organisation holds 20 of 30 places
    attempt = lambda: services.book(scene.secretary, scene.slot.id, request(headcount), join_waitlist=waitlist)  # noqa: E731
    if isinstance(expected, str) and expected != "booked":
        error = refused(attempt)
        assert expected in error.message and error.waitlist_possible is waitlist_possible
        assert error.field == ("headcount" if "名额" in expected or "每批" in expected else None)
        return
    booking = attempt()
    status = expected if expected != "booked" else (S.PENDING if approval else S.CONFIRMED)
    booking = fresh(Booking, booking.id)
    assert booking.status is status and booking.revision == 0 and booking.headcount == headcount
    assert events_of(booking.id) == [(None, status, "created")]
    assert held(scene.slot) == 20 + (headcount if status is not S.WAITLISTED else 0)


@pytest.mark.parametrize("status,holds", [
    (S.PENDING, True), (S.CONFIRMED, True), (S.ATTENDED, True),
    (S.WAITLISTED, False), (S.CANCELLED, False), (S.DECLINED, False), (S.NO_SHOW, False),
])
def test_which_statuses_hold_places(scene, status, holds):
    f.create_booking(slot=scene.slot, headcount=25, status=status)
    attempt = lambda: services.book(scene.secretary, scene.slot.id, request(10))  # noqa: E731
    if holds:
        assert "仅剩5个名额" in refused(attempt).message
    else:
        assert attempt().status is S.CONFIRMED


def test_pending_booking_holds_its_places_until_the_host_decides(scene):
    scene.station.requires_approval = True
    db.session.commit()
    first = services.book(scene.secretary, scene.slot.id, request(20))
    assert first.status is S.PENDING and held(scene.slot) == 20
    assert "仅剩10个名额" in refused(lambda: services.book(scene.other_secretary, scene.slot.id, request(11))).message
    assert services.book(scene.other_secretary, scene.slot.id, request(10)).status is S.PENDING
    assert held(scene.slot) == 30
    kinds = sorted((n.kind, n.user_id) for n in notifications())
    assert kinds == sorted([("pending", scene.secretary.id), ("new_pending", scene.host.id),
                            ("pending", scene.other_secretary.id), ("new_pending", scene.host.id)])


# -- contact details --------------------------------------------------------------------------

VALID_PHONES = [
    ("13912345678", "13912345678"),
    ("19912345678", "19912345678"),
    ("139 1234 5678", "13912345678"),
    ("021-64001234", "021-64001234"),
    ("02164001234", "021-64001234"),  # every landline stored in one form: area code, dash, number
    ("0512-12345678", "0512-12345678"),
    ("0755-12345678", "0755-12345678"),
    ("(021)64001234", "021-64001234"),
    ("（021）64001234", "021-64001234"),
    ("021-64001234-801", "021-64001234-801"),
    ("021-64001234转801", "021-64001234-801"),  # an extension as Chinese speakers write it
    ("１３９１２３４５６７８", "13912345678"),  # full-width digits from a Chinese input method
    ("+86 139 1234 5678", "13912345678"),  # copied from a phone's contacts
    ("0086-13912345678", "13912345678"),
    ("＋８６１３９１２３４５６７８", "13912345678"),
    ("139-1234-5678", "13912345678"),
    ("+86 21 6400 1234", "021-64001234"),
    ("+86-21-64001234", "021-64001234"),
    ("+86 (021) 6400 1234", "021-64001234"),
]
INVALID_PHONES = [
    "", "   ", "12912345678", "10912345678", "1391234567", "139123456789", "23912345678", "64001234",
    "21-64001234", "021-640012", "0216400123456", "139-1234-5678x", "电话13912345678",
    "+1 13912345678", "+86 1391234567", "+8613912345678x", "86-13912345678",
    "13٩١٢٣٤٥٦٧٨",  # Arabic-Indic digits must not pass as a phone number
    "0512-1234567",  # Suzhou numbers have eight digits (libphonenumber's metadata knows each area)
    "13912345678-12", "400-820-8820",
]

@pytest.mark.parametrize("phone,stored", VALID_PHONES)
def test_valid_phone_numbers_are_accepted_and_stored_normalised(scene, phone, stored):
    assert services.is_valid_phone(phone)
    booking = services.book(scene.secretary, scene.slot.id, request(phone=phone))
    assert fresh(Booking, booking.id).contact_phone == stored


@pytest.mark.parametrize("phone", INVALID_PHONES)
def test_invalid_phone_numbers_are_refused_at_the_field(scene, phone):
    assert not services.is_valid_phone(phone)
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request(phone=phone)))
    assert error.field == "contact_phone" and "11位手机号码" in error.message


@pytest.mark.parametrize("field,kwargs,message", [
    ("contact_name", {"name": "  "}, "联系人"),
    ("headcount", {"headcount": 0}, "至少1人"),
    ("headcount", {"headcount": -3}, "至少1人"),
])
def test_missing_contact_name_or_headcount_is_refused_at_the_field(scene, field, kwargs, message):
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request(**kwargs)))
    assert error.field == field and message in error.message


def test_contact_details_are_trimmed(scene):
    booking = services.book(scene.secretary, scene.slot.id, request(name="  李明 ", note=" 带横幅 "))
    booking = fresh(Booking, booking.id)
    assert booking.contact_name == "李明" and booking.note == "带横幅"


# -- one active booking per organisation and slot ---------------------------------------------

@pytest.mark.parametrize("first_status", [S.CONFIRMED, S.PENDING, S.WAITLISTED, S.ATTENDED])
def test_second_booking_of_the_same_organisation_is_refused_with_a_link(scene, first_status):
    first = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, status=first_status)
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request(), join_waitlist=True))
    assert "本支部已预约过该场次" in error.message and error.booking_id == first.id
    # Another secretary of the same organisation is refused too; another organisation is not.
    colleague = f.create_secretary(organisation=scene.secretary.organisation)
    assert refused(lambda: services.book(colleague, scene.slot.id, request())).booking_id == first.id
    assert services.book(scene.other_secretary, scene.slot.id, request()).status is S.CONFIRMED


@pytest.mark.parametrize("ended", [S.CANCELLED, S.DECLINED])
def test_an_ended_booking_does_not_stop_booking_again(scene, ended):
    old = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, status=ended)
    again = services.book(scene.secretary, scene.slot.id, request())
    assert again.id != old.id and again.status is S.CONFIRMED and again.revision == 0


def test_database_enforces_one_active_booking_per_organisation_and_slot(scene):
    organisation = scene.secretary.organisation
    f.create_booking(slot=scene.slot, organisation=organisation)
    with pytest.raises(IntegrityError):
        f.create_booking(slot=scene.slot, organisation=organisation, status=S.WAITLISTED)
    db.session.rollback()
    # Ended bookings are outside the partial unique index.
    f.create_booking(slot=scene.slot, organisation=organisation, status=S.CANCELLED)
    f.create_booking(slot=scene.slot, organisation=organisation, status=S.DECLINED)
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 3


def test_race_caught_by_the_unique_index_becomes_a_clear_refusal(scene, monkeypatch):
    """If the duplicate check is passed (a concurrent request), the index refuses at commit."""
    existing = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation)
    real = services.active_booking_of
    calls = []

    def miss_first_time(organisation_id, slot_id):
        calls.append(slot_id)
        return None if len(calls) == 1 else real(organisation_id, slot_id)

    monkeypatch.setattr(services, "active_booking_of", miss_first_time)
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request()))
    assert "本支部已预约过该场次" in error.message and error.booking_id == existing.id
    assert len(calls) == 2


# -- waitlist ---------------------------------------------------------------------------------

@pytest.fixture
def full_slot(scene):
    """Capacity 20: A holds 12, X holds 8; the waitlist is B (15), C (6), D (4), in that order."""
    scene.slot.capacity = 20
    db.session.commit()
    a = services.book(f.create_secretary(), scene.slot.id, request(12))
    x = services.book(scene.secretary, scene.slot.id, request(8))
    waiting = {}
    for name, size in (("B", 15), ("C", 6), ("D", 4)):
        secretary = f.create_secretary()
        waiting[name] = (services.book(secretary, scene.slot.id, request(size), join_waitlist=True), secretary)
    assert {b.status for b, _ in waiting.values()} == {S.WAITLISTED}
    return a, x, waiting


def statuses(waiting):
    db.session.expire_all()
    return {name: db.session.get(Booking, b.id).status for name, (b, _) in waiting.items()}


@pytest.mark.parametrize("how", ["cancel_by_branch", "cancel_by_host", "decline", "lower_headcount"])
def test_freed_places_go_to_the_first_waitlisted_booking_that_fits(scene, full_slot, how):
    a, x, waiting = full_slot
    if how == "cancel_by_branch":
        services.cancel(scene.secretary, x.id)  # frees 8
    elif how == "cancel_by_host":
        services.cancel(scene.host, x.id, "临时调整")
    elif how == "decline":
        # X is pending at an approval station; declining it frees its 8 places.
        x.status = S.PENDING
        db.session.commit()
        services.decline(scene.host, x.id, "名额调整")
    else:
        services.change_headcount(scene.secretary, x.id, 2)  # frees 6
    # B (15) does not fit and keeps its place in the queue; C (6) fits and moves up; D (4) waits.
    assert statuses(waiting) == {"B": S.WAITLISTED, "C": S.CONFIRMED, "D": S.WAITLISTED}
    c, c_secretary = waiting["C"]
    c = fresh(Booking, c.id)
    assert c.revision == 1
    assert events_of(c.id) == [(None, S.WAITLISTED, "created"), (S.WAITLISTED, S.CONFIRMED, "promoted")]
    assert c.events[-1].actor_id is None
    promoted = notifications("promoted")
    assert [n.user_id for n in promoted] == [c_secretary.id]
    assert promoted[0].booking_id == c.id and promoted[0].params["status"] == "已确认"
    assert held(scene.slot) <= 20


def test_promotion_is_first_come_first_served(scene, full_slot):
    a, x, waiting = full_slot
    services.cancel(scene.host, a.id, "临时调整")  # frees 12: B (15) still too big, C (6) then D (4)
    assert statuses(waiting) == {"B": S.WAITLISTED, "C": S.CONFIRMED, "D": S.CONFIRMED}
    services.cancel(scene.secretary, x.id)  # frees 8 more: 10 left, B (15) still waits
    assert statuses(waiting)["B"] is S.WAITLISTED
    services.change_headcount(waiting["C"][1], waiting["C"][0].id, 2)  # 14 left, B needs 15
    assert statuses(waiting)["B"] is S.WAITLISTED
    services.cancel(waiting["D"][1], waiting["D"][0].id)  # 18 left: B moves up
    assert statuses(waiting)["B"] is S.CONFIRMED
    assert held(scene.slot) == 17


def test_promotion_at_an_approval_station_makes_the_booking_pending_and_tells_the_host(scene, full_slot):
    _a, x, waiting = full_slot
    scene.station.requires_approval = True
    db.session.commit()
    services.cancel(scene.secretary, x.id)
    assert statuses(waiting)["C"] is S.PENDING
    assert events_of(waiting["C"][0].id)[-1] == (S.WAITLISTED, S.PENDING, "promoted")
    assert [n.user_id for n in notifications("new_pending")] == [scene.host.id]
    assert notifications("promoted")[0].params["status"] == "待审核"


def test_promotion_respects_the_group_limit(scene, full_slot):
    _a, x, waiting = full_slot
    scene.slot.max_groups = 2
    scene.slot.capacity = 40
    db.session.commit()
    services.cancel(scene.secretary, x.id)  # one group left, 20 places: only B (the first) moves up
    assert statuses(waiting) == {"B": S.CONFIRMED, "C": S.WAITLISTED, "D": S.WAITLISTED}


def test_no_promotion_once_the_slot_has_started(scene, full_slot, frozen_now):
    _a, x, waiting = full_slot
    frozen_now.set(START + timedelta(minutes=5))
    services.cancel(scene.host, x.id, "未到场")
    assert set(statuses(waiting).values()) == {S.WAITLISTED}
    assert notifications("promoted") == []


def test_no_promotion_after_the_booking_cut_off(scene, full_slot, frozen_now):
    _a, x, waiting = full_slot
    frozen_now.set(START - timedelta(hours=23))  # the cut-off is 24 hours before the start
    services.cancel(scene.host, x.id, "临时调整")
    assert set(statuses(waiting).values()) == {S.WAITLISTED}
    assert notifications("promoted") == []
    assert held(scene.slot) == 12  # the freed places stay free


def test_promotion_until_the_booking_cut_off(scene, full_slot, frozen_now):
    _a, x, waiting = full_slot
    frozen_now.set(START - timedelta(hours=24))
    services.cancel(scene.host, x.id, "临时调整")
    assert statuses(waiting)["C"] is S.CONFIRMED


def test_a_group_bigger_than_the_whole_slot_cannot_join_the_waitlist(scene, full_slot):
    secretary = f.create_secretary()
    scene.slot.capacity = 10
    db.session.commit()
    error = refused(lambda: services.book(secretary, scene.slot.id, request(12), join_waitlist=True))
    assert error.field == "headcount" and "该场次共10个名额" in error.message
    assert db.session.scalar(sa.select(sa.func.count(Booking.id)).where(
        Booking.organisation_id == secretary.organisation_id)) == 0


def test_a_waitlisted_group_cannot_grow_beyond_the_whole_slot(scene, full_slot):
    _a, _x, waiting = full_slot
    d, d_secretary = waiting["D"]
    scene.package.max_group_size = 40
    db.session.commit()
    error = refused(lambda: services.change_headcount(d_secretary, d.id, 21))  # capacity 20
    assert error.field == "headcount"
    assert fresh(Booking, d.id).headcount == 4
    services.change_headcount(d_secretary, d.id, 20)
    assert fresh(Booking, d.id).headcount == 20


def test_places_freed_while_booking_was_closed_go_to_the_waitlist_on_reopening(scene, full_slot):
    from blueprints.host import services as host_services

    _a, x, waiting = full_slot
    host_services.set_open(scene.host, scene.slot.id, False)
    services.cancel(scene.secretary, x.id)  # frees 8 while closed: nobody moves up yet
    assert set(statuses(waiting).values()) == {S.WAITLISTED}
    host_services.set_open(scene.host, scene.slot.id, True)
    # Reopened: the queue is served before any newcomer can take the places.
    assert statuses(waiting) == {"B": S.WAITLISTED, "C": S.CONFIRMED, "D": S.WAITLISTED}
    assert "仅剩2个名额" in refused(lambda: services.book(f.create_secretary(), scene.slot.id, request(6))).message


def test_cancelling_a_waitlisted_booking_promotes_nobody(scene, full_slot):
    _a, _x, waiting = full_slot
    b, b_secretary = waiting["B"]
    services.cancel(b_secretary, b.id)
    assert statuses(waiting) == {"B": S.CANCELLED, "C": S.WAITLISTED, "D": S.WAITLISTED}
    assert fresh(Booking, b.id).revision == 1


# -- change of headcount ----------------------------------------------------------------------

@pytest.fixture
def own_booking(scene):
    f.create_booking(slot=scene.slot, headcount=15)  # another organisation: 15 of 30 held
    return services.book(scene.secretary, scene.slot.id, request(10))  # 5 left


@pytest.mark.parametrize("new,outcome", [
    (12, "ok"), (15, "ok"), (16, "最多只能再增加5人"), (2, "ok"), (1, "每批接待2至20人"), (21, "每批接待2至20人"),
])
def test_change_headcount_within_places_and_group_size(scene, own_booking, new, outcome):
    if outcome == "ok":
        services.change_headcount(scene.secretary, own_booking.id, new)
        booking = fresh(Booking, own_booking.id)
        assert booking.headcount == new and booking.revision == 1
        assert events_of(booking.id)[-1] == (S.CONFIRMED, S.CONFIRMED, "headcount_changed")
        assert booking.events[-1].detail == f"10 → {new}"
        assert held(scene.slot) == 15 + new
    else:
        error = refused(lambda: services.change_headcount(scene.secretary, own_booking.id, new))
        assert outcome in error.message and error.field == "headcount"


def test_change_to_the_same_headcount_changes_nothing(scene, own_booking):
    before = snapshot()
    services.change_headcount(scene.secretary, own_booking.id, 10)
    assert snapshot() == before


def test_revisions_count_every_change(scene, own_booking):
    services.change_headcount(scene.secretary, own_booking.id, 12)
    services.change_headcount(scene.secretary, own_booking.id, 8)
    services.cancel(scene.secretary, own_booking.id, "改期")
    booking = fresh(Booking, own_booking.id)
    assert booking.revision == 3
    assert events_of(booking.id) == [
        (None, S.CONFIRMED, "created"),
        (S.CONFIRMED, S.CONFIRMED, "headcount_changed"),
        (S.CONFIRMED, S.CONFIRMED, "headcount_changed"),
        (S.CONFIRMED, S.CANCELLED, "cancelled"),
    ]


def test_waitlisted_booking_may_grow_beyond_places_left(scene):
    f.create_booking(slot=scene.slot, headcount=30)
    waiting = services.book(scene.secretary, scene.slot.id, request(5), join_waitlist=True)
    services.change_headcount(scene.secretary, waiting.id, 18)
    booking = fresh(Booking, waiting.id)
    assert booking.status is S.WAITLISTED and booking.headcount == 18 and booking.revision == 1


@pytest.mark.parametrize("status", [S.CANCELLED, S.DECLINED, S.ATTENDED, S.NO_SHOW])
def test_ended_booking_headcount_cannot_change(scene, status):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, status=status)
    assert "无法修改" in refused(lambda: services.change_headcount(scene.secretary, booking.id, 5)).message


@pytest.mark.parametrize("now,ok", [
    (START - timedelta(hours=24, seconds=1), True),
    (START - timedelta(hours=24) + timedelta(seconds=1), False),
    (START + timedelta(hours=1), False),
])
def test_change_headcount_closes_with_booking(scene, own_booking, frozen_now, now, ok):
    frozen_now.set(now)
    if ok:
        assert services.change_headcount(scene.secretary, own_booking.id, 11).headcount == 11
    else:
        refused(lambda: services.change_headcount(scene.secretary, own_booking.id, 11))


# -- approval ---------------------------------------------------------------------------------

@pytest.fixture
def pending(scene):
    scene.station.requires_approval = True
    db.session.commit()
    return services.book(scene.secretary, scene.slot.id, request(10))


def test_host_approves_a_pending_booking(scene, pending):
    services.approve(scene.host, pending.id)
    booking = fresh(Booking, pending.id)
    assert booking.status is S.CONFIRMED and booking.revision == 1
    assert events_of(booking.id) == [(None, S.PENDING, "created"), (S.PENDING, S.CONFIRMED, "approved")]
    assert [n.user_id for n in notifications("approved")] == [scene.secretary.id]
    error = refused(lambda: services.approve(scene.host, pending.id))  # a second click
    assert "不再等待审核" in error.message and "已确认" in error.message


@pytest.mark.parametrize("status", [S.CONFIRMED, S.WAITLISTED, S.CANCELLED, S.DECLINED, S.ATTENDED])
def test_approve_refuses_a_booking_not_awaiting_approval(scene, status):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, status=status)
    error = refused(lambda: services.approve(scene.host, booking.id))
    assert "不再等待审核" in error.message and str(status.label) in error.message


def test_approve_refuses_to_exceed_capacity(scene):
    # Data from before a capacity cut: 35 held on 30 places.
    f.create_booking(slot=scene.slot, headcount=15)
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, headcount=20,
                               status=S.PENDING)
    assert "超出该场次的名额" in refused(lambda: services.approve(scene.host, booking.id)).message


@pytest.mark.parametrize("reason", ["", "  "])
def test_decline_needs_a_reason(scene, pending, reason):
    assert refused(lambda: services.decline(scene.host, pending.id, reason)).field == "reason"


def test_decline_frees_the_places_and_tells_the_branch_why(scene, pending):
    services.decline(scene.admin, pending.id, "当天场地另有安排")
    booking = fresh(Booking, pending.id)
    assert booking.status is S.DECLINED and booking.revision == 1
    assert events_of(booking.id)[-1] == (S.PENDING, S.DECLINED, "declined")
    assert booking.events[-1].reason == "当天场地另有安排"
    [note] = notifications("declined")
    assert note.user_id == scene.secretary.id and note.params["reason"] == "当天场地另有安排"
    assert held(scene.slot) == 0


@pytest.mark.parametrize("status", [S.CONFIRMED, S.CANCELLED, S.DECLINED])
def test_decline_refuses_a_booking_not_awaiting_approval(scene, status):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, status=status)
    assert "不再等待审核" in refused(lambda: services.decline(scene.host, booking.id, "不行")).message


# -- check-in and no-shows --------------------------------------------------------------------

@pytest.mark.parametrize("now,attended,outcome", [
    # check-in opens at 00:00 (Shanghai) of the slot's day (Slot.check_in_opens_at)
    (clock.local_datetime(clock.to_local(START).date(), 0) - timedelta(minutes=1), 9, "活动当天才能签到"),
    (clock.local_datetime(clock.to_local(START).date(), 0), 9, "ok"),
    (START + timedelta(hours=1), 0, "ok"),
    (START + timedelta(hours=1), 30, "ok"),
    (START + timedelta(hours=1), 31, "实到人数（0至30）"),
    (START + timedelta(hours=1), -1, "实到人数（0至30）"),
])
def test_check_in_window_and_attended_headcount(scene, frozen_now, now, attended, outcome):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, headcount=10)
    frozen_now.set(now)
    if outcome == "ok":
        services.check_in(scene.host, booking.id, attended)
        checked = fresh(Booking, booking.id)
        assert checked.status is S.ATTENDED and checked.attended_headcount == attended and checked.revision == 1
        assert checked.checked_in_at == now
        assert events_of(booking.id)[-1] == (S.CONFIRMED, S.ATTENDED, "checked_in")
    else:
        assert outcome in refused(lambda: services.check_in(scene.host, booking.id, attended)).message


@pytest.mark.parametrize("status", [S.PENDING, S.WAITLISTED, S.CANCELLED, S.DECLINED])
def test_check_in_only_confirmed_bookings(scene, frozen_now, status):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, status=status)
    frozen_now.set(START)
    assert "只有已确认的预约可以签到" in refused(lambda: services.check_in(scene.host, booking.id, 5)).message


def test_check_in_can_be_corrected_and_marks_a_no_show_as_attended(scene, frozen_now):
    booking = f.create_booking(slot=scene.slot, organisation=scene.secretary.organisation, headcount=10)
    frozen_now.set(START + timedelta(hours=3))  # after the end
    assert services.mark_no_shows(scene.slot.id) == 1
    services.check_in(scene.host, booking.id, 8)
    services.check_in(scene.host, booking.id, 9)
    booking = fresh(Booking, booking.id)
    assert booking.attended_headcount == 9 and booking.revision == 3
    assert [e[:2] for e in events_of(booking.id)] == [
        (None, S.CONFIRMED), (S.CONFIRMED, S.NO_SHOW), (S.NO_SHOW, S.ATTENDED), (S.ATTENDED, S.ATTENDED)]


def test_mark_no_shows_only_after_the_end_and_only_confirmed(scene, frozen_now):
    confirmed = f.create_booking(slot=scene.slot, headcount=5)
    attended = f.create_booking(slot=scene.slot, headcount=5, status=S.ATTENDED)
    cancelled = f.create_booking(slot=scene.slot, headcount=5, status=S.CANCELLED)
    frozen_now.set(scene.slot.ends_at - timedelta(seconds=1))
    before = snapshot()
    assert services.mark_no_shows(scene.slot.id, scene.host) == 0
    assert snapshot() == before
    frozen_now.set(scene.slot.ends_at)
    assert services.mark_no_shows(scene.slot.id, scene.host) == 1
    db.session.expire_all()
    assert [db.session.get(Booking, b.id).status for b in (confirmed, attended, cancelled)] == [
        S.NO_SHOW, S.ATTENDED, S.CANCELLED]
    assert fresh(Booking, confirmed.id).revision == 1
    assert events_of(confirmed.id)[-1] == (S.CONFIRMED, S.NO_SHOW, "no_show")
    assert services.mark_no_shows(scene.slot.id) == 0  # idempotent


def test_mark_no_shows_of_a_missing_slot(scene):
    refused(lambda: services.mark_no_shows(999_999), services.NotAllowed)


# -- quotas -----------------------------------------------------------------------------------

def test_quota_refusal_names_limit_and_period_and_changes_nothing(scene):
    db.session.add(Quota(organisation_id=scene.secretary.organisation_id, category=Category.THEORY,
                         period=QuotaPeriod.MONTH, max_bookings=1))
    db.session.commit()
    services.book(scene.secretary, scene.slot.id, request())
    second = f.create_slot(package=scene.package, station=scene.station, starts_at=START - timedelta(days=2))
    for waitlist in (False, True):
        error = refused(lambda: services.book(scene.secretary, second.id, request(), join_waitlist=waitlist))
        assert re.search(r"每月最多\D*1\D", error.message)  # the limit and its period
        assert "理论学习" in error.message and "2026-11-01" in error.message
    # Another category, or another organisation, is not limited.
    other = f.create_slot(package=f.create_package(stations=[scene.station], category=Category.VOLUNTEER),
                          station=scene.station, starts_at=START - timedelta(days=2))
    assert services.book(scene.secretary, other.id, request()).status is S.CONFIRMED
    assert services.book(scene.other_secretary, second.id, request()).status is S.CONFIRMED


def test_cancelling_gives_the_quota_back(scene):
    db.session.add(Quota(organisation_id=scene.secretary.organisation_id, category=Category.THEORY,
                         period=QuotaPeriod.QUARTER, max_bookings=1))
    db.session.commit()
    first = services.book(scene.secretary, scene.slot.id, request())
    second = f.create_slot(package=scene.package, station=scene.station, starts_at=START + timedelta(days=3))
    refused(lambda: services.book(scene.secretary, second.id, request()))
    services.cancel(scene.secretary, first.id)
    assert services.book(scene.secretary, second.id, request()).status is S.CONFIRMED


# -- misc -------------------------------------------------------------------------------------

def test_booking_a_missing_slot_is_not_allowed(scene):
    refused(lambda: services.book(scene.secretary, 999_999, request()), services.NotAllowed)


def test_actions_on_a_missing_booking_are_not_allowed(scene):
    for action in ACTIONS.values():
        refused(lambda: action(scene.admin, SimpleNamespace(id=999_999)), services.NotAllowed)


# -- deactivated organisations (issue 12) ------------------------------------------------------

def _deactivate(organisation) -> None:
    organisation.active = False
    db.session.commit()


def test_secretary_of_a_deactivated_organisation_cannot_book_and_nothing_changes(scene):
    _deactivate(scene.secretary.organisation)
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request(10)))
    assert "已被区级管理员停用" in error.message and scene.secretary.organisation.name in error.message


def test_secretary_of_a_deactivated_organisation_cannot_join_a_waitlist(scene):
    scene.slot.capacity = 10
    db.session.commit()
    services.book(scene.other_secretary, scene.slot.id, request(10))
    _deactivate(scene.secretary.organisation)
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request(5), join_waitlist=True))
    assert "停用" in error.message


def test_deactivated_organisation_keeps_its_booking_may_lower_but_not_raise_the_headcount(scene):
    booking = services.book(scene.secretary, scene.slot.id, request(10))
    _deactivate(scene.secretary.organisation)
    assert fresh(Booking, booking.id).status is S.CONFIRMED  # existing bookings stay
    error = refused(lambda: services.change_headcount(scene.secretary, booking.id, 12))
    assert "停用" in error.message and error.field == "headcount"
    services.change_headcount(scene.secretary, booking.id, 8)
    assert fresh(Booking, booking.id).headcount == 8
    services.cancel(scene.secretary, booking.id)
    assert fresh(Booking, booking.id).status is S.CANCELLED


def test_waitlist_promotion_passes_over_a_deactivated_organisation(scene, full_slot):
    a, _x, waiting = full_slot
    c_booking, c_secretary = waiting["C"]
    _deactivate(c_secretary.organisation)
    services.cancel(a.created_by, a.id)  # frees 12: B (15) does not fit, C is deactivated, D (4) fits
    assert fresh(Booking, c_booking.id).status is S.WAITLISTED
    assert fresh(Booking, waiting["D"][0].id).status is S.CONFIRMED


def test_slot_refusal_for_the_booking_panel_names_the_deactivation(scene):
    assert services.organisation_refusal(scene.secretary.organisation) is None
    _deactivate(scene.secretary.organisation)
    assert "停用" in services.organisation_refusal(scene.secretary.organisation)


# -- raising a confirmed headcount at an approval station (issue 12) -----------------------------

def test_raising_a_confirmed_headcount_at_an_approval_station_asks_the_host_again(scene):
    scene.station.requires_approval = True
    db.session.commit()
    booking = services.book(scene.secretary, scene.slot.id, request(10))
    services.approve(scene.host, booking.id)
    assert fresh(Booking, booking.id).status is S.CONFIRMED
    services.change_headcount(scene.secretary, booking.id, 15)
    changed = fresh(Booking, booking.id)
    assert (changed.status, changed.headcount) == (S.PENDING, 15)
    assert events_of(booking.id)[-1] == (S.CONFIRMED, S.PENDING, "headcount_changed")
    assert held(scene.slot) == 15  # the places stay held while the host decides
    [to_host] = notifications("headcount_raised", scene.host)
    assert "10" in to_host.params["old"].__str__() and to_host.params["headcount"] == 15
    assert notifications("reapproval", scene.secretary)
    services.approve(scene.host, booking.id)
    assert fresh(Booking, booking.id).status is S.CONFIRMED


def test_lowering_a_confirmed_headcount_at_an_approval_station_needs_no_new_approval(scene):
    scene.station.requires_approval = True
    db.session.commit()
    booking = services.book(scene.secretary, scene.slot.id, request(10))
    services.approve(scene.host, booking.id)
    services.change_headcount(scene.secretary, booking.id, 6)
    assert fresh(Booking, booking.id).status is S.CONFIRMED
    assert not notifications("headcount_raised")


def test_raising_a_headcount_where_no_approval_is_needed_stays_confirmed(scene):
    booking = services.book(scene.secretary, scene.slot.id, request(10))
    services.change_headcount(scene.secretary, booking.id, 15)
    assert fresh(Booking, booking.id).status is S.CONFIRMED
    assert not notifications("headcount_raised")


# -- settling no-shows (issue 12: never by a GET) ------------------------------------------------

def test_settle_ended_slots_records_no_shows_of_every_ended_slot_once(scene, frozen_now):
    confirmed = services.book(scene.secretary, scene.slot.id, request(10))
    later = f.create_slot(package=scene.package, station=scene.station, capacity=30,
                          starts_at=START + timedelta(days=3))
    future = services.book(scene.secretary, later.id, request(10))
    assert services.settle_ended_slots() == (0, 0)
    frozen_now.set(scene.slot.ends_at + timedelta(minutes=1))
    assert fresh(Booking, confirmed.id).status_at(clock.now()) is S.NO_SHOW  # derived when read
    assert fresh(Booking, confirmed.id).status is S.CONFIRMED
    assert services.settle_ended_slots() == (1, 1)
    assert fresh(Booking, confirmed.id).status is S.NO_SHOW
    assert events_of(confirmed.id)[-1] == (S.CONFIRMED, S.NO_SHOW, "no_show")
    assert fresh(Booking, future.id).status is S.CONFIRMED
    assert services.settle_ended_slots() == (0, 0)


def test_flask_bookings_settle_command(app, scene, frozen_now):
    booking = services.book(scene.secretary, scene.slot.id, request(10))
    frozen_now.set(scene.slot.ends_at + timedelta(minutes=1))
    result = app.test_cli_runner().invoke(args=["bookings", "settle"])
    assert result.exit_code == 0 and "1 bookings recorded as no-shows" in result.output
    assert fresh(Booking, booking.id).status is S.NO_SHOW


# -- every reason at once (issue 14: booking errors came in rounds) ----------------------------

def problems_of(error: services.BookingError) -> dict:
    """field (None: the form as a whole) → the messages of its problems."""
    found: dict = {}
    for problem in error.problems:
        found.setdefault(problem.field, []).append(problem.message)
    return found


def test_a_group_too_large_and_a_bad_phone_are_refused_together_each_at_its_field(scene):
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request(999, phone="12345")))
    found = problems_of(error)
    assert set(found) == {"headcount", "contact_phone"}
    assert "每批接待2至20人" in found["headcount"][0] and "11位手机号码" in found["contact_phone"][0]
    assert error.message == error.problems[0].message and not error.waitlist_possible


def test_a_blank_name_and_too_few_places_are_refused_together_and_the_waitlist_is_still_offered(scene):
    f.create_booking(slot=scene.slot, headcount=25)  # 5 of 30 left
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request(10, name=" ")))
    found = problems_of(error)
    assert set(found) == {"contact_name", "headcount"} and "仅剩5个名额" in found["headcount"][0]
    assert error.waitlist_possible  # the name is a typing mistake, the places are the only rule refusing


def test_a_quota_and_a_group_too_small_are_refused_together_and_the_waitlist_would_not_help(scene):
    db.session.add(Quota(organisation_id=scene.secretary.organisation_id, category=Category.THEORY,
                         period=QuotaPeriod.MONTH, max_bookings=1))
    db.session.commit()
    services.book(scene.secretary, scene.slot.id, request())
    second = f.create_slot(package=scene.package, station=scene.station, starts_at=START - timedelta(days=2),
                           capacity=30)
    f.create_booking(slot=second, headcount=29)  # 1 place left: a place problem too, but the group rules first
    error = refused(lambda: services.book(scene.secretary, second.id, request(1)))
    found = problems_of(error)
    assert "每批接待2至20人" in found["headcount"][0] and re.search(r"每月最多\D*1\D", found[None][0])
    assert len(error.problems) == 2 and not error.waitlist_possible  # no "book fewer" advice for a wrong group


def test_a_slot_that_cannot_be_booked_is_said_with_the_field_problems(scene):
    scene.slot.status = SlotStatus.CLOSED
    db.session.commit()
    error = refused(lambda: services.book(scene.secretary, scene.slot.id, request(999, phone="1")))
    assert [p.field for p in error.problems] == ["contact_phone", None]
    assert "停止预约" in error.problems[-1].message


def test_booking_problems_reads_what_book_would_refuse_and_writes_nothing(scene):
    f.create_booking(slot=scene.slot, headcount=25)
    before = snapshot()
    problems = services.booking_problems(scene.secretary, scene.slot.id, request(999, phone="12345"))
    assert [p.field for p in problems] == ["contact_phone", "headcount"]
    # A field the form already refused (None) is not checked again; the places are, for a group that may come.
    partial = services.BookingRequest(headcount=10, contact_name=None, contact_phone=None)
    assert [p.message for p in services.booking_problems(scene.secretary, scene.slot.id, partial)] == [
        "仅剩5个名额。请减少人数或加入候补。"]
    assert services.booking_problems(scene.secretary, scene.slot.id, partial, join_waitlist=True) == []
    assert services.booking_problems(scene.secretary, scene.slot.id, request(5)) == []
    assert snapshot() == before


@pytest.mark.parametrize("role", ["host", "admin", "inactive_secretary"])
def test_booking_problems_is_for_active_secretaries_only(scene, role):
    with pytest.raises(services.NotAllowed):
        services.booking_problems(scene.user(role), scene.slot.id, request())


def test_booking_problems_of_a_missing_slot_is_not_allowed(scene):
    with pytest.raises(services.NotAllowed):
        services.booking_problems(scene.secretary, 999_999, request())


def test_raising_the_headcount_of_a_deactivated_organisation_beyond_the_group_size_names_both(scene):
    booking = services.book(scene.secretary, scene.slot.id, request(10))
    _deactivate(scene.secretary.organisation)
    error = refused(lambda: services.change_headcount(scene.secretary, booking.id, 25))
    messages = [p.message for p in error.problems]
    assert [p.field for p in error.problems] == ["headcount", "headcount"]
    assert "每批接待2至20人" in messages[0] and "停用" in messages[1]


@pytest.mark.parametrize("problems,offered", [
    ([("contact_phone", False, True), ("headcount", True, False)], True),   # a typo and the places
    ([(None, False, False), ("headcount", True, False)], False),           # a quota and the places
    ([("contact_phone", False, True)], False),                             # only a typo
    ([(None, True, False), ("headcount", True, False)], True),             # groups full and places
])
def test_the_waitlist_is_offered_when_it_answers_every_rule_that_refused(problems, offered):
    errors = [services.BookingError("x", field, waitlist_possible=waitlist, correction=correction)
              for field, waitlist, correction in problems]
    combined = services.BookingError.of(errors)
    assert combined.waitlist_possible is offered and combined.problems == errors
