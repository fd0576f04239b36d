"""The session's user from this process's copy: no SQL for it on a cached page, and every change
of the user's row or organisation seen at the next request, in this process or another.

"Another process" is a second app on the same database and version store (file or Redis): its
copies are its own, the versions are shared.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from app import create_app
from blueprints.accounts import session_users
from blueprints.accounts.models import Organisation, User
from blueprints.core import changes
from blueprints.core.extensions import db

from . import factories as f
from .cache_support import use_cache
from .conftest import FROZEN_NOW, SessionIsolatingClient, app_config


@pytest.fixture(params=["file", "redis"])
def cache_mode(request, app, monkeypatch, frozen_now):
    monkeypatch.delitem(app.extensions, "session_users", raising=False)
    return request.param, use_cache(app, monkeypatch, request.param)


@pytest.fixture
def other_process(app, cache_mode, monkeypatch):
    """A second app on this database, sharing the version store the way processes do: the same
    versions file, or the same Redis."""
    other = create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"],
                                  CACHE_VERSIONS_FILE=app.config["CACHE_VERSIONS_FILE"]))
    other.test_client_class = SessionIsolatingClient
    mode, redis_client = cache_mode
    use_cache(other, monkeypatch, mode, client=redis_client)
    yield other
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def _count_user_selects(client, url):
    seen = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if "FROM users" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        response = client.get(url)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    return response, len(seen)


def _request(app):
    """A request of its own: a new app context, so a new SQLAlchemy session, as in production."""
    from contextlib import ExitStack

    stack = ExitStack()
    stack.enter_context(app.app_context())
    stack.enter_context(app.test_request_context())
    return stack


def _scene():
    station = f.create_station(name="七宝老街党群服务站")
    package = f.create_package(title="红色经典诵读", stations=[station])
    return f.create_slot(package=package, station=station, capacity=30, starts_at=FROZEN_NOW + timedelta(days=3))


def test_a_logged_in_secretary_is_loaded_once_then_kept(app, client, login, cache_mode):
    slot = _scene()
    login(f.create_secretary())
    first, selects = _count_user_selects(client, f"/slots/{slot.id}")
    assert first.status_code == 200 and selects == 1
    again, selects = _count_user_selects(client, f"/slots/{slot.id}")
    assert again.status_code == 200 and selects == 0


def test_kept_user_is_a_persistent_object_that_lazy_loads_and_writes_host(app, client, login, cache_mode):
    slot = _scene()
    host = f.create_host(stations=[slot.station])
    login(host)
    client.get("/host/")
    with _request(app):
        kept = session_users.session_user(host.id)
        assert kept is not None and db.session.get(User, host.id) is kept  # in the identity map
        assert [s.id for s in kept.stations] == [slot.station.id]  # a lazy load works
        kept.phone = "13900001111"
        db.session.commit()
    with _request(app):
        assert db.session.get(User, host.id).phone == "13900001111"
        assert session_users.session_user(host.id).phone == "13900001111"  # the write bumped user:<id>


def test_password_change_in_another_process_ends_this_session_secretary(app, client, login, cache_mode,
                                                                        other_process):
    slot = _scene()
    secretary = login(f.create_secretary())
    assert client.get(f"/slots/{slot.id}").status_code == 200  # kept by this process
    with _request(other_process):
        user = db.session.get(User, secretary.id)
        user.session_version += 1  # what a password change or "log out everywhere" does
        db.session.commit()
    response = client.get("/bookings")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_deactivation_in_another_process_ends_the_session_at_once_secretary(app, client, login, cache_mode,
                                                                            other_process):
    secretary = login(f.create_secretary())
    assert client.get("/bookings").status_code == 200
    with _request(other_process):
        db.session.get(User, secretary.id).active = False
        db.session.commit()
    assert client.get("/bookings").status_code == 302


def test_organisation_rename_shows_in_the_header_at_once_secretary(app, client, login, cache_mode, other_process):
    secretary = login(f.create_secretary())
    assert secretary.organisation.name in client.get("/bookings").get_data(as_text=True)
    with _request(other_process):
        db.session.get(Organisation, secretary.organisation_id).name = "闵行区虹桥镇新名字党支部"
        db.session.commit()
    assert "闵行区虹桥镇新名字党支部" in client.get("/bookings").get_data(as_text=True)


def test_a_new_user_with_a_reused_id_is_never_the_kept_one(app, cache_mode):
    first = f.create_secretary(display_name="第一位书记")
    with _request(app):
        assert session_users.session_user(first.id).display_name == "第一位书记"
    user_id = first.id
    with db.engine.begin() as connection:  # from outside the app's session: nothing is bumped
        connection.execute(db.delete(User).where(User.id == user_id))
    with _request(app):
        replacement = User(id=user_id, username="reused", display_name="第二位书记", password_hash="x",
                           role=first.role, organisation_id=first.organisation_id, session_version=1)
        db.session.add(replacement)
        db.session.commit()
    with _request(app):
        assert session_users.session_user(user_id).display_name == "第二位书记"


def test_without_a_version_store_the_user_is_loaded_every_time(app, client, login, monkeypatch, frozen_now):
    monkeypatch.delitem(app.extensions, "render_cache", raising=False)
    monkeypatch.delitem(app.extensions, "session_users", raising=False)
    login(f.create_secretary())
    for _ in range(2):
        response, selects = _count_user_selects(client, "/bookings")
        assert response.status_code == 200 and selects == 1


def test_redis_failing_falls_back_to_the_database_secretary(app, client, login, monkeypatch, frozen_now):
    use_cache(app, monkeypatch, "redis")
    login(f.create_secretary())
    client.get("/bookings")

    def broken(keys):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(app.extensions["change_versions"], "read", broken)
    response, selects = _count_user_selects(client, "/bookings")
    assert response.status_code == 200 and selects == 1


def test_the_kept_copies_are_bounded():
    kept = session_users.SessionUsers(max_users=2)
    for user_id in (1, 2, 3):
        kept.put(user_id, session_users.Kept(("v",), {"id": user_id}, None))
    assert kept.get(1) is None and kept.get(2) is not None and kept.get(3) is not None


def test_only_the_versions_of_global_and_the_user_are_read(app, cache_mode):
    user = f.create_secretary()
    read = []
    store = app.extensions["change_versions"]
    original = store.read

    def spying(keys):
        read.append(list(keys))
        return original(keys)

    store.read = spying
    try:
        with _request(app):
            session_users.session_user(user.id)
    finally:
        del store.read
    assert read == [[changes.SEQUENCE, changes.GLOBAL, changes.user(user.id), changes.inbox(user.id), changes.INBOXES]]


def test_a_session_ended_where_the_bump_failed_ends_here_within_seconds_secretary(app, client, login, cache_mode,
                                                                                  other_process, monkeypatch):
    """The process that raised the session version could not reach the version store for a
    moment: this one, which can, still trusts its copy, but for TRUST_SECONDS at most."""
    secretary = login(f.create_secretary())
    now = {"t": 1000.0}
    monkeypatch.setattr(session_users, "_clock", lambda: now["t"])
    assert client.get("/bookings").status_code == 200  # kept by this process
    store = other_process.extensions["change_versions"]

    def down(keys):
        raise ConnectionError("redis blip")

    monkeypatch.setattr(store, "bump", down)
    with _request(other_process):
        db.session.get(User, secretary.id).session_version += 1  # logout everywhere, there
        db.session.commit()
        assert changes.failed_bumps(other_process)
    now["t"] += session_users.TRUST_SECONDS - 1
    assert client.get("/bookings").status_code == 200  # the copy, within its seconds
    now["t"] += 2
    assert client.get("/bookings").status_code == 302  # loaded again: the session has ended
