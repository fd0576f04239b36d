"""Login hardening: rate limits per account and per address (memory, and Redis shared by two
app instances), one answer for unknown users and wrong passwords, session rotation on login,
a logout that a copied cookie cannot undo, and demo passwords that must be changed."""
from __future__ import annotations

import os
import re
import statistics
import time
import uuid

import pytest

from app import create_app
from blueprints.core.extensions import db
from blueprints.demo.loader import DEMO_PASSWORD

from . import factories
from .conftest import SessionIsolatingClient, app_config

WRONG = "not the password"


def _make_app(app, **settings):
    instance = create_app(app_config(
        app.config["SQLALCHEMY_DATABASE_URI"],
        RATELIMIT_ENABLED=settings.pop("RATELIMIT_ENABLED", True),
        RATELIMIT_KEY_PREFIX=settings.pop("RATELIMIT_KEY_PREFIX", f"test-{uuid.uuid4().hex}"),
        **settings,
    ))
    instance.test_client_class = SessionIsolatingClient
    return instance


@pytest.fixture
def make_app(app):
    made = []

    def build(**settings):
        instance = _make_app(app, **settings)
        made.append(instance)
        return instance

    yield build
    for instance in made:
        with instance.app_context():
            db.engine.dispose()


def _attempt(client, username, password, address="198.51.100.1"):
    return client.post("/login", data={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


# -- rate limits -----------------------------------------------------------------------------

def test_rate_limit_per_account_anonymous_from_many_addresses(make_app):
    user = factories.create_secretary()
    client = make_app(LOGIN_RATE_LIMIT="3 per minute", LOGIN_ADDRESS_RATE_LIMIT="100 per minute").test_client()
    for n in range(3):
        assert _attempt(client, user.username, WRONG, f"198.51.100.{n}").status_code == 422
    # The fourth try, from yet another address and even with the right password, is refused...
    refused = _attempt(client, user.username, factories.PASSWORD, "198.51.100.99")
    assert refused.status_code == 429
    html = refused.get_data(as_text=True)
    assert "尝试次数过多" in html and "请等待几分钟后再试" in html
    assert int(refused.headers["Retry-After"]) > 0
    # ...in any spelling of the name, while another account is not affected.
    assert _attempt(client, user.username.upper(), factories.PASSWORD, "198.51.100.98").status_code == 429
    other = factories.create_secretary()
    assert _attempt(client, other.username, factories.PASSWORD, "198.51.100.97").status_code == 302


def test_rate_limit_per_address_anonymous_many_usernames(make_app):
    user = factories.create_secretary()
    client = make_app(LOGIN_RATE_LIMIT="100 per minute", LOGIN_ADDRESS_RATE_LIMIT="4 per minute").test_client()
    for n in range(4):
        assert _attempt(client, f"guess{n}", WRONG, "203.0.113.5").status_code == 422
    assert _attempt(client, user.username, factories.PASSWORD, "203.0.113.5").status_code == 429
    # Another address still gets in.
    assert _attempt(client, user.username, factories.PASSWORD, "203.0.113.6").status_code == 302


def test_rate_limit_counts_only_failed_attempts(make_app):
    user = factories.create_secretary()
    client = make_app(LOGIN_RATE_LIMIT="2 per minute", LOGIN_ADDRESS_RATE_LIMIT="2 per minute").test_client()
    for _ in range(5):
        assert _attempt(client, user.username, factories.PASSWORD).status_code == 302
        client.post("/logout")
    assert _attempt(client, user.username, WRONG).status_code == 422


def test_rate_limit_leaves_the_login_page_itself_alone(make_app):
    client = make_app(LOGIN_RATE_LIMIT="1 per minute", LOGIN_ADDRESS_RATE_LIMIT="1 per minute").test_client()
    _attempt(client, "x", WRONG)
    assert _attempt(client, "x", WRONG).status_code == 429
    assert client.get("/login").status_code == 200
    assert client.get("/").status_code == 200


def test_rate_limit_429_as_htmx_fragment(make_app, htmx_headers):
    client = make_app(LOGIN_RATE_LIMIT="1 per minute").test_client()
    _attempt(client, "x", WRONG)
    response = client.post("/login", data={"username": "x", "password": WRONG}, headers=htmx_headers,
                           environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert response.status_code == 429
    assert "<html" not in response.get_data(as_text=True)
    assert "尝试次数过多" in response.get_data(as_text=True)


def test_rate_limit_disabled_by_setting(make_app):
    client = make_app(RATELIMIT_ENABLED=False, LOGIN_RATE_LIMIT="1 per minute").test_client()
    for _ in range(3):
        assert _attempt(client, "x", WRONG).status_code == 422


def test_memory_storage_is_per_instance(make_app):
    """The control for the Redis test below: without shared storage, limits do not travel."""
    prefix = f"test-{uuid.uuid4().hex}"
    first = make_app(LOGIN_RATE_LIMIT="1 per minute", RATELIMIT_KEY_PREFIX=prefix, REDIS_URL=None)
    second = make_app(LOGIN_RATE_LIMIT="1 per minute", RATELIMIT_KEY_PREFIX=prefix, REDIS_URL=None)
    _attempt(first.test_client(), "shared", WRONG)
    assert _attempt(first.test_client(), "shared", WRONG).status_code == 429
    assert _attempt(second.test_client(), "shared", WRONG).status_code == 422


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL not set (Redis tests)")
def test_redis_limit_reached_on_one_instance_holds_on_the_other(make_app):
    prefix = f"test-{uuid.uuid4().hex}"
    redis_url = os.environ["TEST_REDIS_URL"]
    first = make_app(REDIS_URL=redis_url, LOGIN_RATE_LIMIT="2 per minute",
                     LOGIN_ADDRESS_RATE_LIMIT="100 per minute", RATELIMIT_KEY_PREFIX=prefix)
    second = make_app(REDIS_URL=redis_url, LOGIN_RATE_LIMIT="2 per minute",
                      LOGIN_ADDRESS_RATE_LIMIT="100 per minute", RATELIMIT_KEY_PREFIX=prefix)
    assert first.extensions["login_limiter"] is not second.extensions["login_limiter"]
    user = factories.create_secretary()
    assert _attempt(first.test_client(), user.username, WRONG).status_code == 422
    assert _attempt(second.test_client(), user.username, WRONG).status_code == 422
    assert _attempt(first.test_client(), user.username, factories.PASSWORD).status_code == 429
    assert _attempt(second.test_client(), user.username, factories.PASSWORD).status_code == 429
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = client.keys(f"*{prefix}*")
    assert keys, "the attempts are counted in Redis"
    client.delete(*keys)


# -- one answer for unknown users and wrong passwords ----------------------------------------

def test_unknown_user_inactive_user_and_wrong_password_get_the_same_answer(client):
    user = factories.create_secretary()
    inactive = factories.create_secretary(active=False)
    answers = [
        client.post("/login", data={"username": user.username, "password": WRONG}),
        client.post("/login", data={"username": "nobody-by-this-name", "password": WRONG}),
        client.post("/login", data={"username": inactive.username, "password": factories.PASSWORD}),
    ]
    assert {a.status_code for a in answers} == {422}
    bodies = [re.sub(r'(csrf_token" value=|X-CSRFToken": )"[^"]*"', "TOKEN", a.get_data(as_text=True))
              .replace(name, "NAME") for a, name in
              zip(answers, [user.username, "nobody-by-this-name", inactive.username])]
    assert bodies[0] == bodies[1] == bodies[2]
    assert "用户名或密码错误" in bodies[0]


def test_unknown_user_takes_about_as_long_as_a_wrong_password(client):
    user = factories.create_secretary()

    def median(username):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            client.post("/login", data={"username": username, "password": WRONG})
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    median("warm-up")
    known, unknown = median(user.username), median("nobody-by-this-name")
    # Both hash a password (the unknown one against a dummy hash); without it the unknown user
    # would answer in a fraction of the time.
    assert 0.5 < unknown / known < 2.0, (known, unknown)


# -- sessions --------------------------------------------------------------------------------

def test_login_rotates_the_session_secretary(client):
    user = factories.create_secretary()
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
        session["lang"] = "en"
        before_token = session.get("csrf_token")
    before = client.get_cookie("session").value
    assert _attempt(client, user.username, factories.PASSWORD).status_code == 302
    after = client.get_cookie("session").value
    assert after != before
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("csrf_token") in (None,) or session.get("csrf_token") != before_token
        assert session["lang"] == "en"  # a preference survives
        assert session["_user_id"].startswith(f"{user.id}:")


def test_logout_clears_the_session_and_the_old_cookie_cannot_be_replayed_secretary(app, client):
    user = factories.create_secretary()
    assert client.post("/login", data={"username": user.username, "password": factories.PASSWORD}).status_code == 302
    copied = client.get_cookie("session").value
    assert client.get("/account/password").status_code == 200

    assert client.post("/logout").status_code == 302
    with client.session_transaction() as session:
        assert "_user_id" not in session
    assert client.get("/account/password").status_code == 302

    thief = app.test_client()
    thief.set_cookie("session", copied, domain="localhost")
    response = thief.get("/account/password")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_session_from_another_client_identity_is_dropped_strong_protection(app, client):
    user = factories.create_secretary()
    client.post("/login", data={"username": user.username, "password": factories.PASSWORD},
                environ_base={"REMOTE_ADDR": "198.51.100.1"})
    copied = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied, domain="localhost")
    assert thief.get("/account/password", environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 200
    stolen = thief.get("/account/password", environ_base={"REMOTE_ADDR": "203.0.113.9"},
                       headers={"User-Agent": "other browser"})
    assert stolen.status_code == 302


# -- demo passwords --------------------------------------------------------------------------

def _demo_load_command(app):
    result = app.test_cli_runner().invoke(args=["demo", "load", "--branches", "1"])
    assert result.exit_code == 0, result.output


def test_demo_accounts_must_change_the_password_outside_demo_mode_secretary(app, client):
    _demo_load_command(app)
    response = client.post("/login", data={"username": "sec1", "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/account/password")
    # Every other page leads to the form until the password is changed.
    assert client.get("/").headers["Location"].endswith("/account/password")


def test_demo_accounts_stay_usable_in_demo_mode_admin(app, client, monkeypatch):
    _demo_load_command(app)
    monkeypatch.setitem(app.config, "DEMO_MODE", True)
    response = client.post("/login", data={"username": "admin", "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert not response.headers["Location"].endswith("/account/password")


# -- the credentials the limits count are the ones the login checks (issue 12, items 6 and 7) ---

def _counting_password_checks(monkeypatch) -> list:
    """Every password the app evaluates (a dummy hash for unknown users included), thread-safe."""
    import threading

    from blueprints.accounts.models import User

    evaluated, lock, real = [], threading.Lock(), User.check_password

    def counting(self, password):
        with lock:
            evaluated.append(self.username)
        return real(self, password)

    monkeypatch.setattr(User, "check_password", counting)
    return evaluated


def _parallel_logins(app, attempts: list[tuple[str, str]]) -> list[int]:
    """Post every (username, password) to /login of a threaded server at the same moment."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from urllib.error import HTTPError
    from urllib.parse import urlencode
    from urllib.request import Request, urlopen

    from .browser_support import LiveServer

    db.session.commit()
    server = LiveServer(app).start()
    start = threading.Barrier(len(attempts))

    def attempt(credentials):
        username, password = credentials
        body = urlencode({"username": username, "password": password}).encode()
        start.wait()
        try:
            with urlopen(Request(server.url + "/login", data=body), timeout=60) as answer:
                return answer.status
        except HTTPError as refused:
            return refused.code

    try:
        with ThreadPoolExecutor(len(attempts)) as pool:
            return list(pool.map(attempt, attempts))
    finally:
        server.stop()


STORAGES = ["memory", pytest.param("redis", marks=pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL not set (Redis tests)"))]


def _storage_settings(storage: str) -> dict:
    return {"REDIS_URL": os.environ["TEST_REDIS_URL"] if storage == "redis" else None}


@pytest.mark.parametrize("storage", STORAGES)
def test_parallel_wrong_passwords_evaluate_at_most_the_account_limit_anonymous(make_app, monkeypatch, storage):
    """Each attempt is counted (an atomic test-and-increment) before its password is checked, so
    20 attempts at once against a limit of 10 get 10 checks and 10 refusals, not 14 checks."""
    user = factories.create_secretary()
    app = make_app(LOGIN_RATE_LIMIT="10 per minute", LOGIN_ADDRESS_RATE_LIMIT="100 per minute",
                   **_storage_settings(storage))
    evaluated = _counting_password_checks(monkeypatch)
    statuses = _parallel_logins(app, [(user.username, WRONG)] * 20)
    assert len(evaluated) <= 10, evaluated
    assert sorted(statuses) == [422] * len(evaluated) + [429] * (20 - len(evaluated))
    assert len(evaluated) == 10  # and nothing is lost either


@pytest.mark.parametrize("storage", STORAGES)
def test_parallel_wrong_passwords_evaluate_at_most_the_address_limit_anonymous(make_app, monkeypatch, storage):
    app = make_app(LOGIN_RATE_LIMIT="100 per minute", LOGIN_ADDRESS_RATE_LIMIT="10 per minute",
                   **_storage_settings(storage))
    evaluated = _counting_password_checks(monkeypatch)
    statuses = _parallel_logins(app, [(f"guess{n}", WRONG) for n in range(20)])
    assert len(evaluated) == 10 and statuses.count(429) == 10


@pytest.mark.parametrize("body", [
    {"username": 5, "password": "x"}, {"username": [1, 2], "password": "x"}, {"username": {"a": 1}, "password": "x"},
    {"username": None, "password": None}, {"username": True, "password": 3.5}, {"username": "x", "password": ["a"]},
    [1, 2], "text", None, 42,
])
def test_json_login_body_of_any_shape_is_refused_not_a_500_anonymous(make_app, monkeypatch, body):
    factories.create_secretary(username="json-target")
    evaluated = _counting_password_checks(monkeypatch)
    client = make_app().test_client()
    response = client.post("/login", json=body, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert response.status_code == 422
    assert evaluated == []


def test_json_login_is_not_a_login_and_cannot_dodge_the_account_limit_anonymous(make_app, monkeypatch):
    """Flask-WTF would read a JSON body as the form, while the per-account limit read only form
    fields: JSON guesses were checked and never counted. The login now reads form fields only,
    the same fields its limits key on, so a JSON body checks no password at all."""
    user = factories.create_secretary()
    client = make_app(LOGIN_RATE_LIMIT="3 per minute", LOGIN_ADDRESS_RATE_LIMIT="100 per minute").test_client()
    evaluated = _counting_password_checks(monkeypatch)
    for n in range(3):
        assert _attempt(client, user.username, WRONG, f"198.51.100.{n}").status_code == 422
    assert len(evaluated) == 3
    for n in range(5):
        guess = client.post("/login", json={"username": user.username, "password": factories.PASSWORD},
                            environ_base={"REMOTE_ADDR": f"203.0.113.{n}"})
        assert guess.status_code in (422, 429)  # names no account of the form: only its own budget
    assert len(evaluated) == 3
    assert client.get("/account/password").status_code == 302  # nobody logged in
    # The account's budget is spent whichever way the fourth form attempt comes.
    assert _attempt(client, user.username, factories.PASSWORD, "203.0.113.99").status_code == 429


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL not set (Redis tests)")
def test_redis_successful_logins_give_their_attempt_back_secretary(make_app):
    user = factories.create_secretary()
    client = make_app(REDIS_URL=os.environ["TEST_REDIS_URL"], LOGIN_RATE_LIMIT="2 per minute",
                      LOGIN_ADDRESS_RATE_LIMIT="2 per minute").test_client()
    for _ in range(5):
        assert _attempt(client, user.username, factories.PASSWORD).status_code == 302
        client.post("/logout")
    assert _attempt(client, user.username, WRONG).status_code == 422
    assert _attempt(client, user.username, WRONG).status_code == 422
    assert _attempt(client, user.username, factories.PASSWORD).status_code == 429


# -- the current password on /account/password (issue 12, item 8) ------------------------------

def _change(client, current, new="a fresh passphrase for spring"):
    return client.post("/account/password", data={"current_password": current, "new_password": new,
                                                  "confirm_password": new},
                       environ_base={"REMOTE_ADDR": "198.51.100.1"})


def test_password_change_guesses_are_limited_per_account_secretary(make_app, monkeypatch):
    user = factories.create_secretary()
    client = make_app(LOGIN_RATE_LIMIT="3 per minute", LOGIN_ADDRESS_RATE_LIMIT="100 per minute").test_client()
    assert _attempt(client, user.username, factories.PASSWORD).status_code == 302
    evaluated = _counting_password_checks(monkeypatch)
    for _ in range(3):
        assert _change(client, WRONG).status_code == 422
    refused = _change(client, factories.PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    html = refused.get_data(as_text=True)
    assert "尝试次数过多" in html and "密码错误次数过多" in html
    assert len(evaluated) == 3  # the fourth was refused before its password was checked
    db.session.refresh(user)
    assert user.check_password(factories.PASSWORD)
    # Another account is not affected.
    other = factories.create_secretary()
    theirs = client.application.test_client()
    assert _attempt(theirs, other.username, factories.PASSWORD).status_code == 302
    assert _change(theirs, factories.PASSWORD).status_code == 302


def test_password_change_and_login_share_the_account_budget_secretary(make_app):
    """One secret, one budget: guesses through a stolen session count against the login too."""
    user = factories.create_secretary()
    app = make_app(LOGIN_RATE_LIMIT="3 per minute", LOGIN_ADDRESS_RATE_LIMIT="100 per minute")
    stolen = app.test_client()
    assert _attempt(stolen, user.username, factories.PASSWORD).status_code == 302  # gives its attempt back
    for _ in range(2):
        assert _change(stolen, WRONG).status_code == 422
    owner = app.test_client()
    assert _attempt(owner, user.username, WRONG, "203.0.113.1").status_code == 422
    assert _attempt(owner, user.username, factories.PASSWORD, "203.0.113.1").status_code == 429


def test_password_change_with_the_right_current_password_gives_the_attempt_back_secretary(make_app):
    user = factories.create_secretary()
    client = make_app(LOGIN_RATE_LIMIT="2 per minute", LOGIN_ADDRESS_RATE_LIMIT="100 per minute").test_client()
    assert _attempt(client, user.username, factories.PASSWORD).status_code == 302
    # Right current password, refused new one (too easy to guess): not a guess, not counted.
    for _ in range(3):
        assert _change(client, factories.PASSWORD, new="aaaaaaaaaa").status_code == 422
    assert _change(client, WRONG).status_code == 422
    assert _change(client, factories.PASSWORD).status_code == 302
