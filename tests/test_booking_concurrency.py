"""Never overbooked: many secretaries book one slot at the same moment, from separate threads.

Each thread has its own application context, SQLAlchemy session and database connection (a
second app on the same database with a pool big enough for every thread), and all threads start
together at a barrier. Runs on SQLite (a file database in WAL mode) and, when TEST_DATABASE_URL is
set, on PostgreSQL. Every attempt must end in a booking, a BookingError with a message, or Busy
(the lock wait timed out; the route answers 503) — never anything else.
"""
from __future__ import annotations

import threading
from datetime import timedelta
import traceback
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from flask_login.utils import _create_identifier

from app import create_app
from blueprints.accounts.models import Organisation, OrganisationKind, Role, User
from blueprints.booking import services
from blueprints.booking.capacity import availability
from blueprints.booking.models import Booking, BookingEvent, BookingStatus
from blueprints.core import clock
from blueprints.core.db import Busy
from blueprints.core.extensions import db

from . import factories as f
from .conftest import app_config

THREADS = 50
S = BookingStatus


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    """Nobody logs in with a password here: skip the deliberately slow scrypt hashing."""
    from blueprints.accounts import models

    monkeypatch.setattr(models, "generate_password_hash",
                        lambda password, method=None: "pbkdf2:sha256:1$salt$" + str(len(password)))


@pytest.fixture(scope="module")
def rush_app(app):
    """The same database behind a pool with a connection for every thread."""
    options = {"pool_size": THREADS + 5, "max_overflow": 0, "pool_timeout": 30}
    rush = create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], SQLALCHEMY_ENGINE_OPTIONS=options))
    yield rush
    with rush.app_context():
        db.engine.dispose()


@dataclass
class Outcome:
    results: list = field(default_factory=list)
    seconds: float = 0.0
    busy_waits: list = field(default_factory=list)  # how long each Busy attempt waited

    def count(self) -> Counter:
        return Counter(result[0] for result in self.results)


def rush(rush_app, jobs) -> Outcome:
    """Run each job (a callable taking no arguments, called inside an app context) in its own
    thread, all released at once; classify what each returned or raised."""
    db.session.commit()
    barrier = threading.Barrier(len(jobs) + 1, timeout=60)
    outcome = Outcome()
    lock = threading.Lock()

    def run(job):
        with rush_app.app_context():
            prepared = job()  # load what the job needs before the start signal
            barrier.wait()
            began = time.perf_counter()
            try:
                value = prepared()
                result = ("ok", value)
            except services.BookingError as error:
                result = ("refused", error)
            except Busy:
                result = ("busy", None)
                with lock:
                    outcome.busy_waits.append(time.perf_counter() - began)
            except Exception as error:  # noqa: BLE001 - anything else is a failure of the test
                result = ("error", repr(error))
            finally:
                db.session.remove()
            with lock:
                outcome.results.append(result)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=60)
    outcome.seconds = time.perf_counter() - started
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return outcome


def report(name: str, app, outcome: Outcome) -> None:
    database = app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0]
    print(f"\n[{name} on {database}] attempts={len(outcome.results)} {dict(outcome.count())} "
          f"in {outcome.seconds:.2f}s")
    assert_busy_only_after_the_bounded_wait(outcome.busy_waits)


# The lock waits are bounded at 5 s (PostgreSQL lock_timeout, SQLite busy_timeout). On an idle
# machine the whole rush takes well under that and nobody is Busy; on a heavily loaded one the
# last waiters may time out. Busy is then correct — but only after the full bounded wait, never
# as a spurious early failure, and never more than the bounded wait either.
LOCK_WAIT = 5.0


def assert_busy_only_after_the_bounded_wait(waits: list[float]) -> None:
    assert all(LOCK_WAIT - 1.0 <= wait <= LOCK_WAIT * 3 for wait in waits), waits


def request(headcount: int) -> services.BookingRequest:
    return services.BookingRequest(headcount=headcount, contact_name="王书记", contact_phone="13912345678")


def secretaries(n: int) -> list[int]:
    """``n`` secretaries, each of their own organisation, written in one transaction."""
    users = []
    for _ in range(n):
        number = f._n()
        organisation = Organisation(name=f"并发测试第{number}党支部", kind=OrganisationKind.BRANCH)
        users.append(User(username=f"rush{number}", display_name=f"书记{number}", role=Role.SECRETARY,
                          organisation=organisation, password_hash="-"))
    db.session.add_all(users)
    db.session.commit()
    return [user.id for user in users]


def booking_job(user_id: int, slot_id: int, headcount: int, join_waitlist: bool = False):
    def prepare():
        user = db.session.get(User, user_id)
        user.organisation_id  # noqa: B018 - loaded now, not under the lock
        return lambda: services.book(user, slot_id, request(headcount), join_waitlist=join_waitlist).id

    return prepare


def stored(slot_id: int) -> list[Booking]:
    db.session.rollback()  # end the test's own (possibly older) read transaction
    return list(db.session.scalars(sa.select(Booking).where(Booking.slot_id == slot_id).order_by(Booking.id)))


def held(slot_id: int) -> int:
    db.session.rollback()
    return availability(slot_id).held


def assert_every_booking_has_its_events(slot_id: int) -> None:
    for booking in stored(slot_id):
        events = db.session.scalars(
            sa.select(BookingEvent).where(BookingEvent.booking_id == booking.id).order_by(BookingEvent.id)
        ).all()
        assert len(events) == booking.revision + 1, booking
        assert events[0].action == "created" and events[0].from_status is None
        assert events[-1].to_status is booking.status


# -- the rush ---------------------------------------------------------------------------------

def test_fifty_secretaries_rush_a_slot_that_fits_eight_groups(app, rush_app):
    slot = f.create_slot(capacity=40)  # 8 groups of 5
    users = secretaries(THREADS)
    outcome = rush(rush_app, [booking_job(user_id, slot.id, 5) for user_id in users])
    report("book", app, outcome)

    counts = outcome.count()
    assert counts["error"] == 0, [r for r in outcome.results if r[0] == "error"]
    assert counts["ok"] == 8
    assert counts["ok"] + counts["refused"] + counts["busy"] == THREADS
    for _kind, error in (r for r in outcome.results if r[0] == "refused"):
        assert "名额" in error.message and error.waitlist_possible and error.field == "headcount"
    db.session.rollback()
    places = availability(slot.id)
    assert places.held == 40 <= places.capacity
    bookings = stored(slot.id)
    assert [b.status for b in bookings] == [S.CONFIRMED] * 8
    assert {b.id for b in bookings} == {r[1] for r in outcome.results if r[0] == "ok"}
    assert_every_booking_has_its_events(slot.id)


def test_rush_with_waitlist_keeps_first_come_first_served(app, rush_app):
    slot = f.create_slot(capacity=20)  # 4 groups of 5; everyone else waits
    users = secretaries(THREADS)
    outcome = rush(rush_app, [booking_job(user_id, slot.id, 5, join_waitlist=True) for user_id in users])
    report("book or waitlist", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0 and counts["refused"] == 0
    assert counts["ok"] + counts["busy"] == THREADS
    bookings = stored(slot.id)
    assert Counter(b.status for b in bookings) == {S.CONFIRMED: 4, S.WAITLISTED: len(bookings) - 4}
    # The first four committed are the confirmed ones: nobody was waitlisted ahead of them.
    assert [b.status for b in bookings[:4]] == [S.CONFIRMED] * 4
    assert held(slot.id) == 20


@pytest.mark.parametrize("allowed", [1, 3])
def test_twenty_bookings_of_one_organisation_on_twenty_slots_never_exceed_its_quota(app, rush_app, allowed):
    """The quota is counted under the organisation's lock, not only under each slot's."""
    from blueprints.quotas.models import Quota, QuotaPeriod

    start = clock.now() + timedelta(days=40)
    package = f.create_package()
    slots = [f.create_slot(package=package, capacity=40, starts_at=start + timedelta(hours=2 * n)) for n in range(20)]
    secretary = f.create_secretary()
    colleagues = [f.create_secretary(organisation=secretary.organisation) for _ in range(3)]
    db.session.add(Quota(organisation_id=secretary.organisation_id, category=package.category,
                         period=QuotaPeriod.YEAR, max_bookings=allowed))
    db.session.commit()
    users = [secretary.id] + [c.id for c in colleagues]
    outcome = rush(rush_app, [booking_job(users[n % len(users)], slot.id, 5) for n, slot in enumerate(slots)])
    report("quota rush", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0, [r for r in outcome.results if r[0] == "error"]
    assert counts["ok"] == allowed
    assert counts["ok"] + counts["refused"] + counts["busy"] == 20
    assert all("最多" in error.message for kind, error in outcome.results if kind == "refused")
    db.session.rollback()
    active = db.session.scalar(sa.select(sa.func.count(Booking.id)).where(
        Booking.organisation_id == secretary.organisation_id, Booking.status.not_in([S.CANCELLED, S.DECLINED])))
    assert active == allowed


def test_bookings_of_one_organisation_race_host_cancellations_without_deadlock(app, rush_app):
    """Bookings lock the organisation then a slot; a host's cancellation locks a slot and writes
    rows that refer to the organisation. Neither waits for the other in a cycle."""

    start = clock.now() + timedelta(days=40)
    slots = [f.create_slot(capacity=40, starts_at=start + timedelta(hours=2 * n)) for n in range(10)]
    secretary = f.create_secretary()
    booked = [f.create_booking(slot=slot, organisation=secretary.organisation, headcount=5) for slot in slots[:5]]
    admin_id = f.create_admin().id
    booking_ids = [b.id for b in booked]
    db.session.commit()

    def cancel_job(booking_id):
        def prepare():
            user = db.session.get(User, admin_id)
            user.is_admin  # noqa: B018
            return lambda: services.cancel(user, booking_id, "站点临时调整").id
        return prepare

    secretary_id, free_slot_ids = secretary.id, [slot.id for slot in slots[5:]]
    jobs = [cancel_job(b) for b in booking_ids] + [booking_job(secretary_id, s, 5) for s in free_slot_ids]
    outcome = rush(rush_app, jobs)
    report("book and cancel", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0, [r for r in outcome.results if r[0] == "error"]
    assert counts["ok"] + counts["busy"] == 10


def test_double_click_from_one_organisation_makes_one_booking(app, rush_app):
    slot = f.create_slot(capacity=40)
    secretary = f.create_secretary()
    colleague = f.create_secretary(organisation=secretary.organisation)
    jobs = [booking_job(user_id, slot.id, 5) for user_id in [secretary.id] * 6 + [colleague.id] * 6]
    outcome = rush(rush_app, jobs)
    report("double click", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0 and counts["ok"] == 1
    [booking] = stored(slot.id)
    for _kind, error in (r for r in outcome.results if r[0] == "refused"):
        assert "已预约过" in error.message and error.booking_id == booking.id
    assert_every_booking_has_its_events(slot.id)


def test_concurrent_headcount_increases_never_exceed_capacity(app, rush_app):
    slot = f.create_slot(capacity=40)
    owners = secretaries(10)
    bookings = []
    for user_id in owners:
        user = db.session.get(User, user_id)
        bookings.append(f.create_booking(slot=slot, organisation=user.organisation, headcount=3).id)
    # 30 of 40 held; ten groups each try to grow from 3 to 6: exactly three can.

    def grow(user_id, booking_id):
        def prepare():
            user = db.session.get(User, user_id)
            user.organisation_id  # noqa: B018
            return lambda: services.change_headcount(user, booking_id, 6).id

        return prepare

    outcome = rush(rush_app, [grow(u, b) for u, b in zip(owners, bookings)])
    report("headcount", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0
    # Three fit (ten short transactions: on a sane machine nobody is Busy, so exactly three).
    assert counts["ok"] == min(3, 10 - counts["busy"])
    for _kind, error in (r for r in outcome.results if r[0] == "refused"):
        assert "最多只能再增加1人" in error.message
    assert held(slot.id) == 30 + 3 * counts["ok"] <= 40
    grown = [b for b in stored(slot.id) if b.headcount == 6]
    assert len(grown) == counts["ok"] and all(b.revision == 1 for b in grown)
    assert_every_booking_has_its_events(slot.id)


def test_concurrent_cancellations_and_bookings_hand_places_on(app, rush_app):
    slot = f.create_slot(capacity=20)
    holders = secretaries(4)
    held_ids = []
    for user_id in holders:
        user = db.session.get(User, user_id)
        held_ids.append(f.create_booking(slot=slot, organisation=user.organisation, headcount=5).id)
    newcomers = secretaries(20)

    def cancel(user_id, booking_id):
        def prepare():
            user = db.session.get(User, user_id)
            user.organisation_id  # noqa: B018
            return lambda: services.cancel(user, booking_id, "").id

        return prepare

    jobs = [cancel(u, b) for u, b in zip(holders, held_ids)]
    jobs += [booking_job(user_id, slot.id, 5, join_waitlist=True) for user_id in newcomers]
    outcome = rush(rush_app, jobs)
    report("cancel + book", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0 and counts["refused"] == 0
    bookings = stored(slot.id)
    by_status = Counter(b.status for b in bookings)
    cancelled = by_status[S.CANCELLED]
    assert cancelled + by_status[S.CONFIRMED] + by_status[S.WAITLISTED] == len(bookings)
    # Every freed place went to a newcomer (directly or by promotion) and nobody waits while
    # places are left; all four cancellations go through unless the machine was too slow (Busy).
    assert held(slot.id) == 20 and by_status[S.CONFIRMED] == 4
    assert cancelled == 4 or (counts["busy"] and cancelled >= 4 - counts["busy"])
    assert_every_booking_has_its_events(slot.id)


# -- the same rush through HTTP ---------------------------------------------------------------

def test_fifty_secretaries_rush_the_booking_route(app, rush_app):
    slot = f.create_slot(capacity=40)
    users = [db.session.get(User, user_id) for user_id in secretaries(THREADS)]
    logins = [user.get_id() for user in users]
    slot_id = slot.id
    db.session.commit()
    with rush_app.test_request_context(environ_base=rush_app.test_client().environ_base):
        identifier = _create_identifier()  # session protection "strong": browser fingerprint
    responses = []
    busy_waits = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS + 1, timeout=60)

    def post(i, login_id):
        client = rush_app.test_client()
        with client.session_transaction() as session:  # logged in as Flask-Login would
            session["_user_id"] = login_id
            session["_fresh"] = True
            session["_id"] = identifier
        headers = {"HX-Request": "true"} if i % 2 else {}
        barrier.wait()
        began = time.perf_counter()
        try:
            response = client.post(f"/slots/{slot_id}/book", headers=headers, data={
                "headcount": "5", "contact_name": "王书记", "contact_phone": "13912345678", "note": "",
            })
            result = (response.status_code, response.headers.get("Location", "") + response.get_data(as_text=True),
                      bool(headers))
            if response.status_code == 503:
                with lock:
                    busy_waits.append(time.perf_counter() - began)
        except Exception as error:  # noqa: BLE001
            result = (0, traceback.format_exc()[-1500:], bool(headers))
        with lock:
            responses.append(result)

    threads = [threading.Thread(target=post, args=(i, login)) for i, login in enumerate(logins)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=60)
    seconds = time.perf_counter() - started
    statuses = Counter(status for status, _body, _htmx in responses)
    database = app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0]
    print(f"\n[HTTP book on {database}] requests={len(responses)} {dict(statuses)} in {seconds:.2f}s")

    assert len(responses) == THREADS
    assert not [r for r in responses if r[0] in (0, 500)][:1], [r for r in responses if r[0] in (0, 500)][:1]
    assert set(statuses) <= {200, 302, 422, 503}, statuses
    for status, body, htmx in responses:
        if status == 422:
            assert "名额" in body
            assert ("<html" in body) is not htmx  # the panel for htmx, the whole page without
        elif status == 503:
            assert "请重试" in body or "稍后" in body or "重试" in body
        elif status == 302:
            assert not htmx
        elif status == 200:
            assert htmx and "<html" not in body
    successes = statuses[200] + statuses[302]
    assert successes == 8
    assert_busy_only_after_the_bounded_wait(busy_waits)
    db.session.rollback()
    assert held(slot.id) == 40
    assert len(stored(slot.id)) == 8
    assert_every_booking_has_its_events(slot.id)
