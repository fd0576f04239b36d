"""What a review of the hardening found still open, each shown fixed."""
from __future__ import annotations

import io
import threading

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from sqlalchemy.exc import IntegrityError

from blueprints.accounts.models import User
from blueprints.booking.models import Booking
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.feeds import services as feed_services
from blueprints.feeds.models import FeedKind, FeedToken

from . import factories as f


@pytest.fixture
def slot(frozen_now):
    station = f.create_station()
    return f.create_slot(package=f.create_package(stations=[station], min_group_size=1), station=station)


def test_multipart_login_with_a_file_where_the_username_belongs_is_refused_not_a_500(client):
    data = {"username": (io.BytesIO(b"abc"), "u.txt"), "password": "x" * 12}
    response = client.post("/login", data=data, content_type="multipart/form-data")
    assert response.status_code == 422


def test_secretary_multipart_booking_with_a_file_as_contact_name_books_nothing(client, login, slot):
    login(f.create_secretary())
    data = {"headcount": "5", "contact_name": (io.BytesIO(b"abc"), "u.txt"), "contact_phone": "13912345678"}
    response = client.post(f"/slots/{slot.id}/book", data=data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0


@pytest.mark.parametrize("text", ["王\uffff书记", "王\ufffe书记"])
def test_secretary_noncharacters_in_a_contact_name_are_refused(client, login, slot, text):
    login(f.create_secretary())
    response = client.post(f"/slots/{slot.id}/book",
                           data={"headcount": "5", "contact_name": text, "contact_phone": "13912345678"})
    assert response.status_code == 422 and "U+FFF" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 0


def test_host_roster_xlsx_stays_well_formed_with_noncharacters_already_stored(client, login, slot):
    f.create_booking(slot=slot, headcount=5, contact_name="王\uffff书记", note="备注\ufffe")
    login(f.create_host(stations=[slot.station]))
    response = client.get(f"/host/slots/{slot.id}/roster.xlsx")
    assert response.status_code == 200
    cells = [c.value for row in load_workbook(io.BytesIO(response.data)).active.iter_rows() for c in row]
    assert "王书记" in cells  # the file parses: the noncharacter was dropped


def test_two_simultaneous_first_logins_make_one_feed_token(app):
    user_id = f.create_secretary().id
    barrier = threading.Barrier(2)
    errors = []

    def first_login():
        with app.app_context():
            try:
                user = db.session.get(User, user_id)
                user.organisation  # noqa: B018 - loaded before the start signal
                barrier.wait()
                feed_services.make_missing_tokens(user)
            except Exception as error:  # noqa: BLE001 - any error fails the test
                errors.append(repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=first_login) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    db.session.rollback()
    assert not errors
    assert db.session.scalar(sa.select(sa.func.count(FeedToken.id)).where(FeedToken.user_id == user_id)) == 1


def test_the_database_refuses_a_second_token_for_the_same_feed():
    secretary = f.create_secretary()
    for _ in range(2):
        db.session.add(FeedToken(token=feed_services.new_token(), user_id=secretary.id, kind=FeedKind.ORGANISATION,
                                 organisation_id=secretary.organisation_id, created_at=clock.now()))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
