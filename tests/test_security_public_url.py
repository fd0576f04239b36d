"""The public address (``PUBLIC_URL``): every absolute URL the app writes — feed addresses, webcal
links, QR codes, iCalendar ``URL:`` lines — uses it whatever ``Host`` the request sent, and a
request for a host that is not trusted (``TRUSTED_HOSTS``) gets 400. Without ``PUBLIC_URL`` the
app keeps writing the request's host (demo mode, tests), and the feed cache keeps one document
per host so that hosts never mix."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app import create_app
from blueprints.core import config as config_module
from blueprints.core.extensions import db
from blueprints.feeds import services as feed_services
from blueprints.host import checkin

from . import factories as f
from .conftest import FROZEN_NOW, app_config

PUBLIC = "https://partyday.example.gov.cn"
INTRANET = "http://intranet.partyday.local"  # trusted too (TRUSTED_HOSTS), but not the public address
EVIL = "http://evil.example"


def _make_app(app, tmp_path, **extra):
    settings = {"SERVER_NAME": None,  # as in production: the tests' SERVER_NAME would pin every URL
                "CACHE_VERSIONS_FILE": tmp_path / f"versions-{len(extra)}.bin", **extra}
    return create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], **settings))


@pytest.fixture
def public_app(app, tmp_path):
    application = _make_app(app, tmp_path, PUBLIC_URL=PUBLIC + "/", TRUSTED_HOSTS=["intranet.partyday.local"])
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def plain_app(app, tmp_path):
    """No PUBLIC_URL: today's behaviour (the request's host)."""
    application = _make_app(app, tmp_path)
    yield application
    with application.app_context():
        db.engine.dispose()


@pytest.fixture
def secretary_with_booking(frozen_now):
    secretary = f.create_secretary()
    booking = f.create_booking(organisation=secretary.organisation)
    db.session.commit()
    return secretary, booking


def _login(client, user, base_url):
    response = client.post("/login", data={"username": user.username, "password": f.PASSWORD}, base_url=base_url)
    assert response.status_code == 302, response.status_code


def _feed_path(user) -> str:
    [sub] = feed_services.subscriptions_for(user)
    db.session.commit()
    return f"/feeds/{sub.token}.ics"


def _absolute_urls(text: str) -> set[str]:
    return set(re.findall(r"(?:https?|webcal)://[^\s\"'<>]+", text.replace("\r\n ", "")))


# -- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "kept"), [
    ("https://partyday.example.gov.cn", "https://partyday.example.gov.cn"),
    ("https://partyday.example.gov.cn/", "https://partyday.example.gov.cn"),
    ("HTTPS://PartyDay.Example.gov.cn:8443", "https://partyday.example.gov.cn:8443"),
    ("", None),
    (None, None),
])
def test_public_url_is_normalised(given, kept):
    assert config_module.normalise_public_url(given) == kept


@pytest.mark.parametrize("given", ["partyday.example.gov.cn", "ftp://partyday.example.gov.cn", "https://",
                                   "https://partyday.example.gov.cn/partyday", "https://x.cn/?a=1",
                                   "https://user@x.cn", "https://x.cn/#top"])
def test_public_url_that_is_not_an_origin_is_refused_at_start(given):
    with pytest.raises(config_module.ConfigError, match="PUBLIC_URL"):
        config_module.normalise_public_url(given)


def test_public_url_and_trusted_hosts_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DEMO_MODE", "1")
    monkeypatch.setenv("PUBLIC_URL", PUBLIC)
    monkeypatch.setenv("TRUSTED_HOSTS", " intranet.partyday.local, .partyday.example.gov.cn ,")
    settings = config_module.from_environment(tmp_path)
    assert settings["PUBLIC_URL"] == PUBLIC
    assert settings["TRUSTED_HOSTS"] == ["intranet.partyday.local", ".partyday.example.gov.cn"]
    monkeypatch.delenv("PUBLIC_URL")
    monkeypatch.delenv("TRUSTED_HOSTS")
    settings = config_module.from_environment(tmp_path)
    assert settings["PUBLIC_URL"] is None and settings["TRUSTED_HOSTS"] is None


def test_trusted_hosts_are_the_public_host_and_the_listed_ones(public_app):
    assert public_app.config["TRUSTED_HOSTS"] == ["partyday.example.gov.cn", "intranet.partyday.local"]


def test_without_public_url_or_trusted_hosts_every_host_is_answered(plain_app):
    assert plain_app.config["TRUSTED_HOSTS"] is None
    assert plain_app.test_client().get("/", base_url=EVIL).status_code == 200


# -- unknown hosts -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/login", "/feeds/" + "x" * 43 + ".ics", "/no-such-page"])
def test_an_unknown_host_gets_400_with_the_public_address(public_app, path):
    response = public_app.test_client().get(path, base_url=EVIL)
    assert response.status_code == 400
    assert response.headers["X-Request-ID"] and response.headers["X-Content-Type-Options"] == "nosniff"
    if not path.startswith("/feeds/"):
        html = response.get_data(as_text=True)
        assert PUBLIC + "/" in html and "evil.example" not in html


def test_an_unknown_host_cannot_post_either(public_app, secretary_with_booking):
    secretary, _ = secretary_with_booking
    response = public_app.test_client().post(
        "/login", data={"username": secretary.username, "password": f.PASSWORD}, base_url=EVIL)
    assert response.status_code == 400  # not the login's redirect


def test_an_unknown_forwarded_host_gets_400_behind_the_proxy(app, tmp_path):
    proxied = _make_app(app, tmp_path, PUBLIC_URL=PUBLIC, PROXY_FIX=1)
    client = proxied.test_client()
    assert client.get("/", base_url="http://10.0.0.11:5000",
                      headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}).status_code == 400
    assert client.get("/", base_url="http://10.0.0.11:5000",
                      headers={"X-Forwarded-Host": "partyday.example.gov.cn",
                               "X-Forwarded-Proto": "https"}).status_code == 200
    with proxied.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("host", ["http://127.0.0.1:5000", "http://10.0.0.11:5000", EVIL])
def test_the_health_check_answers_any_host(public_app, host):
    """Load balancers and `curl http://127.0.0.1:5000/healthz` use the machine's address."""
    assert public_app.test_client().get("/healthz", base_url=host).status_code == 200


def test_the_public_and_the_listed_hosts_are_answered(public_app):
    client = public_app.test_client()
    assert client.get("/", base_url=PUBLIC).status_code == 200
    assert client.get("/", base_url=INTRANET).status_code == 200
    assert client.get("/", base_url="https://partyday.example.gov.cn:443").status_code == 200


# -- every absolute URL uses PUBLIC_URL ------------------------------------------------------------

@pytest.mark.parametrize("base_url", [PUBLIC, INTRANET])
def test_calendar_page_feed_url_webcal_link_and_qr_use_the_public_address(public_app, secretary_with_booking,
                                                                         base_url):
    secretary, _ = secretary_with_booking
    client = public_app.test_client()
    _login(client, secretary, base_url)
    html = client.get("/account/calendar", base_url=base_url).get_data(as_text=True)
    [url] = re.findall(r'data-feed-url="([^"]+)"', html)
    assert re.fullmatch(re.escape(PUBLIC) + r"/feeds/[A-Za-z0-9_-]{43}\.ics", url)
    assert f'href="webcal://partyday.example.gov.cn/feeds/' in html
    assert "intranet" not in html and "localhost" not in html
    assert all(u.startswith((PUBLIC, "webcal://partyday.example.gov.cn")) for u in _absolute_urls(html))


def test_feed_document_links_use_the_public_address_whatever_the_host(public_app, secretary_with_booking):
    secretary, booking = secretary_with_booking
    path = _feed_path(secretary)
    client = public_app.test_client()
    via_intranet = client.get(path, base_url=INTRANET)
    via_public = client.get(path, base_url=PUBLIC)
    assert via_intranet.status_code == via_public.status_code == 200
    body = via_intranet.get_data(as_text=True)
    assert f"URL:{PUBLIC}/bookings/{booking.id}" in body.replace("\r\n ", "")
    assert "intranet" not in body
    # One document for every host: the same bytes and the same validator.
    assert via_intranet.get_data() == via_public.get_data()
    assert via_intranet.headers["ETag"] == via_public.headers["ETag"]


def test_feed_revalidation_before_flask_answers_any_trusted_host_but_never_an_unknown_one(
        public_app, secretary_with_booking, frozen_now):
    secretary, _ = secretary_with_booking
    frozen_now.set(FROZEN_NOW + timedelta(seconds=5))
    path = _feed_path(secretary)
    client = public_app.test_client()
    etag = client.get(path, base_url=PUBLIC, headers={"Accept-Encoding": "identity"}).headers["ETag"]
    conditional = {"If-None-Match": etag, "Accept-Encoding": "identity"}
    assert client.get(path, base_url=INTRANET, headers=conditional).status_code == 304
    refused = client.get(path, base_url=EVIL, headers=conditional)
    assert refused.status_code == 400 and refused.headers["X-Robots-Tag"] == "noindex, nofollow"


def test_booking_ics_url_uses_the_public_address(public_app, secretary_with_booking):
    secretary, booking = secretary_with_booking
    client = public_app.test_client()
    _login(client, secretary, INTRANET)
    body = client.get(f"/bookings/{booking.id}.ics", base_url=INTRANET).get_data(as_text=True)
    assert f"URL:{PUBLIC}/bookings/{booking.id}" in body.replace("\r\n ", "")
    assert "intranet" not in body


def test_check_in_qr_link_uses_the_public_address(public_app, frozen_now):
    booking = f.create_booking()
    db.session.commit()
    booking_id = booking.id  # loaded here: inside the other app's context it would load through its engine
    with public_app.test_request_context("/", base_url=INTRANET):
        url = checkin.checkin_url(booking)
        assert url.startswith(PUBLIC + "/host/check-in/")
        assert checkin.booking_id_from(url.rsplit("/", 1)[1]) == booking_id


def test_the_url_helper_is_the_only_place_that_writes_absolute_urls():
    """Every absolute URL goes through blueprints/core/urls.py (no other _external=True, host_url,
    url_root)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"_external\s*=\s*True|\bhost_url\b|\burl_root\b|(?<!blueprints)\.host\b(?!_)")
    offenders = []
    for path in sorted((root / "blueprints").rglob("*.py")) + sorted((root / "templates").rglob("*.html")):
        if path.name == "urls.py" and path.parent.name == "core":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []


# -- without PUBLIC_URL: the request's host, and hosts never mix in the cache -------------------------

def test_without_public_url_feeds_follow_the_request_host_one_document_per_host(plain_app, secretary_with_booking):
    secretary, booking = secretary_with_booking
    path = _feed_path(secretary)
    client = plain_app.test_client()
    first = client.get(path, base_url="http://a.example").get_data(as_text=True).replace("\r\n ", "")
    second = client.get(path, base_url="http://b.example").get_data(as_text=True).replace("\r\n ", "")
    again = client.get(path, base_url="http://a.example").get_data(as_text=True).replace("\r\n ", "")
    assert f"URL:http://a.example/bookings/{booking.id}" in first and "b.example" not in first
    assert f"URL:http://b.example/bookings/{booking.id}" in second and "a.example" not in second
    assert again == first
