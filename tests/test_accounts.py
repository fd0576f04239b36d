"""Login, logout, role guard, password change and the `flask users create` command."""
import pytest
from flask import Blueprint

from blueprints.accounts.guards import admin_required, host_required, secretary_required
from blueprints.accounts.models import Role, User
from blueprints.core.extensions import db

from . import factories as f

LOGGED_IN = 'action="/logout"'


def test_login_page_has_labelled_fields(client):
    html = client.get("/login").get_data(as_text=True)
    assert '<label for="username">用户名</label>' in html
    assert '<label for="password">密码</label>' in html


def test_login_with_right_password_logs_in_and_shows_role_navigation(client):
    f.create_secretary(username="sec-a")
    response = client.post("/login", data={"username": "sec-a", "password": f.PASSWORD})
    assert response.status_code == 302
    html = client.get("/").get_data(as_text=True)
    assert LOGGED_IN in html and "支部书记" in html


@pytest.mark.parametrize("username,password", [("sec-a", "wrong"), ("nobody", "whatever"), ("", "")])
def test_login_failure_gives_the_same_clear_message(client, username, password):
    f.create_secretary(username="sec-a")
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    if username:
        assert "用户名或密码错误" in html
    assert LOGGED_IN not in html


def test_deactivated_user_cannot_log_in(client):
    f.create_secretary(username="gone", active=False)
    response = client.post("/login", data={"username": "gone", "password": f.PASSWORD})
    assert response.status_code == 422


def test_login_next_parameter_only_allows_local_paths(client):
    f.create_secretary(username="sec-a")
    response = client.post("/login?next=https://evil.example/", data={"username": "sec-a", "password": f.PASSWORD})
    assert response.headers["Location"] == "/"
    client.post("/logout")
    response = client.post("/login?next=/login", data={"username": "sec-a", "password": f.PASSWORD})
    assert response.headers["Location"] == "/login"


def test_logout_requires_post_and_ends_the_session(client, login):
    login(f.create_secretary())
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 302
    assert LOGGED_IN not in client.get("/").get_data(as_text=True)


def test_changing_password_logs_out_other_sessions(app, client, login):
    user = login(f.create_secretary())
    other = app.test_client()
    other.post("/login", data={"username": user.username, "password": f.PASSWORD})
    response = client.post("/account/password", data={
        "current_password": f.PASSWORD, "new_password": "a much longer one", "confirm_password": "a much longer one"})
    assert response.status_code == 302
    assert LOGGED_IN in client.get("/").get_data(as_text=True)
    assert LOGGED_IN not in other.get("/").get_data(as_text=True)


def test_password_change_with_wrong_current_password_changes_nothing(client, login):
    user = login(f.create_secretary())
    response = client.post("/account/password", data={
        "current_password": "nope", "new_password": "a much longer one", "confirm_password": "a much longer one"})
    assert response.status_code == 422
    assert "当前密码不正确" in response.get_data(as_text=True)
    db.session.refresh(user)
    assert user.check_password(f.PASSWORD)


def test_anonymous_is_sent_to_login_for_account_pages(client):
    response = client.get("/account/password")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.fixture
def guarded_app(app):
    """Routes behind each guard, registered once on the session's app."""
    if "guard_probe.secretary" not in app.view_functions:
        probe = Blueprint("guard_probe", __name__)
        probe.add_url_rule("/_probe/secretary", "secretary", secretary_required(lambda: "ok"))
        probe.add_url_rule("/_probe/host", "host", host_required(lambda: "ok"))
        probe.add_url_rule("/_probe/admin", "admin", admin_required(lambda: "ok"))
        app._got_first_request = False
        app.register_blueprint(probe)
    return app


@pytest.mark.parametrize("role", list(Role))
def test_role_guard_lets_only_the_right_role_in(guarded_app, client, login, role):
    user = f.create_user(role, stations=[f.create_station()] if role is Role.HOST else None)
    login(user)
    for target in Role:
        status = client.get(f"/_probe/{target.value}").status_code
        assert status == (200 if target is role else 403)


def test_role_guard_sends_anonymous_to_login(guarded_app, client):
    assert client.get("/_probe/admin").status_code == 302


def test_forbidden_page_is_in_chinese(guarded_app, client, login):
    login(f.create_secretary())
    response = client.get("/_probe/admin")
    assert response.status_code == 403
    assert "您没有权限查看此页面" in response.get_data(as_text=True)


def test_not_found_page_is_in_chinese(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "页面不存在" in response.get_data(as_text=True)


def test_users_create_command(app):
    station = f.create_station(name="七宝老街党群服务站")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--username", "newhost", "--password", "long password 1",
                                 "--role", "host", "--station", "七宝老街党群服务站"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(db.select(User).where(User.username == "newhost"))
    assert user.role is Role.HOST and [s.id for s in user.stations] == [station.id]
    assert user.check_password("long password 1")


def test_users_create_command_refuses_secretary_without_organisation(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "--username", "s", "--password", "p", "--role", "secretary"])
    assert result.exit_code != 0
    assert "organisation" in result.output


def test_users_create_command_refuses_duplicates(app):
    f.create_admin(username="boss")
    result = app.test_cli_runner().invoke(args=["users", "create", "--username", "boss", "--password", "p", "--role", "admin"])
    assert result.exit_code != 0 and "already exists" in result.output
