"""HTTP of the calendar feeds: /feeds/<token>.ics, /bookings/<id>.ics, /account/calendar (+ reset)."""
from __future__ import annotations

import os
import re
from datetime import timedelta

import fakeredis
import icalendar
import pytest
import redis
import vobject

from blueprints.booking.models import BookingStatus
from blueprints.catalog.models import Station
from blueprints.core.extensions import db
from blueprints.feeds import services
from blueprints.feeds.models import FeedKind, FeedToken

from . import factories as f
from .cache_support import MODES, use_cache
from .conftest import FROZEN_NOW


def feed_urls(html: str) -> list[str]:
    return re.findall(r'data-feed-url="([^"]+)"', html)


def path_of(url: str) -> str:
    return url.split("localhost", 1)[1]


@pytest.fixture(autouse=True, params=MODES)
def validator_mode(request, app, monkeypatch):
    """Every feed test runs without the cache, with per-process entries and the versions file,
    and through Redis."""
    use_cache(app, monkeypatch, request.param)
    return request.param


@pytest.fixture
def secretary_with_booking(frozen_now):
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    return secretary, booking


# -- /account/calendar ------------------------------------------------------------------------------

def test_calendar_page_secretary_full_page_shows_absolute_feed_url_webcal_copy_qr(client, login, secretary_with_booking):
    secretary, booking = secretary_with_booking
    login(secretary)
    response = client.get("/account/calendar")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html
    [url] = feed_urls(html)
    assert re.fullmatch(r"http://localhost/feeds/[A-Za-z0-9_-]{43}\.ics", url)
    assert f'href="webcal://localhost{path_of(url)}"' in html
    assert f'data-copy="{url}"' in html
    assert "<svg" in html and 'class="qr"' in html
    for words in ("iPhone", "Outlook", "ICSx⁵", "Thunderbird"):
        assert words in html
    assert "Google" not in html  # out of reach in mainland China: no advice to use it
    assert "日历订阅" in html


def test_calendar_page_secretary_htmx_fragment(client, login, secretary_with_booking, htmx_headers):
    secretary, booking = secretary_with_booking
    login(secretary)
    response = client.get("/account/calendar", headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert 'id="feeds"' in html and len(feed_urls(html)) == 1


def _assert_copy_field_and_webcal_qr(html: str, url: str) -> None:
    from blueprints.feeds.routes import _qr_svg

    webcal = "webcal://localhost" + path_of(url)
    # The field to copy from without JavaScript: read-only, all selected on focus, with its hint.
    assert re.search(r'<input class="feed-url"[^>]*readonly[^>]*data-feed-url="' + re.escape(url) + '"[^>]*data-select-on-focus', html)
    assert "长按或全选复制" in html and 'data-copy-failed="请长按地址手动复制"' in html
    # The QR code holds the webcal:// address (a camera opens a subscription), and says so.
    assert _qr_svg(webcal) in html and f"<title>{webcal}</title>" in html
    assert _qr_svg(url) not in html
    assert "用手机相机扫码订阅" in html and "询问是否订阅" in html


def test_calendar_page_full_page_qr_is_webcal_and_instructions_fit_mainland_china(client, login, secretary_with_booking):
    secretary, _booking = secretary_with_booking
    login(secretary)
    html = client.get("/account/calendar").get_data(as_text=True)
    [url] = feed_urls(html)
    _assert_copy_field_and_webcal_qr(html, url)
    help_text = html[html.index('class="panel feed-help"'):]
    assert help_text.index("iPhone") < help_text.index("ICSx⁵") < help_text.index("Outlook")
    assert "小米" in help_text and "日程导入" in help_text
    for words in ("Thunderbird", "新建日历订阅", "从 Web 订阅"):
        assert words in help_text


def test_calendar_page_htmx_fragment_has_the_same_copy_field_and_webcal_qr(client, login, secretary_with_booking,
                                                                        htmx_headers):
    secretary, _booking = secretary_with_booking
    login(secretary)
    html = client.get("/account/calendar", headers=htmx_headers).get_data(as_text=True)
    assert "<html" not in html
    [url] = feed_urls(html)
    _assert_copy_field_and_webcal_qr(html, url)


def test_calendar_page_host_gets_station_and_public_feed_per_station(client, login):
    stations = [f.create_station(), f.create_station()]
    host = f.create_host(stations=stations)
    login(host)
    html = client.get("/account/calendar").get_data(as_text=True)
    urls = feed_urls(html)
    assert len(urls) == 4 and len(set(urls)) == 4
    db.session.expire_all()
    for station in stations:
        assert any(url.endswith(f"/feeds/{station.public_feed_token}.ics") for url in urls)


def test_calendar_page_host_given_a_new_station_makes_its_address_by_post_not_by_viewing(client, login, htmx_headers):
    host = f.create_host(stations=[f.create_station()])
    login(host)  # the login made the addresses of the stations the host had then
    new_station = f.create_station(name="暖新驿站")
    host.stations = host.stations + [new_station]
    db.session.commit()
    html = client.get("/account/calendar").get_data(as_text=True)
    assert len(feed_urls(html)) == 2 and html.count("生成订阅地址") == 2  # its booked and its public feed
    db.session.expire_all()
    assert db.session.get(Station, new_station.id).public_feed_token is None  # the GET wrote nothing
    response = client.post("/account/calendar/reset", data={"feed": f"station-{new_station.id}"},
                           headers=htmx_headers)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in fragment and "订阅地址已生成" in fragment
    assert len(feed_urls(fragment)) == 4 and "生成订阅地址" not in fragment  # every missing one is made
    page = client.get("/account/calendar").get_data(as_text=True)
    assert feed_urls(page) == feed_urls(fragment)


def test_calendar_page_same_urls_on_every_visit(client, login, secretary_with_booking):
    secretary, _ = secretary_with_booking
    login(secretary)
    assert feed_urls(client.get("/account/calendar").get_data(as_text=True)) == \
        feed_urls(client.get("/account/calendar").get_data(as_text=True))


def test_calendar_page_admin_gets_403(client, login):
    login(f.create_admin())
    assert client.get("/account/calendar").status_code == 403


def test_calendar_page_anonymous_is_sent_to_login(client):
    response = client.get("/account/calendar")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_calendar_page_bounded_queries_for_host_with_many_stations(client, login, count_queries):
    host = f.create_host(stations=[f.create_station() for _ in range(3)])
    login(host)
    client.get("/account/calendar")
    with count_queries() as few:
        client.get("/account/calendar")
    host.stations = host.stations + [f.create_station() for _ in range(6)]
    db.session.commit()
    client.get("/account/calendar")
    with count_queries() as many:
        client.get("/account/calendar")
    assert many.count == few.count <= 6


# -- reset ------------------------------------------------------------------------------------------

def test_reset_secretary_old_url_404_new_url_works(client, login, secretary_with_booking):
    secretary, _ = secretary_with_booking
    login(secretary)
    [old] = feed_urls(client.get("/account/calendar").get_data(as_text=True))
    assert client.get(path_of(old)).status_code == 200
    response = client.post("/account/calendar/reset", data={"feed": f"organisation-{secretary.organisation_id}"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/calendar")
    assert client.get(path_of(old)).status_code == 404
    [new] = feed_urls(client.get("/account/calendar").get_data(as_text=True))
    assert new != old and client.get(path_of(new)).status_code == 200


def test_reset_host_htmx_returns_fragment_with_new_public_url(client, login, htmx_headers):
    station = f.create_station()
    host = f.create_host(stations=[station])
    login(host)
    old = feed_urls(client.get("/account/calendar").get_data(as_text=True))
    response = client.post("/account/calendar/reset", data={"feed": f"public-{station.id}"}, headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and "旧地址已立即失效" in html
    new = feed_urls(html)
    assert new[0] == old[0] and new[1] != old[1]  # only the public feed changed
    assert client.get(path_of(old[1])).status_code == 404
    assert client.get(path_of(new[1])).status_code == 200


def test_reset_other_station_host_gets_404_and_nothing_changes(client, login):
    other = f.create_station(public_feed_token="x" * 43)
    login(f.create_host())
    response = client.post("/account/calendar/reset", data={"feed": f"public-{other.id}"})
    assert response.status_code == 404
    db.session.expire_all()
    assert other.public_feed_token == "x" * 43


def test_reset_with_csrf_enabled_requires_token(app, client, login, secretary_with_booking):
    secretary, _ = secretary_with_booking
    login(secretary)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post("/account/calendar/reset", data={"feed": f"organisation-{secretary.organisation_id}"})
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert response.status_code == 400


def test_reset_admin_gets_403(client, login):
    login(f.create_admin())
    assert client.post("/account/calendar/reset", data={"feed": "organisation-1"}).status_code == 403


# -- /feeds/<token>.ics --------------------------------------------------------------------------

def _org_feed_path(secretary) -> str:
    [sub] = services.subscriptions_for(secretary)
    return f"/feeds/{sub.token}.ics"


def test_feed_needs_no_login_and_has_calendar_headers(client, frozen_now, secretary_with_booking):
    secretary, booking = secretary_with_booking
    frozen_now.set(FROZEN_NOW + timedelta(seconds=1))  # Last-Modified only once its second is over
    response = client.get(_org_feed_path(secretary), headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["ETag"])  # strong
    assert response.headers["Last-Modified"]
    assert response.headers["Cache-Control"] == "private, no-cache"  # kept by the calendar app, revalidated
    assert "Content-Encoding" not in response.headers and "Set-Cookie" not in response.headers
    body = response.get_data()
    cal = icalendar.Calendar.from_ical(body)
    assert len(cal.walk("VEVENT")) == 1
    assert vobject.readOne(body.decode()).vevent.uid.value == f"booking-{booking.id}@partyday.local"


def test_feed_conditional_get_304_until_something_changes(client, frozen_now, secretary_with_booking):
    secretary, booking = secretary_with_booking
    path = _org_feed_path(secretary)
    frozen_now.set(FROZEN_NOW + timedelta(seconds=1))
    first = client.get(path)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = client.get(path)
    assert again.get_data() == first.get_data() and again.headers["ETag"] == etag
    not_modified = client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.get_data() == b""
    assert not_modified.headers["ETag"] == etag
    assert client.get(path, headers={"If-Modified-Since": last_modified}).status_code == 304
    # A change: the headcount (through the rules' own record()).
    frozen_now.set(FROZEN_NOW + timedelta(minutes=5))
    from blueprints.booking.services import record

    booking.headcount = 11
    record(booking, booking.status, None, "headcount_changed")
    db.session.commit()
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert client.get(path, headers={"If-Modified-Since": last_modified}).status_code == 200


def test_feed_cached_304_and_200_build_nothing_and_ask_no_sql(client, secretary_with_booking, monkeypatch,
                                                             count_queries, validator_mode):
    secretary, _ = secretary_with_booking
    path = _org_feed_path(secretary)
    first = client.get(path)
    etag = first.headers["ETag"]
    if validator_mode == "uncached":
        with count_queries() as counter:
            assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
        assert counter.count == 3  # token, freshness, the bookings: the ETag is the document's digest
        return
    from blueprints.feeds import routes

    def boom(feed):
        raise AssertionError("calendar built again while nothing changed")

    monkeypatch.setattr(routes, "feed_document", boom)
    with count_queries() as counter:
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
        again = client.get(path)
    assert counter.count == 0
    assert again.status_code == 200 and again.get_data() == first.get_data() and again.headers["ETag"] == etag


def test_feed_unknown_token_404_without_hint(client, secretary_with_booking):
    secretary, _ = secretary_with_booking
    real = _org_feed_path(secretary)
    unknown = client.get("/feeds/" + "A" * 43 + ".ics")
    assert unknown.status_code == 404
    token = db.session.scalar(db.select(FeedToken))
    old = f"/feeds/{token.token}.ics"
    token.token = services.new_token()
    db.session.commit()
    reset = client.get(old)
    assert reset.status_code == 404 and reset.get_data() == unknown.get_data()
    assert real == old


def test_feed_of_deactivated_user_404(client, secretary_with_booking):
    secretary, _ = secretary_with_booking
    path = _org_feed_path(secretary)
    assert client.get(path).status_code == 200
    secretary.active = False
    db.session.commit()
    assert client.get(path).status_code == 404


def test_station_feed_of_host_removed_from_station_404(client):
    station = f.create_station()
    host = f.create_host(stations=[station])
    sub = next(s for s in services.subscriptions_for(host) if s.kind is FeedKind.STATION)
    assert client.get(f"/feeds/{sub.token}.ics").status_code == 200
    host.stations = [f.create_station()]
    db.session.commit()
    assert client.get(f"/feeds/{sub.token}.ics").status_code == 404


def test_public_feed_of_inactive_station_404(client):
    station = f.create_station(public_feed_token=services.new_token())
    assert client.get(f"/feeds/{station.public_feed_token}.ics").status_code == 200
    station.active = False
    db.session.commit()
    assert client.get(f"/feeds/{station.public_feed_token}.ics").status_code == 404


@pytest.mark.parametrize("kind", ["organisation", "station", "public"])
def test_feed_bounded_queries_whatever_its_size(client, count_queries, frozen_now, kind):
    station = f.create_station()
    package = f.create_package(stations=[station])
    secretary = f.create_secretary()
    host = f.create_host(stations=[station])
    subs = {("public" if s.kind == services.PUBLIC else s.kind.value): s for s in
            services.subscriptions_for(secretary) + services.subscriptions_for(host)}
    path = f"/feeds/{subs[kind].token}.ics"

    def add(n):
        for i in range(n):
            slot = f.create_slot(package=package, station=station,
                                 starts_at=FROZEN_NOW + timedelta(days=3 + len(added), hours=i))
            added.append(f.create_booking(slot=slot, organisation=secretary.organisation))
            f.create_booking(slot=slot, status=BookingStatus.PENDING)

    added: list = []
    add(1)
    with count_queries() as small:
        assert client.get(path).status_code == 200
    add(15)
    with count_queries() as large:
        response = client.get(path)
    assert len(icalendar.Calendar.from_ical(response.get_data()).walk("VEVENT")) == 16
    assert large.count == small.count <= 6


# -- /bookings/<id>.ics ---------------------------------------------------------------------------

def test_booking_ics_secretary_of_the_organisation(client, login, secretary_with_booking):
    secretary, booking = secretary_with_booking
    login(secretary)
    response = client.get(f"/bookings/{booking.id}.ics")
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert f"booking-{booking.id}.ics" in response.headers["Content-Disposition"]
    cal = icalendar.Calendar.from_ical(response.get_data())
    [event] = cal.walk("VEVENT")
    assert str(event["UID"]) == f"booking-{booking.id}@partyday.local"
    assert vobject.readOne(response.get_data(as_text=True)).vevent.uid.value == str(event["UID"])


def test_booking_ics_host_of_the_station(client, login, secretary_with_booking):
    secretary, booking = secretary_with_booking
    login(f.create_host(stations=[booking.slot.station]))
    assert client.get(f"/bookings/{booking.id}.ics").status_code == 200


@pytest.mark.parametrize("who", ["other_secretary", "other_station_host", "admin"])
def test_booking_ics_wrong_role_or_owner_gets_404(client, login, secretary_with_booking, who):
    secretary, booking = secretary_with_booking
    user = {"other_secretary": f.create_secretary, "other_station_host": f.create_host,
            "admin": f.create_admin}[who]()
    login(user)
    assert client.get(f"/bookings/{booking.id}.ics").status_code == 404
    assert client.get("/bookings/999999.ics").status_code == 404


def test_booking_ics_anonymous_is_sent_to_login(client, secretary_with_booking):
    secretary, booking = secretary_with_booking
    assert client.get(f"/bookings/{booking.id}.ics").status_code == 302


def test_booking_calendar_include_links_to_the_ics(app, secretary_with_booking):
    from flask import render_template

    secretary, booking = secretary_with_booking
    html = render_template("feeds/_booking_calendar.html", booking=booking)
    assert f'href="/bookings/{booking.id}.ics"' in html and "加入日历" in html


def test_robots_txt_does_not_block_feeds(client):
    assert "/feeds" not in client.get("/robots.txt").get_data(as_text=True)
