"""gzip (blueprints/core/compression.py): what is compressed, what is not, and validators per encoding."""
from __future__ import annotations

import gzip
import re

import flask_compress.flask_compress
import pytest
from flask import Flask

from blueprints.core import compression
from blueprints.feeds import services as feed_services

from . import factories as f

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}
# Flask-WTF's tokens carry a timestamp: two renders a second apart differ only there.
CSRF_VALUE = re.compile(r'(name="csrf_token" type="hidden" value="|name="csrf_token" value="|"X-CSRFToken": ")[^"]*')


def without_csrf(html: str) -> str:
    return CSRF_VALUE.sub(r"\1", html)


def assert_gzip(response) -> bytes:
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) == len(response.data)
    assert "accept-encoding" in response.headers["Vary"].lower()
    return gzip.decompress(response.data)


def assert_identity(response):
    assert "Content-Encoding" not in response.headers
    assert "accept-encoding" in response.headers["Vary"].lower()


@pytest.fixture
def menu():
    for n in range(3):
        f.create_slot(package=f.create_package(title=f"压缩测试包{n}"))


# -- pages and fragments -----------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"HX-Request": "true"}], ids=["page", "fragment"])
def test_menu_gzip_decompresses_to_the_identity_answer(client, menu, headers):
    compressed = client.get("/", headers={**headers, **GZIP})
    html = assert_gzip(compressed).decode()
    plain = client.get("/", headers={**headers, **IDENTITY})
    assert_identity(plain)
    assert without_csrf(html) == without_csrf(plain.get_data(as_text=True))
    assert ("<html" in html) == (not headers) and "压缩测试包2" in html
    assert CSRF_VALUE.search(html) or headers  # the full page has tokens to strip
    assert len(compressed.data) < len(plain.data) / 3
    assert "hx-request" in compressed.headers["Vary"].lower()  # the app's own Vary kept


def test_menu_without_accept_encoding_is_not_compressed(client, menu):
    response = client.get("/")
    assert response.status_code == 200 and "<html" in response.get_data(as_text=True)
    assert_identity(response)


def test_gzip_refused_with_q0_is_not_used(client, menu):
    assert_identity(client.get("/", headers={"Accept-Encoding": "gzip;q=0, identity"}))


def test_browser_accept_encoding_gets_gzip_only(client, menu):
    response = client.get("/", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert response.headers["Content-Encoding"] == "gzip"


def test_static_css_and_js_are_compressed_and_their_files_closed(client):
    for path in ("/static/css/app.css", "/static/js/app.js"):
        # Closed as a WSGI server closes them (a file left open fails the test: warnings are errors).
        with client.get(path, headers=GZIP) as compressed, client.get(path) as plain:
            assert assert_gzip(compressed) == plain.data
            assert compressed.headers["ETag"] == plain.headers["ETag"][:-1] + ':gzip"'
            assert len(compressed.headers.getlist("Date")) == 1
        with client.get(path, headers={**GZIP, "If-None-Match": compressed.headers["ETag"]}) as again:
            assert again.status_code == 304


@pytest.mark.parametrize("path", ["/robots.txt", "/healthz"])
def test_tiny_answers_are_not_compressed(client, path):
    response = client.get(path, headers=GZIP)
    assert response.status_code == 200 and len(response.data) < 500
    assert_identity(response)


def test_xlsx_export_is_not_compressed(client, login):
    login(f.create_admin())
    f.create_organisation()
    response = client.get("/admin/organisations/export.xlsx", headers=GZIP)
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    assert len(response.data) > 500 and response.data.startswith(b"PK")  # already a zip
    assert "Content-Encoding" not in response.headers


def test_compressed_page_gets_no_second_date_header(client, menu):
    # werkzeug's make_conditional() adds one; gunicorn writes its own.
    assert "Date" not in client.get("/", headers=GZIP).headers


def test_calendar_page_with_the_secret_feed_address_is_not_compressed(client, login):
    login(f.create_secretary())
    response = client.get("/account/calendar?lang-reflected-text", headers=GZIP)
    assert response.status_code == 200 and len(response.data) > 500
    assert_identity(response)


# -- calendar feeds and their validators -------------------------------------------------------

@pytest.fixture
def feed_path():
    secretary = f.create_secretary()
    f.create_booking(organisation=secretary.organisation)
    [sub] = feed_services.subscriptions_for(secretary)
    return f"/feeds/{sub.token}.ics"


def test_feed_gzip_and_identity_each_get_their_own_etag_and_304(client, feed_path):
    compressed = client.get(feed_path, headers=GZIP)
    body = assert_gzip(compressed)
    assert compressed.mimetype == "text/calendar"
    plain = client.get(feed_path)
    assert_identity(plain)
    assert body == plain.data and b"BEGIN:VEVENT" in body
    gzip_etag, plain_etag = compressed.headers["ETag"], plain.headers["ETag"]
    assert gzip_etag == plain_etag[:-1] + ':gzip"' and re.fullmatch(r'"[^"]+"', plain_etag)  # both strong

    again = client.get(feed_path, headers={**GZIP, "If-None-Match": gzip_etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == gzip_etag and "Content-Encoding" not in again.headers
    assert "accept-encoding" in again.headers["Vary"].lower()  # as the 200 would have

    again = client.get(feed_path, headers={"If-None-Match": plain_etag})
    assert again.status_code == 304 and again.headers["ETag"] == plain_etag


def test_feed_etag_of_the_other_encoding(client, feed_path):
    plain_etag = client.get(feed_path).headers["ETag"]
    gzip_etag = client.get(feed_path, headers=GZIP).headers["ETag"]
    # A client holding the identity copy may keep it: same content.
    held_plain = client.get(feed_path, headers={**GZIP, "If-None-Match": plain_etag})
    assert held_plain.status_code == 304 and held_plain.headers["ETag"] == plain_etag
    # The gzip tag names a representation a client without gzip cannot be sent.
    held_gzip = client.get(feed_path, headers={"If-None-Match": gzip_etag})
    assert held_gzip.status_code == 200 and "Content-Encoding" not in held_gzip.headers


def test_feed_gzip_304_is_answered_before_compressing(client, feed_path, monkeypatch):
    gzip_etag = client.get(feed_path, headers=GZIP).headers["ETag"]

    def boom(*args):
        raise AssertionError("compressed a body only to answer 304")

    monkeypatch.setattr(flask_compress.flask_compress, "_compress_data", boom)
    again = client.get(feed_path, headers={**GZIP, "If-None-Match": gzip_etag})
    assert again.status_code == 304 and again.headers["ETag"] == gzip_etag


# -- the helpers, on a bare app ----------------------------------------------------------------

@pytest.fixture
def bare_app():
    """A route that answers If-None-Match itself, as the feeds do, with compression.matches_etag."""
    app = Flask(__name__)
    compression.init_app(app)

    @app.get("/doc")
    def doc():
        response = app.response_class("x" * 2000, mimetype="text/html")
        response.set_etag("v1")
        if compression.matches_etag("v1"):
            response.status_code, response.response = 304, []
        return response

    return app


@pytest.mark.parametrize("accept, if_none_match, status, etag", [
    ("gzip", '"v1:gzip"', 304, '"v1:gzip"'),          # the 304 names the copy the client holds
    ("gzip", '"v1"', 304, '"v1"'),
    ("gzip", 'W/"v1:gzip"', 304, '"v1:gzip"'),        # weak comparison (RFC 9110 §13.1.2)
    ("gzip", '"v0:gzip", "v1:gzip"', 304, '"v1:gzip"'),
    ("gzip", "*", 304, '"v1"'),
    (None, '"v1"', 304, '"v1"'),
    (None, '"v1:gzip"', 200, '"v1"'),
    ("gzip;q=0", '"v1:gzip"', 200, '"v1"'),
    ("gzip", '"v1:br"', 200, '"v1:gzip"'),
    ("gzip", '"v0:gzip"', 200, '"v1:gzip"'),
])
def test_matches_etag_and_the_etag_of_the_304(bare_app, accept, if_none_match, status, etag):
    headers = {"If-None-Match": if_none_match, **({"Accept-Encoding": accept} if accept else {})}
    response = bare_app.test_client().get("/doc", headers=headers)
    assert (response.status_code, response.headers["ETag"]) == (status, etag)
    assert ("Content-Encoding" in response.headers) == (status == 200 and etag.endswith(':gzip"'))


def test_compress_level_from_the_environment(monkeypatch):
    monkeypatch.setenv("COMPRESS_LEVEL", "4")
    app = Flask(__name__)
    compression.init_app(app)
    assert app.config["COMPRESS_LEVEL"] == 4
    monkeypatch.delenv("COMPRESS_LEVEL")
    other = Flask(__name__)
    compression.init_app(other)
    assert other.config["COMPRESS_LEVEL"] == compression.DEFAULT_LEVEL == 1
