"""Passwords people choose must be hard to guess (one rule, ``accounts.services.password_problem``,
for the password change and ``flask users create``; the one-time passwords the app issues pass it
too), and an administrator's reset or deactivation also replaces the account's calendar feed
addresses (issue 12, items 9 and 10)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from blueprints.accounts.models import Organisation, Role, User
from blueprints.accounts.services import password_problem
from blueprints.core.extensions import db
from blueprints.directory.services import one_time_password
from blueprints.feeds import services as feeds

from . import factories as f
from .cache_support import MODES, use_cache

LOGGED_IN = 'action="/logout"'

# (password, a part of the Chinese reason shown for it)
WEAK = [
    ("aaaaaaaaaa", "重复"),
    ("abcdefghijkl", "顺序"),
    ("zxcvbnm,./", "键盘"),
    ("password123", "最常见的密码"),
    ("qwertyuiop", "最常见的密码"),
    ("1234567890", "最常见的密码"),
    ("P@ssw0rd2024", "常见密码过于相似"),
    ("19840512ab", "年份和日期"),
    ("butterflies", "单个的词或人名"),
    ("wang.jianguo1", "用户名、姓名、电话或组织名称"),
    ("wangjianguo1", "用户名、姓名、电话或组织名称"),
    ("13912345678x", "用户名、姓名、电话或组织名称"),
    ("新虹街道机关第一党支部12", "用户名、姓名、电话或组织名称"),
    ("partyday2026", "本网站和党日活动"),
    ("dangjian2024", "本网站和党日活动"),
    ("short", "至少需要 10 个字符"),
    ("x" * 201, "最多 200 个字符"),
]
STRONG = ["correct horse battery", "my own long secret", "a much longer one", "k7mq-3xfa-p9tw",
          "新虹的秋天下午三点钟见面吧", "wang likes blue tea pots"]


@pytest.fixture
def wang():
    """A secretary who is not stored: the rule also serves accounts being created."""
    user = User(username="wang.jianguo", display_name="王建国", phone="13912345678", email="wjg@example.com",
                role=Role.SECRETARY)
    user.organisation = Organisation(name="新虹街道机关第一党支部")
    return user


@pytest.mark.parametrize("password,reason", WEAK, ids=[w[0][:20] for w in WEAK])
def test_guessable_password_is_refused_with_a_chinese_reason(wang, password, reason):
    problem = password_problem(password, wang)
    assert problem is not None and reason in problem, problem


@pytest.mark.parametrize("password", STRONG)
def test_hard_to_guess_password_is_accepted(wang, password):
    assert password_problem(password, wang) is None


def test_words_of_another_user_are_not_held_against_this_one(wang):
    assert password_problem("wang.jianguo1", wang) is not None
    assert password_problem("wang.jianguo1", User(username="li", display_name="李")) is None


def test_one_time_passwords_the_app_issues_pass_the_rule():
    for _ in range(200):
        assert password_problem(one_time_password()) is None


# -- where people choose passwords -----------------------------------------------------------

def _change(client, current, new):
    return client.post("/account/password", data={"current_password": current, "new_password": new,
                                                  "confirm_password": new})


@pytest.mark.parametrize("new,reason", [("aaaaaaaaaa", "重复"), ("password123", "最常见的密码")])
def test_password_change_refuses_a_guessable_password_and_the_field_says_why_secretary(client, login, new, reason):
    user = login(f.create_secretary())
    response = _change(client, f.PASSWORD, new)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    error = re.search(r'<p class="error" id="new_password-error" role="alert">([^<]*)</p>', html)
    assert error and reason in error.group(1), html
    db.session.refresh(user)
    assert user.check_password(f.PASSWORD)


def test_password_change_refuses_the_own_username_and_organisation_host(client, login):
    host = login(f.create_host(username="qibao.host", display_name="七宝老街站管理员"))
    for guess in ("qibao.host2026", "七宝老街站管理员123"):
        response = _change(client, f.PASSWORD, guess)
        assert response.status_code == 422 and "用户名、姓名、电话或组织名称" in response.get_data(as_text=True)
    assert _change(client, f.PASSWORD, "seven old bridges at dawn").status_code == 302
    db.session.refresh(host)
    assert host.check_password("seven old bridges at dawn")


def test_password_change_page_explains_what_is_accepted_secretary(client, login):
    login(f.create_secretary())
    html = client.get("/account/password").get_data(as_text=True)
    assert "至少 10 个字符" in html and "不常见的词" in html


def test_users_create_refuses_a_guessable_password_admin(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "--username", "boss2", "--password",
                                                "aaaaaaaaaa", "--role", "admin"])
    assert result.exit_code != 0 and "重复" in result.output
    assert db.session.scalar(select(User).where(User.username == "boss2")) is None


def test_users_create_refuses_the_username_as_password_admin(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "--username", "districtboss", "--password",
                                                "districtboss1", "--role", "admin"])
    assert result.exit_code != 0 and "用户名" in result.output


def test_users_create_accepts_a_strong_password_admin(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "--username", "boss3", "--password",
                                                "seven old bridges at dawn", "--role", "admin"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(User).where(User.username == "boss3")).check_password("seven old bridges at dawn")


def test_demo_password_still_logs_in_demo_accounts_secretary(app, client):
    """The demo loader sets its public password directly; only chosen passwords meet the rule."""
    from blueprints.demo.loader import DEMO_PASSWORD

    result = app.test_cli_runner().invoke(args=["demo", "load", "--branches", "1"])
    assert result.exit_code == 0, result.output
    assert password_problem(DEMO_PASSWORD) is not None
    assert client.post("/login", data={"username": "sec1", "password": DEMO_PASSWORD}).status_code == 302


# -- an administrator's reset and deactivation end the calendar feeds too (item 10) ----------

@pytest.fixture(params=MODES)
def cache_mode(request, app, monkeypatch):
    use_cache(app, monkeypatch, request.param)
    return request.param


@pytest.fixture
def admin(login):
    return login(f.create_admin(username="district-admin"))


def _feed_paths(user) -> dict[str, str]:
    return {sub.key: f"/feeds/{sub.token}.ics" for sub in feeds.subscriptions_for(user)}


def test_reset_password_replaces_the_feed_addresses_secretary(app, client, admin, cache_mode):
    secretary = f.create_secretary(username="sec-a")
    [old] = _feed_paths(secretary).values()
    assert client.get(old).status_code == 200
    response = client.post(f"/admin/accounts/{secretary.id}/reset-password")
    assert response.status_code == 200
    assert "日历订阅地址也已更换" in response.get_data(as_text=True)
    assert client.get(old).status_code == 404
    [new] = _feed_paths(secretary).values()
    assert new != old and client.get(new).status_code == 200


def test_reset_password_replaces_the_station_feed_but_not_the_public_one_host(client, admin, cache_mode):
    host = f.create_host(username="host-a")
    before = _feed_paths(host)
    station_key = next(k for k in before if k.startswith("station-"))
    public_key = next(k for k in before if k.startswith("public-"))
    assert client.get(before[station_key]).status_code == 200
    client.post(f"/admin/accounts/{host.id}/reset-password")
    assert client.get(before[station_key]).status_code == 404
    # The station's public list of open slots has no personal data and is shared with others.
    assert client.get(before[public_key]).status_code == 200


def test_reset_password_of_an_account_without_feeds_says_nothing_about_them_admin(client, admin):
    other = f.create_admin(username="admin-2")
    html = client.post(f"/admin/accounts/{other.id}/reset-password").get_data(as_text=True)
    assert "日历订阅地址" not in html


def test_deactivate_replaces_the_feed_addresses_and_activate_does_not_revive_them_secretary(
        client, admin, cache_mode):
    secretary = f.create_secretary(username="sec-b")
    [old] = _feed_paths(secretary).values()
    assert client.get(old).status_code == 200
    response = client.post(f"/admin/accounts/{secretary.id}/deactivate", follow_redirects=True)
    assert "日历订阅地址已失效" in response.get_data(as_text=True)
    assert client.get(old).status_code == 404
    client.post(f"/admin/accounts/{secretary.id}/activate")
    assert client.get(old).status_code == 404
    [new] = _feed_paths(secretary).values()
    assert client.get(new).status_code == 200
