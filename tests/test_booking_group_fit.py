"""Places that fit a group: a slot whose places left hold no group of the package's smallest size
reads and behaves as full — on the menu (and its "only with places left" filter), the package
page, the slot page and its live places element — and booking says what is possible."""
import re

import pytest

from blueprints.booking import services
from blueprints.booking.capacity import Availability, availability_for, fits_a_group
from blueprints.booking.models import BookingStatus
from blueprints.menu import queries
from blueprints.menu.queries import MenuFilters

from . import factories as f


@pytest.mark.parametrize("remaining,min_group,fits", [
    (0, 1, False),
    (1, 1, True),
    (1, 5, False),
    (4, 5, False),
    (5, 5, True),
    (30, 5, True),
    (-2, 1, False),  # capacity lowered below what is held
])
def test_the_rule(remaining, min_group, fits):
    assert fits_a_group(remaining, min_group) is fits


@pytest.mark.parametrize("capacity,held,groups,max_groups,min_group,fits", [
    (20, 19, 1, None, 5, False),  # 1 place left, groups of 5–40
    (20, 15, 1, None, 5, True),
    (20, 5, 1, 1, 1, False),  # group limit reached: no place at all
    (20, 25, 2, None, 1, False),
])
def test_availability_applies_the_rule(capacity, held, groups, max_groups, min_group, fits):
    assert Availability(capacity, held, groups, max_groups).fits_group(min_group) is fits


def _one_place_left(min_group=5, title="只剩一个名额的包"):
    package = f.create_package(title=title, min_group_size=min_group, max_group_size=40)
    slot = f.create_slot(package=package, capacity=20)
    f.create_booking(slot=slot, headcount=19)
    return package, slot


def _badge(html: str, slot_id: int | None = None) -> str:
    if slot_id is not None:
        html = html[html.index(f'data-slot-id="{slot_id}"'):]
    return re.search(r'<span class="places[^>]*>[^<]*</span>', html).group(0)


def _live_badge(html: str) -> str:
    return re.search(r'<span class="places[^>]*id="places-\d+"[^>]*>[^<]*</span>', html).group(0)


def test_sql_filter_and_python_rule_agree(app):
    """The menu's SQL condition is the same rule as Availability.fits_group, slot by slot."""
    cases = []
    for min_group, capacity, held in [(5, 20, 19), (5, 20, 15), (5, 20, 16), (1, 10, 9), (1, 10, 10), (3, 3, 0)]:
        package = f.create_package(min_group_size=min_group, max_group_size=40)
        slot = f.create_slot(package=package, capacity=capacity)
        if held:
            f.create_booking(slot=slot, headcount=held)
        cases.append((package, slot))
    from blueprints.core.extensions import db
    db.session.commit()
    listed = queries.listed_slots([p.id for p, _ in cases], MenuFilters(available_only=True), 10)
    avail = availability_for(s.id for _, s in cases)
    for package, slot in cases:
        in_sql = [s for s, _ in listed[package.id]] == [slot.id]
        assert in_sql is avail[slot.id].fits_group(package.min_group_size), (package.min_group_size, slot.capacity)


@pytest.mark.parametrize("fragment", [False, True])
def test_menu_card_reads_full_when_no_group_fits(client, fragment):
    package, slot = _one_place_left()
    headers = {"HX-Request": "true"} if fragment else {}
    html = client.get("/", headers=headers).get_data(as_text=True)
    assert ("<html" in html) is not fragment
    badge = _badge(html, slot.id)
    assert 'data-remaining="1"' in badge  # still the places left
    assert 'data-bookable="false"' in badge and "places-full" in badge
    assert "已满：剩 1 个，不足 5 人" in badge
    assert "剩余 1 / 20" not in html


def test_menu_card_with_room_for_a_group_is_bookable(client):
    package = f.create_package(min_group_size=5, max_group_size=40)
    slot = f.create_slot(package=package, capacity=20)
    f.create_booking(slot=slot, headcount=15)
    badge = _badge(client.get("/").get_data(as_text=True), slot.id)
    assert 'data-remaining="5"' in badge and 'data-bookable="true"' in badge and "剩余 5 / 20 个名额" in badge


@pytest.mark.parametrize("fragment", [False, True])
def test_available_only_filter_leaves_out_slots_no_group_fits(client, fragment):
    _one_place_left(title="没有一组放得下")
    roomy = f.create_package(title="还放得下一组", min_group_size=5, max_group_size=40)
    f.create_slot(package=roomy, capacity=20)
    headers = {"HX-Request": "true"} if fragment else {}
    html = client.get("/?available=y", headers=headers).get_data(as_text=True)
    results = html[html.index('id="results"'):] if not fragment else html
    assert "还放得下一组" in results and "没有一组放得下" not in results
    # without the filter both are listed, the first as full
    everything = client.get("/").get_data(as_text=True)
    assert "还放得下一组" in everything and "没有一组放得下" in everything


def test_available_only_lists_only_the_slots_a_group_fits(client):
    package = f.create_package(title="两个场次的包", min_group_size=5, max_group_size=40)
    tight = f.create_slot(package=package, capacity=20)
    f.create_booking(slot=tight, headcount=19)
    roomy = f.create_slot(package=package, capacity=20)
    html = client.get("/?available=y").get_data(as_text=True)
    assert f'data-slot-id="{roomy.id}"' in html and f'data-slot-id="{tight.id}"' not in html


@pytest.mark.parametrize("fragment", [False, True])
def test_package_page_reads_full_when_no_group_fits(client, fragment):
    package, slot = _one_place_left()
    headers = {"HX-Request": "true"} if fragment else {}
    html = client.get(f"/packages/{package.id}", headers=headers).get_data(as_text=True)
    assert ("<html" in html) is not fragment
    badge = _badge(html, slot.id)
    assert 'data-remaining="1"' in badge and 'data-bookable="false"' in badge and "places-full" in badge


def test_slot_page_and_places_fragment_read_full_and_offer_the_waitlist(client, login):
    package, slot = _one_place_left()
    anonymous = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    badge = _live_badge(anonymous)
    assert 'data-remaining="1"' in badge and 'data-bookable="false"' in badge and "已满" in badge
    fragment = client.get(f"/slots/{slot.id}/places", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment
    assert 'data-remaining="1"' in fragment and 'data-bookable="false"' in fragment
    assert "hx-get" in fragment  # still live: places freed later show again

    login(f.create_secretary())
    page = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert "仅剩 1 个名额，少于本服务包最少 5 人的要求，暂不能预约" in page
    assert 'name="waitlist" value="1"' in page
    assert '<button type="submit" class="button primary wide">' not in page  # no plain "Book"


def test_booking_refusal_says_the_waitlist_is_what_is_possible(client, login):
    package, slot = _one_place_left()
    user = login(f.create_secretary())
    data = {"headcount": "5", "contact_name": "王书记", "contact_phone": "13900000001"}
    response = client.post(f"/slots/{slot.id}/book", data=data, headers={"HX-Request": "true"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "仅剩 1 个名额，少于本服务包最少 5 人的要求，暂不能预约；可以加入候补。" in html
    assert "减少人数" not in html  # fewer people would not help
    assert 'name="waitlist" value="1"' in html
    joined = client.post(f"/slots/{slot.id}/book", data=dict(data, waitlist="1"))
    assert joined.status_code == 302
    booking = services.active_booking_of(user.organisation_id, slot.id)
    assert booking.status is BookingStatus.WAITLISTED


def test_service_refuses_with_the_group_message(app):
    package, slot = _one_place_left(min_group=3)
    user = f.create_secretary()
    from blueprints.core.extensions import db
    db.session.commit()
    request = services.BookingRequest(headcount=3, contact_name="王书记", contact_phone="13900000001", note="")
    with pytest.raises(services.BookingError) as refused:
        services.book(user, slot.id, request)
    assert refused.value.waitlist_possible and refused.value.field is None
    assert "少于本服务包最少 3 人" in refused.value.message


def test_a_group_of_the_smallest_size_still_books_the_last_places(client, login):
    package = f.create_package(min_group_size=5, max_group_size=40)
    slot = f.create_slot(package=package, capacity=20)
    f.create_booking(slot=slot, headcount=15)
    login(f.create_secretary())
    response = client.post(f"/slots/{slot.id}/book",
                           data={"headcount": "5", "contact_name": "王书记", "contact_phone": "13900000001"})
    assert response.status_code == 302
    badge = _live_badge(client.get(f"/slots/{slot.id}").get_data(as_text=True))
    assert 'data-remaining="0"' in badge and "已约满" in badge


def test_a_slot_with_no_place_left_keeps_its_own_refusal(app):
    package = f.create_package(min_group_size=5, max_group_size=40)
    slot = f.create_slot(package=package, capacity=20)
    f.create_booking(slot=slot, headcount=20)
    user = f.create_secretary()
    from blueprints.core.extensions import db
    db.session.commit()
    request = services.BookingRequest(headcount=5, contact_name="王书记", contact_phone="13900000001", note="")
    with pytest.raises(services.BookingError) as refused:
        services.book(user, slot.id, request)
    assert refused.value.field == "headcount" and "最少" not in refused.value.message
