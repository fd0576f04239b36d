"""Accounts administration (admins only): list, create, edit role and assignments, reset password
(then the forced change at the next login), deactivate and activate."""
import re

import pytest
from sqlalchemy import func, select

from blueprints.accounts.models import Role, User
from blueprints.core.extensions import db

from . import factories as f

LOGGED_IN = 'action="/logout"'


@pytest.fixture
def admin(login):
    return login(f.create_admin(username="district-admin"))


def _usernames(html):
    return re.findall(r'<th scope="row"><a href="/admin/accounts/\d+/edit">([^<]+)</a>', html)


def _one_time_password(html):
    return re.search(r'<code class="one-time" id="one-time-password">([^<]+)</code>', html).group(1)


def test_admin_lists_accounts_with_role_and_assignments(client, admin):
    station = f.create_station(name="七宝老街党群服务站")
    f.create_host(username="host-a", stations=[station])
    sec = f.create_secretary(username="sec-a")
    f.create_secretary(username="sec-gone", active=False)
    html = client.get("/admin/accounts").get_data(as_text=True)
    assert set(_usernames(html)) == {"district-admin", "host-a", "sec-a"}
    assert "七宝老街党群服务站" in html and sec.organisation.name in html


@pytest.mark.parametrize("query,expected", [
    ({"role": "host"}, {"host-a"}),
    ({"role": "secretary", "status": "all"}, {"sec-a", "sec-gone"}),
    ({"status": "inactive"}, {"sec-gone"}),
    ({"q": "sec-"}, {"sec-a"}),
    ({"q": "甲党支部"}, {"sec-a"}),
    ({"q": "1390000"}, {"host-a"}),
])
def test_admin_account_list_filters(client, admin, query, expected):
    f.create_host(username="host-a", phone="13900001234")
    f.create_secretary(username="sec-a", organisation=f.create_organisation(name="甲党支部"))
    f.create_secretary(username="sec-gone", active=False)
    html = client.get("/admin/accounts", query_string=query).get_data(as_text=True)
    assert set(_usernames(html)) == expected


def test_account_list_htmx_fragment_and_bounded_queries(app, client, admin, htmx_headers, count_queries, monkeypatch):
    monkeypatch.setitem(app.config, "PAGE_SIZE", 10)
    stations = [f.create_station() for _ in range(3)]
    for n in range(12):
        f.create_host(username=f"host-{n:02d}", stations=stations)
        f.create_secretary(username=f"sec-{n:02d}")
    with count_queries() as counter:
        response = client.get("/admin/accounts?q=-0", headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert "<html" not in html and html.lstrip().startswith('<div id="results"')
    assert len(_usernames(html)) == 10
    assert counter.count <= 6, counter.statements


def test_admin_creates_a_secretary_who_must_change_the_password(app, client, admin):
    org = f.create_organisation(name="新虹街道机关第一党支部")
    response = client.post("/admin/accounts/new", data={
        "username": "13900001111", "display_name": "王芳", "role": "secretary",
        "organisation": "新虹街道机关第一党支部", "phone": "13900001111", "email": ""})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    password = _one_time_password(response.get_data(as_text=True))
    user = db.session.scalar(select(User).where(User.username == "13900001111"))
    assert user.role is Role.SECRETARY and user.organisation_id == org.id and user.must_change_password

    other = app.test_client()
    assert other.post("/login", data={"username": "13900001111", "password": password}).headers["Location"] == "/account/password"


def test_admin_creates_a_host_with_stations(client, admin):
    a, b = f.create_station(), f.create_station()
    response = client.post("/admin/accounts/new", data={
        "username": "li.host", "display_name": "李站长", "role": "host", "stations": [str(a.id), str(b.id)]})
    assert response.status_code == 200
    user = db.session.scalar(select(User).where(User.username == "li.host"))
    assert {s.id for s in user.stations} == {a.id, b.id} and user.organisation_id is None


@pytest.mark.parametrize("data,message", [
    ({"username": "", "display_name": "x", "role": "admin"}, "必填"),
    ({"username": "bad name!", "display_name": "x", "role": "admin"}, "只能使用字母"),
    ({"username": "district-admin", "display_name": "x", "role": "admin"}, "已被占用"),
    ({"username": "new-sec", "display_name": "x", "role": "secretary"}, "支部书记必须属于一个组织"),
    ({"username": "new-sec", "display_name": "x", "role": "secretary", "organisation": "不存在"}, "没有名为“不存在”的组织"),
    ({"username": "new-host", "display_name": "x", "role": "host"}, "至少要负责一个站点"),
    ({"username": "new-x", "display_name": "x", "role": "king"}, "角色"),
    ({"username": "new-x", "display_name": "x", "role": "admin", "email": "nope"}, "电子邮箱"),
])
def test_create_account_with_bad_input_changes_nothing(client, admin, data, message):
    response = client.post("/admin/accounts/new", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(User.id))) == 1


def test_admin_changes_a_role_and_assignments(client, admin):
    station = f.create_station()
    sec = f.create_secretary(username="sec-a")
    page = client.get(f"/admin/accounts/{sec.id}/edit").get_data(as_text=True)
    assert f'value="{sec.organisation.name}"' in page and 'name="username"' not in page
    response = client.post(f"/admin/accounts/{sec.id}/edit", data={
        "display_name": "改做站长", "role": "host", "stations": [str(station.id)]})
    assert response.status_code == 302
    db.session.refresh(sec)
    assert sec.role is Role.HOST and sec.organisation_id is None and [s.id for s in sec.stations] == [station.id]


def test_edit_form_htmx_fragment_shows_errors(client, admin, htmx_headers):
    sec = f.create_secretary()
    response = client.post(f"/admin/accounts/{sec.id}/edit", data={"display_name": "", "role": "secretary"},
                           headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in html and 'id="account-form"' in html


def test_admin_cannot_demote_or_deactivate_themselves(client, admin):
    response = client.post(f"/admin/accounts/{admin.id}/edit", data={"display_name": "x", "role": "host",
                                                                     "stations": [str(f.create_station().id)]})
    assert response.status_code == 422 and "不能取消自己的管理员角色" in response.get_data(as_text=True)
    response = client.post(f"/admin/accounts/{admin.id}/deactivate", follow_redirects=True)
    assert "不能停用自己的账号" in response.get_data(as_text=True)
    db.session.refresh(admin)
    assert admin.active and admin.role is Role.ADMIN


def test_reset_password_ends_sessions_and_forces_a_change_at_next_login(app, client, admin):
    sec = f.create_secretary(username="sec-a")
    theirs = app.test_client()
    theirs.post("/login", data={"username": "sec-a", "password": f.PASSWORD})
    assert LOGGED_IN in theirs.get("/").get_data(as_text=True)

    response = client.post(f"/admin/accounts/{sec.id}/reset-password")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    password = _one_time_password(response.get_data(as_text=True))
    assert LOGGED_IN not in theirs.get("/").get_data(as_text=True)  # the old session ended
    assert theirs.post("/login", data={"username": "sec-a", "password": f.PASSWORD}).status_code == 422

    login = theirs.post("/login", data={"username": "sec-a", "password": password})
    assert login.headers["Location"] == "/account/password"
    # every page leads to the change form, htmx requests too; logout still works
    assert theirs.get("/bookings").headers["Location"] == "/account/password"
    assert theirs.get("/").headers["Location"] == "/account/password"
    htmx = theirs.get("/", headers={"HX-Request": "true"})
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/account/password"
    form = theirs.get("/account/password").get_data(as_text=True)
    assert "请先设置您自己的密码" in form

    same = theirs.post("/account/password", data={"current_password": password, "new_password": password,
                                                  "confirm_password": password})
    assert same.status_code == 422 and "不能与当前密码相同" in same.get_data(as_text=True)
    short = theirs.post("/account/password", data={"current_password": password, "new_password": "short",
                                                   "confirm_password": "short"})
    assert short.status_code == 422
    done = theirs.post("/account/password", data={"current_password": password, "new_password": "my own long secret",
                                                  "confirm_password": "my own long secret"})
    assert done.status_code == 302
    assert theirs.get("/").status_code == 200
    db.session.refresh(sec)
    assert not sec.must_change_password and sec.check_password("my own long secret")


def test_forced_change_is_not_applied_in_demo_mode(app, client, login, monkeypatch):
    monkeypatch.setitem(app.config, "DEMO_MODE", True)
    login(f.create_secretary(must_change_password=True))
    assert client.get("/").status_code == 200


def test_password_change_page_can_be_used_voluntarily(client, login):
    login(f.create_host())
    assert client.get("/account/password").status_code == 200


def test_deactivate_ends_sessions_and_activate_restores_login(app, client, admin):
    host = f.create_host(username="host-a")
    theirs = app.test_client()
    theirs.post("/login", data={"username": "host-a", "password": f.PASSWORD})
    response = client.post(f"/admin/accounts/{host.id}/deactivate")
    assert response.status_code == 302
    db.session.refresh(host)
    assert not host.active
    assert LOGGED_IN not in theirs.get("/").get_data(as_text=True)
    assert theirs.post("/login", data={"username": "host-a", "password": f.PASSWORD}).status_code == 422
    assert "此账号已停用" in client.get(f"/admin/accounts/{host.id}/edit").get_data(as_text=True)
    client.post(f"/admin/accounts/{host.id}/activate")
    assert theirs.post("/login", data={"username": "host-a", "password": f.PASSWORD}).status_code == 302


def test_another_admin_can_be_deactivated(client, admin):
    other = f.create_admin(username="admin-2")
    assert client.post(f"/admin/accounts/{other.id}/deactivate").status_code == 302
    db.session.refresh(other)
    assert not other.active


def test_state_changes_need_post(client, admin):
    sec = f.create_secretary()
    for action in ("reset-password", "deactivate", "activate"):
        assert client.get(f"/admin/accounts/{sec.id}/{action}").status_code == 405


def test_unknown_account_is_404(client, admin):
    assert client.get("/admin/accounts/999999/edit").status_code == 404
    assert client.post("/admin/accounts/999999/reset-password").status_code == 404


@pytest.mark.parametrize("method,path", [
    ("get", "/admin/accounts"), ("get", "/admin/accounts/new"), ("post", "/admin/accounts/new"),
    ("get", "/admin/accounts/{id}/edit"), ("post", "/admin/accounts/{id}/edit"),
    ("post", "/admin/accounts/{id}/reset-password"), ("post", "/admin/accounts/{id}/deactivate"),
    ("post", "/admin/accounts/{id}/activate"),
])
def test_account_routes_refuse_secretary_and_host_and_send_anonymous_to_login(app, method, path):
    target = f.create_secretary(username="target")
    before = (target.password_hash, target.active, target.session_version, target.role)
    url = path.format(id=target.id)
    data = {"username": "x", "display_name": "x", "role": "admin"}
    anonymous = getattr(app.test_client(), method)(url, data=data)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    for user in (f.create_secretary(), f.create_host()):
        other = app.test_client()
        other.post("/login", data={"username": user.username, "password": f.PASSWORD})
        assert getattr(other, method)(url, data=data).status_code == 403
    db.session.refresh(target)
    assert (target.password_hash, target.active, target.session_version, target.role) == before
    assert db.session.scalar(select(func.count(User.id)).where(User.username == "x")) == 0
