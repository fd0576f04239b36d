"""A slot that has filled: the requests that follow are refused without waiting for its lock, and
the refused form comes back on the slot page whose public part is the cached one.

When a popular slot fills, most of the requests that follow are refusals (bench/RESULTS.md, the
rush): they must not queue behind the bookings that hold the slot's lock, nor build the whole
page again.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from blueprints.booking import services
from blueprints.booking.models import Booking, BookingStatus
from blueprints.core.extensions import db

from . import factories as f
from .cache_support import use_cache
from .conftest import FROZEN_NOW


@pytest.fixture
def full_slot(frozen_now):
    station = f.create_station(name="虹桥天地党群服务站")
    package = f.create_package(title="红色经典诵读", stations=[station], min_group_size=5, max_group_size=40)
    slot = f.create_slot(package=package, station=station, capacity=20, starts_at=FROZEN_NOW + timedelta(days=5))
    f.create_booking(slot=slot, headcount=20)
    return slot


def _request(headcount=8):
    return services.BookingRequest(headcount, "王书记", "13900000000", "")


def _no_locks(monkeypatch):
    def locked(*args, **kwargs):
        raise AssertionError("took the slot's lock")

    monkeypatch.setattr(services, "_locked_organisation_and_slot", locked)


def test_a_full_slot_refuses_without_taking_its_lock_secretary(full_slot, monkeypatch):
    secretary = f.create_secretary()
    _no_locks(monkeypatch)
    with pytest.raises(services.BookingError) as refused:
        services.book(secretary, full_slot.id, _request())
    assert "waitlist" in refused.value.message or "候补" in refused.value.message
    assert refused.value.waitlist_possible
    assert db.session.query(Booking).filter_by(organisation_id=secretary.organisation_id).count() == 0


def test_the_unlocked_refusal_names_every_reason_as_the_locked_one_does_secretary(full_slot, monkeypatch):
    secretary = f.create_secretary()
    too_many = _request(headcount=99)  # beyond the package's groups and beyond the places
    with pytest.raises(services.BookingError) as locked:
        services.book(secretary, full_slot.id, too_many)
    with monkeypatch.context() as patched:
        patched.setattr(services, "availability_for", lambda ids: {})  # as if the pre-check found room
        _no_locks(patched)
        with pytest.raises(AssertionError, match="lock"):
            services.book(secretary, full_slot.id, too_many)
    _no_locks(monkeypatch)
    with pytest.raises(services.BookingError) as unlocked:
        services.book(secretary, full_slot.id, too_many)
    assert [p.message for p in unlocked.value.problems] == [p.message for p in locked.value.problems]


@pytest.mark.parametrize("join_waitlist", [False, True])
def test_a_slot_with_room_and_the_waitlist_are_decided_under_the_lock_secretary(frozen_now, monkeypatch,
                                                                              join_waitlist, full_slot):
    secretary = f.create_secretary()
    taken = []
    original = services._locked_organisation_and_slot
    monkeypatch.setattr(services, "_locked_organisation_and_slot",
                        lambda *a: taken.append(a) or original(*a))
    roomy = f.create_slot(package=full_slot.package, station=full_slot.station, capacity=30,
                          starts_at=FROZEN_NOW + timedelta(days=6))
    target = full_slot if join_waitlist else roomy
    booking = services.book(secretary, target.id, _request(), join_waitlist=join_waitlist)
    assert taken and booking.status is (BookingStatus.WAITLISTED if join_waitlist else BookingStatus.CONFIRMED)


def test_a_place_freed_after_the_refusal_is_booked_at_the_next_request_secretary(full_slot):
    secretary = f.create_secretary()
    with pytest.raises(services.BookingError):
        services.book(secretary, full_slot.id, _request())
    holder = db.session.query(Booking).filter_by(slot_id=full_slot.id).one()
    holder.headcount = 10
    db.session.commit()
    assert services.book(secretary, full_slot.id, _request()).status is BookingStatus.CONFIRMED


@pytest.mark.parametrize("mode", ["file", "redis"])
def test_refused_form_on_the_cached_slot_page_is_this_users_alone_secretary(app, client, login, full_slot, mode,
                                                                          monkeypatch):
    use_cache(app, monkeypatch, mode)
    client.get(f"/slots/{full_slot.id}")  # a visitor fills the cache
    mine = login(f.create_secretary(display_name="甲支部书记"))
    response = client.post(f"/slots/{full_slot.id}/book",
                           data={"headcount": "8", "contact_name": "甲联系人", "contact_phone": "13900000001"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in html and "红色经典诵读" in html  # the whole page, public part included
    assert 'value="甲联系人"' in html and "候补" in html  # this request's form and its error
    assert mine.display_name in html
    client.post("/logout")
    theirs = f.create_secretary(display_name="乙支部书记")
    other = app.test_client()
    other.post("/login", data={"username": theirs.username, "password": f.PASSWORD})
    seen = other.get(f"/slots/{full_slot.id}").get_data(as_text=True)
    assert "甲联系人" not in seen and "甲支部书记" not in seen and theirs.display_name in seen
    assert re.search(r'name="headcount"[^>]*>', seen)


def test_refused_form_as_htmx_is_the_panel_alone_secretary(client, login, full_slot, htmx_headers):
    login(f.create_secretary())
    response = client.post(f"/slots/{full_slot.id}/book", headers=htmx_headers,
                           data={"headcount": "8", "contact_name": "甲联系人", "contact_phone": "13900000001"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in html and 'value="甲联系人"' in html


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "fragment"])
def test_the_refused_panel_shows_what_the_refusal_read_without_reading_it_again_secretary(
        client, login, full_slot, htmx, htmx_headers, count_queries):
    """The unlocked refusal hands its reading (the slot, its places, the organisation's booking)
    to the panel: five statements in all — the slot, its places, whether the package is still
    offered there, the organisation's booking, its quotas — instead of thirteen, and the panel
    shows the places that refused."""
    login(f.create_secretary())
    client.get(f"/slots/{full_slot.id}")  # the public part cached, the session's user kept
    with count_queries() as counter:
        response = client.post(f"/slots/{full_slot.id}/book", headers=htmx_headers if htmx else {},
                               data={"headcount": "8", "contact_name": "甲联系人", "contact_phone": "13900000001"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and 'value="甲联系人"' in html and "候补" in html
    assert re.search(r"已满|剩余\s*0", html), html[:2000]
    assert counter.count <= 6, counter.statements


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "fragment"])
def test_a_booking_post_issues_a_bounded_number_of_statements_secretary(
        client, login, frozen_now, htmx, htmx_headers, count_queries):
    """The booking POST (bench/RESULTS.md, the rush): the slot, the unlocked look at its places,
    the organisation's and the slot's locks, the rules' reads, three INSERTs and the recipients of
    the notification — the acting user is not loaded again after the first look's rollback —
    then the booking and the user again after the commit; the fragment reads the slot's panel."""
    station = f.create_station(name="七宝党群服务站")
    package = f.create_package(title="党章学习", stations=[station], min_group_size=1, max_group_size=40)
    slot = f.create_slot(package=package, station=station, capacity=20, starts_at=FROZEN_NOW + timedelta(days=5))
    slot_id = slot.id
    login(f.create_secretary())
    client.get(f"/slots/{slot_id}")
    with count_queries() as counter:
        response = client.post(f"/slots/{slot_id}/book", headers=htmx_headers if htmx else {},
                               data={"headcount": "8", "contact_name": "甲联系人", "contact_phone": "13900000001"})
    booking = db.session.scalar(sa.select(Booking).where(Booking.slot_id == slot_id))
    assert booking is not None and booking.status is BookingStatus.CONFIRMED and booking.headcount == 8
    if htmx:
        assert response.status_code == 200 and "<html" not in response.get_data(as_text=True)
    else:
        assert response.status_code == 302 and response.headers["Location"].endswith(f"/bookings/{booking.id}")
    short = [" ".join(s.split())[:90] for s in counter.statements]
    inserts = [i for i, s in enumerate(short) if s.startswith("INSERT")]
    assert len(inserts) == 3, short  # the booking, its history, the notification
    assert inserts[-1] + 1 <= 12, short
    assert sum(s.startswith("SELECT users") for s in short[:inserts[0]]) == 0, short
    assert len(short) <= (20 if htmx else 14), short
