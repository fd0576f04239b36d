"""Fixtures: the app on SQLite and, when TEST_DATABASE_URL is set, the same tests on PostgreSQL."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
from flask import current_app
from flask.testing import FlaskClient

from app import create_app
from blueprints.core import changes, clock, render_cache
from blueprints.core.config import normalise_database_url
from blueprints.core.extensions import db

from blueprints.feeds import ics

from . import factories

DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])
# A fixed "now" for tests that freeze the clock: Monday 2026-11-23 10:00 in Shanghai.
FROZEN_NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)


# Marked ``slow`` as whole files (besides every ``browser`` test): fuzzing, concurrency, demo and
# city data, the process harnesses, migrations, a real calendar client, the cache model walk.
# ``make test PYTEST_ARGS='-m "not slow"'`` is the quick inner loop; ``make test`` runs them all.
SLOW_FILES = {
    "test_fuzz_forms.py", "test_booking_concurrency.py", "test_booking_move_concurrency.py",
    "test_demo_history.py", "test_bench_loader.py", "test_migrations.py", "test_feeds_khal.py",
    "test_ops_backup.py", "test_ops_cache_workers.py", "test_ops_crash.py", "test_ops_health_and_logging.py",
    "test_ops_multi_instance.py", "test_cache_model.py", "test_jobs.py",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in SLOW_FILES or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


def app_config(database_url: str, **extra) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": False,
        "DEMO_MODE": False,
        "SERVER_NAME": "localhost",
        # The session-wide app logs in hundreds of times; tests/test_security_login.py turns it on.
        "RATELIMIT_ENABLED": False,
        # No consumer: tests run the jobs (mail) themselves, with blueprints.jobs.queue.run_due().
        "JOBS_HAND_OVER": False,
        **extra,
    }


class SessionIsolatingClient(FlaskClient):
    """Every request runs in an app context of its own, as in production: its own ``g`` (and
    logged-in user) and its own SQLAlchemy session, removed at the end, so a route that forgets
    to commit fails its test. What the test prepared is committed first; afterwards the test's
    own objects are expired so that it reads what the request really stored."""

    def open(self, *args, **kwargs):
        db.session.commit()
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()
        return response


@pytest.fixture(scope="session", params=DATABASES)
def app(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    else:
        url = normalise_database_url(os.environ["TEST_DATABASE_URL"])
    # Versions of this test process's own: another pytest process bumping them would only make
    # the entries of this one miss (correct, but the tests count what a hit saves).
    versions_file = tmp_path_factory.mktemp("cache") / "versions.bin"
    application = create_app(app_config(url, CACHE_VERSIONS_FILE=versions_file))
    application.test_client_class = SessionIsolatingClient
    with application.app_context():
        db.drop_all()
        db.create_all()
    yield application
    with application.app_context():
        db.drop_all()
        db.engine.dispose()


def _empty_database() -> None:
    db.session.rollback()
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(t.name for t in db.metadata.sorted_tables)
        db.session.execute(db.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
    db.session.commit()
    # Ids start again from 1: nothing cached about the previous test's rows may survive.
    changes.bump({changes.GLOBAL})
    render_cache.clear_entries()
    current_app.extensions.pop("session_users", None)  # users kept by the app (accounts/session_users.py)
    ics.SERIALISED.items.clear()


@pytest.fixture(autouse=True)
def app_ctx(app):
    with app.test_request_context():
        yield
        _empty_database()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def htmx_headers():
    return {"HX-Request": "true"}


@pytest.fixture
def frozen_now(monkeypatch):
    """Freeze the application clock (every module asks ``clock.now()``)."""
    current = {"now": FROZEN_NOW}
    monkeypatch.setattr(clock, "now", lambda: current["now"])

    class Frozen:
        @property
        def now(self):
            return current["now"]

        def set(self, moment: datetime):
            current["now"] = moment

    return Frozen()


@pytest.fixture
def login(client):
    """login(user) logs the test client in as ``user`` (password ``factories.PASSWORD``)."""

    def do_login(user, password: str = factories.PASSWORD):
        response = client.post("/login", data={"username": user.username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return do_login


@pytest.fixture
def is_postgres(app):
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


@pytest.fixture
def count_queries(app):
    """``with count_queries() as counter: ...`` then ``counter.count``."""
    from contextlib import contextmanager

    from sqlalchemy import event

    @contextmanager
    def counting():
        class Counter:
            count = 0
            statements: list[str] = []

        counter = Counter()
        counter.statements = []

        def before(conn, cursor, statement, parameters, context, executemany):
            if statement.strip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
                counter.count += 1
                counter.statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            yield counter
        finally:
            event.remove(db.engine, "before_cursor_execute", before)

    return counting


@pytest.fixture
def live_server(app):
    """The session's app served over HTTP on a free port (for browser tests)."""
    from .browser_support import LiveServer

    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from .browser_support import CHROMIUM, CHROMIUM_ARGS, require_chromium

    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(params=["js", "nojs"], ids=["js", "nojs"])
def page_js_and_nojs(request, browser):
    """A phone-sized page, once with JavaScript and once without."""
    context = browser.new_context(
        java_script_enabled=request.param == "js", viewport={"width": 390, "height": 844}
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def browser_login(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
