"""Security headers on every kind of answer, cookies, https behind a proxy, and templates that
need no inline script or style (so the Content-Security-Policy can forbid them)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import create_app
from blueprints.core import security
from blueprints.feeds import services as feed_services

from . import factories
from .conftest import app_config

ROOT = Path(__file__).resolve().parents[1]


def _directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def assert_security_headers(response, referrer="same-origin"):
    csp = _directives(response)
    assert csp["script-src"] == ["'self'"], csp
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["default-src"] == ["'self'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == referrer
    # Plain http (tests, development): no HSTS, which would lock a browser out of http://localhost.
    assert "Strict-Transport-Security" not in response.headers


def test_headers_on_a_full_page_anonymous(client):
    response = client.get("/")
    assert response.status_code == 200
    assert_security_headers(response)


def test_headers_on_an_htmx_fragment_anonymous(client, htmx_headers):
    response = client.get("/", headers=htmx_headers)
    assert response.status_code == 200 and "<html" not in response.get_data(as_text=True)
    assert_security_headers(response)


def test_headers_on_error_pages_404_and_405(client, htmx_headers):
    assert_security_headers(client.get("/no-such-page"))
    assert_security_headers(client.get("/no-such-page", headers=htmx_headers))
    assert_security_headers(client.get("/logout"))  # GET on a POST-only route: 405


def test_headers_on_a_forbidden_page_secretary_on_host_page(client, login):
    login(factories.create_secretary())
    response = client.get("/host/")
    assert response.status_code == 403
    assert_security_headers(response)


def test_feed_token_urls_send_no_referrer_host_station_feed_and_public_feed(client):
    host = factories.create_host()
    subscriptions = feed_services.subscriptions_for(host)
    factories.db.session.commit()
    assert subscriptions
    for subscription in subscriptions:
        response = client.get(f"/feeds/{subscription.token}.ics")
        assert response.status_code == 200, subscription
        assert_security_headers(response, referrer="no-referrer")
    unknown = client.get("/feeds/" + "x" * 43 + ".ics")
    assert unknown.status_code == 404
    assert_security_headers(unknown, referrer="no-referrer")


def test_check_in_token_urls_send_no_referrer_even_when_refused(client, login):
    login(factories.create_secretary())
    response = client.get("/host/check-in/not-a-real-token")
    assert response.status_code in (403, 404)
    assert_security_headers(response, referrer="no-referrer")


def test_headers_on_static_files(client):
    response = client.get("/static/js/app.js")
    assert response.status_code == 200
    assert_security_headers(response)
    response.close()


def test_session_cookie_is_httponly_and_samesite_lax_and_not_secure_over_http(client):
    response = client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_https_gets_hsts_and_a_secure_cookie(client):
    response = client.get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def _proxied_app(app, proxies: int):
    return create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], PROXY_FIX=proxies,
                                 RATELIMIT_ENABLED=False))


def test_behind_a_proxy_x_forwarded_proto_https_counts_only_with_proxy_fix(app):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    trusting = _proxied_app(app, 1)
    response = trusting.test_client().get("/login", headers=forwarded)
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"]

    untrusting = _proxied_app(app, 0)
    response = untrusting.test_client().get("/login", headers=forwarded)
    assert "Strict-Transport-Security" not in response.headers
    assert "Secure" not in response.headers["Set-Cookie"]
    for instance in (trusting, untrusting):
        with instance.app_context():
            factories.db.engine.dispose()


def test_session_cookie_secure_setting_forces_secure_cookies(app):
    forced = create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], SESSION_COOKIE_SECURE=True))
    response = forced.test_client().get("/login")
    assert "Secure" in response.headers["Set-Cookie"]
    with forced.app_context():
        factories.db.engine.dispose()


def test_htmx_is_configured_not_to_eval_or_inject_styles(client):
    html = client.get("/").get_data(as_text=True)
    config = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'', html).group(1)
    assert '"allowEval":false' in config
    assert '"allowScriptTags":false' in config
    assert '"includeIndicatorStyles":false' in config


# -- templates and generated markup ----------------------------------------------------------

INLINE_PATTERNS = {
    "inline <script>": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "on* handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "hx-on": re.compile(r"\bhx-on", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "<style> element": re.compile(r"<style", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
    "hx-trigger filter (needs eval)": re.compile(r'hx-trigger="[^"]*\['),
    "js: in hx-vals/hx-headers": re.compile(r'hx-(vals|headers)=\'\s*(js|javascript):', re.I),
}


@pytest.mark.parametrize("name", sorted(INLINE_PATTERNS))
def test_no_template_needs_unsafe_inline(name):
    pattern = INLINE_PATTERNS[name]
    offenders = []
    for path in sorted((ROOT / "templates").rglob("*.html")) + sorted((ROOT / "blueprints").rglob("*.html")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], f"{name} is blocked by the Content-Security-Policy"


def test_generated_svg_has_no_inline_style():
    from blueprints.host import checkin

    svg = checkin.segno.make("https://example.org/host/check-in/x", error="m").svg_inline(
        scale=6, border=2, dark="#1a1a1a", omitsize=True)
    assert "style" not in svg


def test_policy_constant_is_what_is_sent(client):
    assert client.get("/").headers["Content-Security-Policy"] == security.CONTENT_SECURITY_POLICY


# -- robots.txt and X-Robots-Tag on secret URLs ------------------------------------------------------

def test_robots_txt_disallows_the_secret_and_personal_paths_as_they_are_served(client):
    response = client.get("/robots.txt")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    lines = response.get_data(as_text=True).splitlines()
    assert "User-agent: *" in lines
    disallowed = {line.split(":", 1)[1].strip() for line in lines if line.startswith("Disallow:")}
    assert {"/host/check-in/", "/account/"} <= disallowed
    assert "/check-in/" not in disallowed  # no such path: check-ins are under /host/
    # Google Calendar obeys robots.txt: feeds stay fetchable and say noindex themselves.
    assert not any(path.startswith("/feeds") for path in disallowed)
    assert set(security.TOKEN_PATH_PREFIXES) - disallowed == {"/feeds/"}


def _feed_path_of_a_host():
    host = factories.create_host()
    [sub, *_] = feed_services.subscriptions_for(host)
    factories.db.session.commit()
    return f"/feeds/{sub.token}.ics"


NOINDEX = "noindex, nofollow"


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_feed_answers_200_304_and_404_are_noindex(app, client, monkeypatch, frozen_now, encoding):
    """200 through Flask (compressed or not), 304 both before Flask (feeds/revalidation.py) and
    through it, and the 404 of an unknown token."""
    from datetime import timedelta

    from .cache_support import use_cache
    from .conftest import FROZEN_NOW

    use_cache(app, monkeypatch, "file")
    path = _feed_path_of_a_host()
    frozen_now.set(FROZEN_NOW + timedelta(seconds=5))  # Last-Modified is sent once its second is over
    headers = {"Accept-Encoding": encoding}
    first = client.get(path, headers=headers)
    assert first.status_code == 200 and first.headers["X-Robots-Tag"] == NOINDEX
    conditional = {**headers, "If-None-Match": first.headers["ETag"]}
    from blueprints.feeds import routes as feed_routes

    with monkeypatch.context() as patched:  # answered before Flask: the route must not run
        patched.setattr(feed_routes.documents, "document", lambda *a, **k: pytest.fail("reached Flask"))
        fast = client.get(path, headers=conditional)
    assert fast.status_code == 304 and fast.headers["X-Robots-Tag"] == NOINDEX
    through_flask = client.get(path + "?via=flask", headers=conditional)  # the fast path leaves queries to Flask
    slow = client.get(path, headers={**headers, "If-Modified-Since": first.headers["Last-Modified"]})
    for response in (through_flask, slow):
        assert response.status_code == 304 and response.headers["X-Robots-Tag"] == NOINDEX
    unknown = client.get("/feeds/" + "x" * 43 + ".ics", headers=headers)
    assert unknown.status_code == 404 and unknown.headers["X-Robots-Tag"] == NOINDEX


def test_check_in_answers_are_noindex_for_every_role(client, login, frozen_now):
    from blueprints.host import checkin

    station = factories.create_station()
    booking = factories.create_booking(slot=factories.create_slot(station=station))
    path = f"/host/check-in/{checkin.checkin_token(booking)}"
    anonymous = client.get(path)
    assert anonymous.status_code == 302 and anonymous.headers["X-Robots-Tag"] == NOINDEX
    login(factories.create_host(stations=[station]))
    for candidate in (path, "/host/check-in/not-a-real-token"):
        response = client.get(candidate)
        assert response.status_code in (200, 403, 404) and response.headers["X-Robots-Tag"] == NOINDEX


def test_ordinary_pages_are_not_noindex(client):
    assert "X-Robots-Tag" not in client.get("/").headers
    assert "X-Robots-Tag" not in client.get("/login").headers


# -- Cache-Control: one rule for each kind of answer (core/security.py, cache_control_for) -----------

NO_STORE = "no-store"
FEED_POLICY = "private, no-cache"


@pytest.fixture
def scene(frozen_now):
    from datetime import timedelta

    from blueprints.booking.models import BookingStatus
    from blueprints.host import checkin

    station = factories.create_station()
    organisation = factories.create_organisation()
    secretary = factories.create_secretary(organisation=organisation)
    host = factories.create_host(stations=[station])
    admin = factories.create_admin()
    package = factories.create_package(stations=[station])
    slot = factories.create_slot(package=package, station=station)
    booking = factories.create_booking(slot=slot, organisation=organisation)
    past = factories.create_slot(package=package, station=station,
                                 starts_at=frozen_now.now - timedelta(days=2))
    attended = factories.create_booking(slot=past, organisation=organisation, status=BookingStatus.ATTENDED,
                                        attended_headcount=5)
    [feed, *_] = feed_services.subscriptions_for(secretary)
    factories.db.session.commit()
    return {"secretary": secretary, "host": host, "admin": admin, "slot": slot.id, "booking": booking.id,
            "package": package.id, "attended": attended.id, "feed": f"/feeds/{feed.token}.ics",
            "checkin": f"/host/check-in/{checkin.checkin_token(booking)}"}


# (role, path, htmx) -> the Cache-Control every answer of that kind must carry
PERSONAL = [
    ("secretary", "/", False),  # the public menu, with the user's own header and badge
    ("secretary", "/", True),  # its htmx fragment for a logged-in user
    ("secretary", "/packages/{package}", False),
    ("secretary", "/slots/{slot}", False),
    ("secretary", "/slots/{slot}/places", True),
    ("secretary", "/bookings", False),
    ("secretary", "/bookings/{booking}", False),
    ("secretary", "/bookings/{booking}.ics", False),  # one booking's calendar file
    ("secretary", "/notifications", False),
    ("secretary", "/account/calendar", False),
    ("secretary", "/account/password", False),
    ("secretary", "/no-such-page", False),  # an error page with the user's header
    ("host", "/host/", False),
    ("host", "/host/slots/{slot}/roster", False),
    ("host", "/host/slots/{slot}/roster", True),
    ("host", "/host/slots/{slot}/roster.csv", False),
    ("host", "/host/slots/{slot}/roster.xlsx", False),
    ("host", "/host/bookings/{attended}/sign-in-sheet.xlsx", False),
    ("host", "/host/stats/stations.xlsx", False),
    ("host", "{checkin}", False),
    ("admin", "/admin/stats", False),
    ("admin", "/admin/stats/stations.xlsx", False),
    ("admin", "/admin/organisations/export.csv", False),
    ("admin", "/admin/organisations/export.xlsx", False),
    ("admin", "/admin/accounts", False),
]


@pytest.mark.parametrize(("role", "path", "htmx"), PERSONAL, ids=[f"{r} {p}{' htmx' if h else ''}" for r, p, h in PERSONAL])
def test_every_answer_to_a_logged_in_user_is_no_store(client, login, scene, role, path, htmx):
    login(scene[role])
    url = path.format(**scene)
    response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code in (200, 404), (url, response.status_code)
    assert response.headers["Cache-Control"] == NO_STORE, url


@pytest.mark.parametrize("role", ["anon", "secretary", "host"])
def test_secret_feeds_are_private_no_cache_for_200_304_and_404(client, login, scene, role):
    """Calendar apps keep the feed and revalidate it (If-None-Match → 304): no-store would forbid
    the copy a 304 refers to; private keeps it out of shared caches."""
    if role != "anon":
        login(scene[role])
    first = client.get(scene["feed"])
    assert first.status_code == 200 and first.headers["Cache-Control"] == FEED_POLICY
    again = client.get(scene["feed"], headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.headers["Cache-Control"] == FEED_POLICY
    unknown = client.get("/feeds/" + "y" * 43 + ".ics")
    assert unknown.status_code == 404 and unknown.headers["Cache-Control"] == FEED_POLICY


def test_a_check_in_url_is_no_store_even_for_an_anonymous_visitor(client, scene):
    response = client.get(scene["checkin"])
    assert response.status_code == 302 and response.headers["Cache-Control"] == NO_STORE


@pytest.mark.parametrize(("path", "htmx"), [("/", False), ("/packages/{package}", False), ("/slots/{slot}", False)])
def test_anonymous_public_pages_keep_their_etag_and_private_no_cache(client, scene, path, htmx):
    response = client.get(path.format(**scene))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-cache" and response.headers["ETag"].startswith('W/"')


@pytest.mark.parametrize("path", ["/", "/slots/{slot}/places"])
def test_anonymous_fragments_are_not_no_store(client, scene, path):
    response = client.get(path.format(**scene), headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.headers.get("Cache-Control") != NO_STORE


@pytest.mark.parametrize("role", ["anon", "secretary"])
def test_static_files_keep_their_caching_for_everyone(client, login, scene, role):
    if role != "anon":
        login(scene[role])
    response = client.get("/static/js/app.js")
    assert response.status_code == 200 and response.headers.get("Cache-Control") != NO_STORE
    response.close()


def test_the_login_page_and_the_health_check_keep_theirs(client):
    assert client.get("/login").headers.get("Cache-Control") != FEED_POLICY
    assert client.get("/healthz").headers["Cache-Control"] == NO_STORE
