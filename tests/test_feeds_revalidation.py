"""The feed revalidation answered before Flask (blueprints/feeds/revalidation.py): the same 304,
header for header, as the route gives; and everything it cannot answer goes on to Flask."""
from __future__ import annotations

from datetime import timedelta

import pytest

from blueprints.booking.services import record
from blueprints.core.extensions import db
from blueprints.feeds import revalidation, routes, services

from . import factories as f
from .cache_support import use_cache
from .conftest import FROZEN_NOW

REQUEST_ID = {"X-Request-ID": "calendar-app-1234"}


@pytest.fixture(params=["file", "redis"])
def cache_mode(request, app, monkeypatch, frozen_now):
    use_cache(app, monkeypatch, request.param)
    frozen_now.set(FROZEN_NOW + timedelta(seconds=5))
    return request.param


@pytest.fixture
def feed_path(frozen_now):
    secretary = f.create_secretary()
    f.create_booking(organisation=secretary.organisation)
    [sub] = services.subscriptions_for(secretary)
    return f"/feeds/{sub.token}.ics", secretary


@pytest.fixture
def through_flask_only(app, monkeypatch):
    """Answers as Flask alone gives them (the middleware taken out)."""
    def flask_only():
        assert isinstance(app.wsgi_app, revalidation.RevalidationMiddleware)
        monkeypatch.setattr(app, "wsgi_app", app.wsgi_app.wsgi_app)
    return flask_only


def _view_must_not_run(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the request reached Flask")
    monkeypatch.setattr(routes.documents, "document", boom)


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_the_304_before_flask_has_exactly_the_routes_headers(app, client, monkeypatch, cache_mode, feed_path,
                                                              through_flask_only, count_queries, encoding):
    path, _ = feed_path
    first = client.get(path, headers={"Accept-Encoding": encoding})
    conditional = {"If-None-Match": first.headers["ETag"], "Accept-Encoding": encoding, **REQUEST_ID}
    with monkeypatch.context() as m:
        _view_must_not_run(m)
        with count_queries() as counter:
            fast = client.get(path, headers=conditional)
    assert fast.status_code == 304 and counter.count == 0
    through_flask_only()
    slow = client.get(path, headers=conditional)
    assert slow.status_code == 304
    assert _comparable(fast.headers) == _comparable(slow.headers)


def _comparable(headers) -> list:
    """Flask adds ``Cookie`` to Vary because its before-request hooks read the session (the login
    manager); the feed's answer does not depend on any cookie, so the fast path leaves it out."""
    items = []
    for name, value in headers.items():
        if name == "Vary":
            value = ", ".join(v for v in value.split(", ") if v != "Cookie")
        items.append((name, value))
    return sorted(items)


def test_a_changed_feed_goes_on_to_flask_and_gets_200(client, cache_mode, feed_path, frozen_now):
    path, secretary = feed_path
    etag = client.get(path).headers["ETag"]
    booking = secretary.organisation and db.session.scalar(db.select(services.Booking))
    booking.headcount += 3
    record(booking, booking.status, None, "headcount_changed")
    db.session.commit()
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_unknown_tokens_and_unconditional_requests_are_flasks(client, cache_mode, feed_path):
    path, _ = feed_path
    assert client.get("/feeds/" + "A" * 43 + ".ics", headers={"If-None-Match": '"x"'}).status_code == 404
    assert client.get(path).status_code == 200
    assert client.get(path, headers={"If-None-Match": '"not-the-tag"'}).status_code == 200


def test_without_a_render_cache_every_request_is_flasks(app, client, monkeypatch, feed_path):
    use_cache(app, monkeypatch, "uncached")
    path, _ = feed_path
    etag = client.get(path).headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304  # by the route


def test_redis_down_revalidation_goes_on_to_flask(app, client, monkeypatch, feed_path, caplog):
    import redis

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    use_cache(app, monkeypatch, "redis", client=dead)
    path, _ = feed_path
    etag = client.get(path).headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert "render cache unavailable" in caplog.text


def test_the_304s_headers_are_built_once_per_request_shape_and_each_gets_its_own_request_id(
        client, monkeypatch, cache_mode, feed_path):
    path, _ = feed_path
    etag = client.get(path).headers["ETag"]
    secure_etag = client.get(path, base_url="https://localhost").headers["ETag"]  # links say https
    built, original = [], revalidation.RevalidationMiddleware._answer
    monkeypatch.setattr(revalidation.RevalidationMiddleware, "_answer",
                        lambda self, environ, found: built.append(1) or original(self, environ, found))
    with monkeypatch.context() as m:
        _view_must_not_run(m)
        answers = [client.get(path, headers={"If-None-Match": etag}) for _ in range(3)]
        https = client.get(path, headers={"If-None-Match": secure_etag}, base_url="https://localhost")
    assert [a.status_code for a in answers] == [304, 304, 304] and https.status_code == 304
    assert len(built) == 2  # plain http once, https once
    assert len({a.headers["X-Request-ID"] for a in answers}) == 3
    assert "Strict-Transport-Security" not in answers[0].headers
    assert https.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_kept_answer_never_stands_for_another_etag(client, cache_mode, feed_path):
    """An If-None-Match that did not match is remembered as "not a 304": it goes to Flask every
    time, and the matching one still gets its 304."""
    path, _ = feed_path
    etag = client.get(path).headers["ETag"]
    for _ in range(2):
        assert client.get(path, headers={"If-None-Match": '"old"'}).status_code == 200
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
