"""Which packages and slots a menu page lists is kept apart from the cards: a booking changes the
places of one card, not the list, so the first view after it loads only that card again; a new
slot, a deactivated package, a slot that starts or fills change the list at once."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from blueprints.booking import services as booking_services
from blueprints.core.extensions import db

from . import factories as f
from .cache_support import use_cache
from .conftest import FROZEN_NOW


@pytest.fixture(params=["file", "redis"])
def cache_mode(request, app, monkeypatch, frozen_now):
    use_cache(app, monkeypatch, request.param)
    return request.param


@pytest.fixture
def menu(frozen_now):
    station = f.create_station(name="七宝老街党群服务站")
    first = f.create_package(title="红色经典诵读", stations=[station], min_group_size=5, max_group_size=40)
    second = f.create_package(title="社区志愿服务", stations=[station], min_group_size=5, max_group_size=40)
    slots = [f.create_slot(package=package, station=station, capacity=30,
                           starts_at=FROZEN_NOW + timedelta(days=3 + n))
             for n, package in enumerate([first, first, second])]
    return station, first, second, slots


def _listed_slot_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-slot-id="(\d+)"', html)]


def _remaining(html: str, slot_id: int) -> int:
    return int(re.search(rf'data-slot-id="{slot_id}".*?data-remaining="(\d+)"', html, re.S).group(1))


def test_after_a_booking_only_the_booked_slots_card_is_loaded_again(client, menu, cache_mode, count_queries):
    station, first, second, slots = menu
    client.get("/")
    with count_queries() as warm:
        client.get("/")
    assert warm.count == 0
    booking_services.book(f.create_secretary(), slots[0].id, booking_services.BookingRequest(10, "王书记", "13900000000", ""))
    with count_queries() as after:
        html = client.get("/").get_data(as_text=True)
    assert _remaining(html, slots[0].id) == 20
    assert after.count <= 4  # that card's packages, stations, slots and places; the list is kept


def test_a_new_slot_is_listed_at_once(client, menu, cache_mode):
    station, first, second, slots = menu
    client.get("/")
    added = f.create_slot(package=second, station=station, capacity=30, starts_at=FROZEN_NOW + timedelta(days=9))
    assert added.id in _listed_slot_ids(client.get("/").get_data(as_text=True))


def test_a_deactivated_package_leaves_the_menu_at_once(client, menu, cache_mode):
    station, first, second, slots = menu
    assert "社区志愿服务" in client.get("/").get_data(as_text=True)
    second.active = False
    db.session.commit()
    assert "社区志愿服务" not in client.get("/").get_data(as_text=True)


def test_a_slot_that_starts_leaves_the_list_at_its_start(client, menu, cache_mode, frozen_now):
    station, first, second, slots = menu
    assert slots[0].id in _listed_slot_ids(client.get("/").get_data(as_text=True))
    frozen_now.set(slots[0].starts_at + timedelta(minutes=1))
    listed = _listed_slot_ids(client.get("/").get_data(as_text=True))
    assert slots[0].id not in listed and slots[1].id in listed


def test_with_only_places_left_a_slot_that_fills_leaves_at_once(client, menu, cache_mode):
    station, first, second, slots = menu
    assert slots[2].id in _listed_slot_ids(client.get("/?available=y").get_data(as_text=True))
    booking_services.book(f.create_secretary(), slots[2].id, booking_services.BookingRequest(30, "王书记", "13900000000", ""))
    html = client.get("/?available=y").get_data(as_text=True)
    assert slots[2].id not in _listed_slot_ids(html) and "社区志愿服务" not in html


def test_free_text_searches_keep_no_list(app, client, menu, cache_mode, count_queries):
    client.get("/?q=诵读")
    with count_queries() as again:
        html = client.get("/?q=诵读").get_data(as_text=True)
    assert "红色经典诵读" in html and "社区志愿服务" not in html
    assert again.count >= 3  # built every time: the ids, then the cards


def test_spellings_of_one_page_make_one_entry(app, client, menu, cache_mode):
    from blueprints.core import render_cache

    entries = app.extensions["render_cache"].entries
    local = entries.local if isinstance(entries, render_cache.TieredEntries) else entries
    first = client.get("/?category=theory&available=y").get_data(as_text=True)
    before = len(local.items)
    for query in ("category=theory&available=on&page=1", "category=theory&available=1&page=01",
                  "available=y&category=theory&page=001&page=7", "category=theory&category=practice&available=y"):
        html = client.get(f"/?{query}").get_data(as_text=True)
        assert _listed_slot_ids(html) == _listed_slot_ids(first)
    assert len(local.items) == before
