"""The menu, package and slot pages from the render cache: what a hit saves, that every change and
every passing moment shows at once, and that nothing personal is ever shared.

Each test runs with per-process entries and the versions file (the SQLite default) and with Redis
(the machine's when TEST_REDIS_URL is set, an in-memory fake otherwise).
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import redis

from blueprints.booking import services as booking_services
from blueprints.core import page_cache
from blueprints.core.extensions import db
from blueprints.host import services as host_services

from . import factories as f
from .cache_support import use_cache
from .conftest import FROZEN_NOW

CSRF = re.compile(r'(name="csrf_token" value="|"X-CSRFToken": ")([^"]+)"')


@pytest.fixture(params=["file", "redis"])
def cache_mode(request, app, monkeypatch, frozen_now):
    use_cache(app, monkeypatch, request.param)
    return request.param


@pytest.fixture
def scene(frozen_now):
    station = f.create_station(name="七宝老街党群服务站")
    package = f.create_package(title="红色经典诵读", stations=[station], min_group_size=5, max_group_size=40)
    slot = f.create_slot(package=package, station=station, capacity=30,
                         starts_at=FROZEN_NOW + timedelta(days=3))
    return station, package, slot


def _uncached(app, monkeypatch, client, url, **kwargs):
    with monkeypatch.context() as m:
        m.delitem(app.extensions, "render_cache")
        return client.get(url, **kwargs)


def _without_tokens(html: str) -> str:
    return CSRF.sub(r"\1TOKEN", html)


def _remaining(html: str, slot_id: int) -> str:
    match = re.search(rf'data-slot-id="{slot_id}".*?data-remaining="(\d+)"', html, re.S) or \
        re.search(rf'id="places-{slot_id}"\s+data-remaining="(\d+)"', html)
    return match.group(1)


PAGES = ["/", "/?category=theory", "/packages/{package}", "/slots/{slot}"]


def _urls(scene):
    station, package, slot = scene
    return [p.format(package=package.id, slot=slot.id) for p in PAGES]


def test_anonymous_hits_ask_no_sql_and_equal_a_fresh_render(app, monkeypatch, client, scene, cache_mode,
                                                             count_queries):
    for url in _urls(scene):
        first = client.get(url)
        with count_queries() as counter:
            hit = client.get(url)
        assert counter.count == 0, url
        fresh = _uncached(app, monkeypatch, client, url)
        assert hit.status_code == fresh.status_code == 200
        assert _without_tokens(hit.get_data(as_text=True)) == _without_tokens(fresh.get_data(as_text=True))
        assert page_cache.CSRF_PLACEHOLDER not in hit.get_data(as_text=True)
        assert first.get_data() == hit.get_data()


def test_htmx_fragments_are_cached_and_equal_a_fresh_render(app, monkeypatch, client, scene, cache_mode,
                                                             count_queries, htmx_headers):
    station, package, slot = scene
    for url in ["/?category=theory", f"/packages/{package.id}", f"/slots/{slot.id}/places"]:
        client.get(url, headers=htmx_headers)
        with count_queries() as counter:
            hit = client.get(url, headers=htmx_headers)
        assert counter.count == 0, url
        assert "<html" not in hit.get_data(as_text=True)
        fresh = _uncached(app, monkeypatch, client, url, headers=htmx_headers)
        assert hit.get_data() == fresh.get_data()


def test_every_session_gets_its_own_csrf_token_never_anothers(app, scene, cache_mode):
    one, two = app.test_client(), app.test_client()
    tokens = []
    for client in (one, two):
        html = client.get("/").get_data(as_text=True)
        tokens.append({m.group(2) for m in CSRF.finditer(html)})
    assert tokens[0] and tokens[1] and not tokens[0] & tokens[1]
    with one.session_transaction() as s1, two.session_transaction() as s2:
        assert s1["csrf_token"] != s2["csrf_token"]


def test_a_booking_shows_at_once_on_every_page_that_lists_the_slot(client, scene, cache_mode):
    station, package, slot = scene
    urls = _urls(scene)
    assert all(_remaining(client.get(u).get_data(as_text=True), slot.id) == "30" for u in urls)
    secretary = f.create_secretary()
    booking_services.book(secretary, slot.id, booking_services.BookingRequest(12, "王书记", "13900000000", ""))
    for url in urls:
        assert _remaining(client.get(url).get_data(as_text=True), slot.id) == "18", url
    fragment = client.get(f"/slots/{slot.id}/places", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'data-remaining="18"' in fragment


def test_a_host_changing_capacity_and_an_admin_renaming_show_at_once(client, scene, cache_mode):
    station, package, slot = scene
    host = f.create_host(stations=[station])
    urls = _urls(scene)
    for url in urls:
        client.get(url)
    host_services.change_capacity(host, slot.id, 45)
    assert all(_remaining(client.get(u).get_data(as_text=True), slot.id) == "45" for u in urls)
    package.title = "新时代理论宣讲"
    station.name = "七宝党群服务中心"
    db.session.commit()
    for url in urls:
        html = client.get(url).get_data(as_text=True)
        assert "新时代理论宣讲" in html and "红色经典诵读" not in html, url
    assert "七宝党群服务中心" in client.get(f"/slots/{slot.id}").get_data(as_text=True)


def test_a_slot_that_starts_leaves_the_menu_at_that_moment(client, frozen_now, scene, cache_mode):
    station, package, slot = scene
    later = f.create_slot(package=package, station=station, starts_at=FROZEN_NOW + timedelta(days=5))
    assert f'data-slot-id="{slot.id}"' in client.get("/").get_data(as_text=True)
    frozen_now.set(slot.starts_at - timedelta(seconds=1))
    assert f'data-slot-id="{slot.id}"' in client.get("/").get_data(as_text=True)
    frozen_now.set(slot.starts_at + timedelta(seconds=1))
    html = client.get("/").get_data(as_text=True)
    assert f'data-slot-id="{slot.id}"' not in html and f'data-slot-id="{later.id}"' in html
    package_page = client.get(f"/packages/{package.id}").get_data(as_text=True)
    assert f'data-slot-id="{slot.id}"' not in package_page


def test_a_new_slot_enters_the_menu_at_once(client, scene, cache_mode):
    station, package, slot = scene
    other = f.create_package(title="垃圾分类志愿服务", stations=[station])
    assert "垃圾分类志愿服务" in client.get("/").get_data(as_text=True)
    new = f.create_slot(package=other, station=station, starts_at=FROZEN_NOW + timedelta(days=2))
    assert f'data-slot-id="{new.id}"' in client.get("/").get_data(as_text=True)
    assert f'data-slot-id="{new.id}"' in client.get(f"/?station={station.id}").get_data(as_text=True)


def test_only_slots_with_places_follow_bookings_on_other_slots(client, scene, cache_mode):
    station, package, slot = scene
    assert f'data-package-id="{package.id}"' in client.get("/?available=y").get_data(as_text=True)
    f.create_booking(slot=slot, headcount=30)
    assert f'data-package-id="{package.id}"' not in client.get("/?available=y").get_data(as_text=True)


def test_secretary_pages_keep_their_own_parts_personal(app, client, login, scene, cache_mode, count_queries):
    station, package, slot = scene
    client.get(f"/slots/{slot.id}")  # an anonymous visitor fills the cache first
    mine, theirs = f.create_secretary(), f.create_secretary()
    booking_services.book(mine, slot.id, booking_services.BookingRequest(10, "王书记", "13900000000", ""))
    login(mine)
    html = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert mine.display_name in html and "View, change or cancel" in html or "查看" in html
    assert _remaining(html, slot.id) == "20"
    client.post("/logout")
    other_client = app.test_client()
    other_client.post("/login", data={"username": theirs.username, "password": f.PASSWORD})
    other_html = other_client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert mine.display_name not in other_html and theirs.display_name in other_html
    assert 'name="headcount"' in other_html  # their own booking form
    assert _remaining(other_html, slot.id) == "20"
    menu = other_client.get("/").get_data(as_text=True)
    assert theirs.display_name in menu and mine.display_name not in menu
    with count_queries() as counter:
        other_client.get("/")
    assert counter.count == 0  # the user kept by this process, the badge and the menu from the cache


def test_anonymous_page_answers_if_none_match_per_session(app, client, scene, cache_mode):
    etag = client.get("/").headers["ETag"]
    assert etag.startswith('W/"')
    again = client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    other = app.test_client()
    other.get("/")
    assert other.get("/", headers={"If-None-Match": etag}).status_code == 200
    f.create_booking(slot=scene[2], headcount=5)
    assert client.get("/", headers={"If-None-Match": etag}).status_code == 200


def test_flashed_messages_are_never_cached(app, client, scene, cache_mode):
    client.get("/")
    with client.session_transaction() as session:
        session["_flashes"] = [("success", "一条只给这位访客的消息")]
    assert "一条只给这位访客的消息" in client.get("/").get_data(as_text=True)
    assert "一条只给这位访客的消息" not in client.get("/").get_data(as_text=True)
    assert "一条只给这位访客的消息" not in app.test_client().get("/").get_data(as_text=True)


def test_invalid_filters_answer_422_every_time_and_are_not_kept(app, client, scene, cache_mode):
    from blueprints.core import render_cache

    entries = app.extensions["render_cache"].entries
    local = entries.local if isinstance(entries, render_cache.TieredEntries) else entries
    client.get("/")
    before = len(local.items)
    for spelling in ("not-a-date", "2026-13-01", "yesterday"):
        assert client.get(f"/?date_from={spelling}").status_code == 422
        assert client.get(f"/?date_from={spelling}").status_code == 422
    assert len(local.items) == before  # a refusal per spelling would fill the cache


def test_locales_are_cached_apart(client, scene, cache_mode):
    chinese = client.get("/").get_data(as_text=True)
    client.post("/lang", data={"lang": "en", "next": "/"})
    english = client.get("/").get_data(as_text=True)
    assert "主题党日服务菜单" in chinese and "Themed Party-day service menu" in english


def test_redis_down_pages_answer_from_the_database(app, client, monkeypatch, scene, caplog):
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    use_cache(app, monkeypatch, "redis", client=dead)
    station, package, slot = scene
    for url in _urls(scene):
        assert client.get(url).status_code == 200
    f.create_booking(slot=slot, headcount=4)
    assert _remaining(client.get(f"/slots/{slot.id}").get_data(as_text=True), slot.id) == "26"
    assert "could not bump" in caplog.text  # and every page above came from the database


def test_with_redis_another_instance_serves_what_one_built_without_sql(app, client, monkeypatch, scene,
                                                                        count_queries):
    from blueprints.core import render_cache

    from .cache_support import fresh_redis

    shared = fresh_redis()
    use_cache(app, monkeypatch, "redis", client=shared)
    url = f"/packages/{scene[1].id}"
    built = client.get(url)
    # A second instance: its own process memory, the same Redis.
    store = app.extensions["change_versions"]
    monkeypatch.setitem(app.extensions, "render_cache", render_cache.RenderCache(
        store, render_cache.TieredEntries(render_cache.MemoryEntries(), render_cache.RedisEntries(shared)),
        render_cache.code_version()))
    with count_queries() as counter:
        served = client.get(url)
    # The same page; each answer signs the session's CSRF token anew (its timestamp may differ).
    assert counter.count == 0 and _without_tokens(served.get_data(as_text=True)) == _without_tokens(
        built.get_data(as_text=True))


def test_an_anonymous_visitors_session_cookie_is_set_once_not_on_every_page(client, scene, cache_mode):
    first = client.get("/")
    assert "session=" in first.headers.get("Set-Cookie", "")
    for url in _urls(scene):
        assert "Set-Cookie" not in client.get(url).headers, url


def test_the_unread_badge_is_kept_until_the_users_notifications_change(client, login, scene, cache_mode,
                                                                        count_queries):
    from blueprints.booking.models import Notification

    station, package, slot = scene
    secretary = login(f.create_secretary())
    client.get("/")
    with count_queries() as counter:
        page = client.get("/").get_data(as_text=True)
    assert counter.count == 0  # the user from this process's copy, the badge and the menu from the cache
    assert 'id="unread-badge" class="badge hidden"' in page
    db.session.add(Notification(user_id=secretary.id, kind="booking_confirmed", params={}))
    db.session.commit()
    assert '>1</span>' in client.get("/").get_data(as_text=True)
    client.post("/notifications/read")
    assert 'class="badge hidden"' in client.get("/").get_data(as_text=True)


def test_unknown_arguments_make_no_new_entries_and_never_reach_the_page(app, client, scene, cache_mode):
    from blueprints.core import render_cache

    client.get("/?category=theory")
    entries = app.extensions["render_cache"].entries
    local = entries.local if isinstance(entries, render_cache.TieredEntries) else entries
    before = len(local.items)
    other = app.test_client()
    html = other.get("/?category=theory&utm_source=%3Cx%3E&junk=1").get_data(as_text=True)
    assert len(local.items) == before  # the same entry
    assert "utm_source" not in html and "junk" not in html
    assert 'name="next" value="/?category=theory"' in html


def test_free_text_searches_are_answered_but_not_kept(app, client, scene, cache_mode, count_queries):
    client.get("/?q=%E7%BB%8F%E5%85%B8")
    with count_queries() as counter:
        assert "红色经典诵读" in client.get("/?q=%E7%BB%8F%E5%85%B8").get_data(as_text=True)
    assert counter.count > 0


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def _logged_in(app, user):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"username": user.username, "password": f.PASSWORD,
                                           "csrf_token": _token(page)})
    assert response.status_code == 302
    return client


def test_the_cached_booking_panel_carries_each_sessions_own_csrf_token(app, monkeypatch, scene, cache_mode):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    station, package, slot = scene
    secretary = f.create_secretary()
    phone, laptop = _logged_in(app, secretary), _logged_in(app, secretary)  # one user, two sessions
    first = phone.get(f"/slots/{slot.id}").get_data(as_text=True)
    second = laptop.get(f"/slots/{slot.id}").get_data(as_text=True)  # the panel from the cache
    assert page_cache.CSRF_PLACEHOLDER not in second
    form_token = re.search(r'<form method="post" action="/slots/\d+/book".*?value="([^"]+)"', second, re.S)
    assert form_token and form_token.group(1) != re.search(
        r'<form method="post" action="/slots/\d+/book".*?value="([^"]+)"', first, re.S).group(1)
    booked = laptop.post(f"/slots/{slot.id}/book", data={
        "csrf_token": form_token.group(1), "headcount": "8", "contact_name": "王书记",
        "contact_phone": "13900000000", "note": ""})
    assert booked.status_code == 302, booked.get_data(as_text=True)[:500]


def test_an_anonymous_visitor_with_a_flash_sees_the_slot_page(client, scene, cache_mode):
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "您已退出登录。")]
    page = client.get(f"/slots/{scene[2].id}")
    assert page.status_code == 200 and "您已退出登录。" in page.get_data(as_text=True)


def test_a_record_separator_in_a_title_survives_the_logged_in_blocks(client, login, scene, cache_mode):
    station, package, slot = scene
    package.title = "红色\x1e经典"
    db.session.commit()
    login(f.create_secretary())
    html = client.get(f"/slots/{slot.id}").get_data(as_text=True)
    assert "红色\x1e经典" in html and 'class="panel cat-theory slot-page"' in html


def test_later_pages_and_counts_follow_slots_that_start_on_other_pages(app, client, monkeypatch, frozen_now,
                                                                       scene, cache_mode):
    station, package, slot = scene  # starts in three days
    monkeypatch.setitem(app.config, "PAGE_SIZE", 1)
    later = f.create_slot(package=package, station=station, starts_at=FROZEN_NOW + timedelta(days=6))
    assert f'data-slot-id="{later.id}"' in client.get(f"/packages/{package.id}?page=2").get_data(as_text=True)
    other = f.create_package(title="垃圾分类志愿服务", stations=[station])
    f.create_slot(package=other, station=station, starts_at=slot.starts_at + timedelta(minutes=30))
    assert "2 个服务包" in client.get(f"/?station={station.id}").get_data(as_text=True)
    frozen_now.set(slot.starts_at + timedelta(seconds=1))  # the first slot, on page 1, starts
    assert f'data-slot-id="{later.id}"' not in client.get(f"/packages/{package.id}?page=2").get_data(as_text=True)
    assert "2 个服务包" in client.get(f"/?station={station.id}").get_data(as_text=True)  # page 1 lists day 6 only
    frozen_now.set(slot.starts_at + timedelta(minutes=31))  # the other package's only slot starts
    assert "1 个服务包" in client.get(f"/?station={station.id}").get_data(as_text=True)
