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
