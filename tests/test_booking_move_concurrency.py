"""Never overbooked while bookings move: moves (改期) and bookings race for the last places of a
slot, moves cross between two slots in opposite directions, a booking is moved twice at once,
a host decides a booking while it moves away. Threads released together at a barrier, each with
its own application context, session and connection (the pattern and helpers of
tests/test_booking_concurrency.py). Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL,
where the row locks really race."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from blueprints.accounts.models import User
from blueprints.booking import services
from blueprints.booking.models import Booking, BookingEvent, BookingStatus
from blueprints.core import clock
from blueprints.core.extensions import db

from . import factories as f
from .test_booking_concurrency import (  # noqa: F401 - fixtures used by name
    booking_job, fast_passwords, held, report, rush, rush_app, secretaries, stored,
)

S = BookingStatus


def move_job(user_id: int, booking_id: int, slot_id: int):
    def prepare():
        user = db.session.get(User, user_id)
        user.organisation_id  # noqa: B018 - loaded now, not under the lock
        return lambda: services.move(user, booking_id, slot_id).slot_id

    return prepare


def approve_job(user_id: int, booking_id: int):
    def prepare():
        user = db.session.get(User, user_id)
        user.is_host  # noqa: B018

        def run():
            try:
                return services.approve(user, booking_id).slot_id
            except services.NotAllowed:  # the booking moved to another station first
                return "not allowed"

        return run

    return prepare


def assert_histories_are_consistent(booking_ids) -> None:
    """Each booking's events form one chain: created first, each from the status the previous one
    left, the last one the booking's status, its revision at least one per change."""
    db.session.rollback()
    for booking in db.session.scalars(sa.select(Booking).where(Booking.id.in_(list(booking_ids)))):
        events = db.session.scalars(
            sa.select(BookingEvent).where(BookingEvent.booking_id == booking.id).order_by(BookingEvent.id)).all()
        assert events[0].action == "created" and events[0].from_status is None, booking
        for before, after in zip(events, events[1:]):
            assert after.from_status is before.to_status, (booking, after.action)
        assert events[-1].to_status is booking.status, booking
        assert booking.revision >= len(events) - 1, booking
        moves = [e for e in events if e.action == "moved"]
        assert all(" → " in e.detail for e in moves)


def _slots(n: int, capacity: int, days: int = 20, package=None):
    package = package or f.create_package(max_group_size=40)
    start = clock.now() + timedelta(days=days)
    return package, [f.create_slot(package=package, station=package.stations[0], capacity=capacity,
                                   starts_at=start + timedelta(hours=3 * i)) for i in range(n)]


def test_moves_and_bookings_race_for_the_last_places_and_never_overbook(app, rush_app):
    package, (target, *sources) = _slots(13, capacity=20)
    filler = f.create_booking(slot=target, headcount=10)  # 10 of 20 held: room for two groups of 5
    movers = secretaries(12)
    moving = []
    for user_id, source in zip(movers, sources):
        user = db.session.get(User, user_id)
        moving.append(f.create_booking(slot=source, organisation=user.organisation, headcount=5).id)
    bookers = secretaries(12)
    jobs = [move_job(u, b, target.id) for u, b in zip(movers, moving)]
    jobs += [booking_job(u, target.id, 5) for u in bookers]
    outcome = rush(rush_app, jobs)
    report("move + book", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0, [r for r in outcome.results if r[0] == "error"]
    assert counts["ok"] == 2 or (counts["busy"] and counts["ok"] <= 2)
    for _kind, error in (r for r in outcome.results if r[0] == "refused"):
        assert "名额" in error.message
    assert held(target.id) == 10 + 5 * counts["ok"] <= 20
    on_target = [b for b in stored(target.id) if b.holds_places]
    assert sum(b.headcount for b in on_target) == held(target.id)
    moved = {b.id for b in on_target} & set(moving)
    for source, booking_id in zip(sources, moving):  # a moved group left its old slot, the others stayed
        assert held(source.id) == (0 if booking_id in moved else 5)
    assert_histories_are_consistent({b.id for b in stored(target.id)} | set(moving) | {filler.id})


def test_moves_crossing_between_two_slots_in_opposite_directions_never_deadlock(app, rush_app):
    package, (a, b) = _slots(2, capacity=200)
    users = secretaries(20)
    jobs, booking_ids = [], []
    for n, user_id in enumerate(users):
        source, target = (a, b) if n % 2 else (b, a)
        user = db.session.get(User, user_id)
        booking = f.create_booking(slot=source, organisation=user.organisation, headcount=5)
        booking_ids.append(booking.id)
        jobs.append(move_job(user_id, booking.id, target.id))
    outcome = rush(rush_app, jobs)
    report("crossing moves", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0 and counts["refused"] == 0, outcome.results
    assert counts["ok"] + counts["busy"] == 20
    assert held(a.id) + held(b.id) == 100
    assert_histories_are_consistent(booking_ids)


def test_one_booking_moved_twice_at_once_moves_once_to_that_slot(app, rush_app):
    package, (source, target) = _slots(2, capacity=40)
    secretary = f.create_secretary()
    colleague = f.create_secretary(organisation=secretary.organisation)
    booking = f.create_booking(slot=source, organisation=secretary.organisation, headcount=5)
    jobs = [move_job(u, booking.id, target.id) for u in [secretary.id, colleague.id] * 5]
    outcome = rush(rush_app, jobs)
    report("double move", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0 and counts["ok"] == 1, outcome.results
    for _kind, error in (r for r in outcome.results if r[0] == "refused"):
        assert "已在这个场次" in error.message
    assert held(source.id) == 0 and held(target.id) == 5
    assert_histories_are_consistent([booking.id])
    db.session.rollback()
    assert [e.action for e in db.session.get(Booking, booking.id).events] == ["created", "moved"]


def test_a_host_deciding_a_booking_that_moves_away_decides_it_only_while_it_is_theirs(app, rush_app):
    """The host's approval locks the slot the booking was on; if the move won, it finds the
    booking on another station's slot and may no longer decide it (services._locked_booking)."""
    x, y = f.create_station(requires_approval=True), f.create_station(requires_approval=True)
    package = f.create_package(stations=[x, y])
    start = clock.now() + timedelta(days=20)
    host = f.create_host(stations=[x])
    pairs = []
    for i in range(8):
        old = f.create_slot(package=package, station=x, starts_at=start + timedelta(hours=3 * i))
        new = f.create_slot(package=package, station=y, starts_at=start + timedelta(hours=3 * i + 1))
        secretary = f.create_secretary()
        booking = f.create_booking(slot=old, organisation=secretary.organisation, status=S.PENDING)
        pairs.append((secretary.id, booking.id, new.id))
    jobs = []
    for secretary_id, booking_id, new_id in pairs:
        jobs += [move_job(secretary_id, booking_id, new_id), approve_job(host.id, booking_id)]
    outcome = rush(rush_app, jobs)
    report("move + approve", app, outcome)
    assert outcome.count()["error"] == 0, outcome.results
    db.session.rollback()
    for _secretary_id, booking_id, new_id in pairs:
        booking = db.session.get(Booking, booking_id)
        actions = [e.action for e in booking.events]
        if booking.slot_id == new_id:  # moved: pending at Y, whatever X's host did before
            assert booking.status is S.PENDING and actions[-1] == "moved", actions
        else:  # the move was Busy: X's host decided it (or was Busy too)
            assert outcome.count()["busy"], actions
            assert actions in (["created", "approved"], ["created"]), actions
    assert_histories_are_consistent([b for _s, b, _n in pairs])
    gone = sum(1 for kind, value in outcome.results if kind == "ok" and value == "not allowed")
    print(f"  approvals that found the booking moved to another station: {gone} of {len(pairs)}")


def test_moves_out_of_a_full_slot_hand_its_places_to_the_waitlist_and_newcomers(app, rush_app):
    package, (full, *elsewhere) = _slots(5, capacity=20)
    holders = secretaries(4)
    holding = []
    for user_id in holders:
        user = db.session.get(User, user_id)
        holding.append(f.create_booking(slot=full, organisation=user.organisation, headcount=5).id)
    newcomers = secretaries(12)
    jobs = [move_job(u, b, s.id) for u, b, s in zip(holders, holding, elsewhere)]
    jobs += [booking_job(u, full.id, 5, join_waitlist=True) for u in newcomers]
    outcome = rush(rush_app, jobs)
    report("move out + waitlist", app, outcome)
    counts = outcome.count()
    assert counts["error"] == 0 and counts["refused"] == 0, outcome.results
    bookings = stored(full.id)
    statuses = Counter(b.status for b in bookings)
    # Every place a move freed went to a newcomer (at once or from the waitlist): the slot stays
    # full with four groups, never more; nobody waits while places are left.
    assert held(full.id) == 20 and statuses[S.CONFIRMED] == 4
    stayed = [b for b in bookings if b.id in holding]
    moved = [b for b in db.session.scalars(sa.select(Booking).where(Booking.id.in_(holding)))
             if b.slot_id != full.id]
    assert all(b.status is S.CONFIRMED and b.events[-1].action == "moved" for b in moved)
    assert len(moved) + len(stayed) == 4
    assert_histories_are_consistent({b.id for b in bookings} | set(holding))



def test_a_headcount_raise_waiting_for_the_old_slots_lock_counts_the_places_of_the_new_slot(
        app, rush_app, monkeypatch):
    """The interleaving made certain: the move holds the old slot's lock a moment longer, and a
    colleague's headcount raise has read the booking's (old) slot and waits for that lock. Once
    it has it, the booking is on the new slot, whose places are the ones that count
    (``services._locked_booking`` locks the slot the booking is on now): never overbooked."""
    import time

    arrival = services._arrival_problems

    def slowly(*args):
        time.sleep(0.4)
        return arrival(*args)

    monkeypatch.setattr(services, "_arrival_problems", slowly)
    package, (old, new) = _slots(2, capacity=40)
    new.capacity = 16
    f.create_booking(slot=new, headcount=11)
    secretary = f.create_secretary()
    colleague = f.create_secretary(organisation=secretary.organisation)
    booking = f.create_booking(slot=old, organisation=secretary.organisation, headcount=5)

    def late_raise():
        user = db.session.get(User, colleague.id)
        user.organisation_id  # noqa: B018

        def later():
            time.sleep(0.15)  # after the move has its locks, before it commits
            return services.change_headcount(user, booking.id, 10).headcount

        return later

    outcome = rush(rush_app, [move_job(secretary.id, booking.id, new.id), late_raise])
    report("headcount behind a move", app, outcome)
    kinds = sorted(kind for kind, _value in outcome.results)
    assert kinds == ["ok", "refused"], outcome.results
    [(_kind, error)] = [r for r in outcome.results if r[0] == "refused"]
    assert "最多只能再增加0人" in error.message
    assert held(new.id) == 16 and held(old.id) == 0
