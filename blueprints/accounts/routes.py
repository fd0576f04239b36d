"""Login, logout, password change and the ``flask users`` commands."""
from __future__ import annotations

import click
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from blueprints.core.extensions import db, login_manager
from blueprints.core.routes import safe_next
from blueprints.core.security import forgive_attempt, new_session

from .forms import ChangePasswordForm, LoginForm
from .models import Organisation, Role, User
from .services import AccountError, authenticate, create_user, password_problem
from .session_users import session_user

bp = Blueprint("accounts", __name__, cli_group="users")

login_manager.login_view = "accounts.login"
login_manager.login_message = None


@login_manager.user_loader
def load_user(user_id: str):
    try:
        pk, version = (int(part) for part in user_id.split(":"))
    except ValueError:
        return None
    user = session_user(pk)  # with the organisation: every page shows it
    if user is None or user.session_version != version or not user.active:
        return None
    return user


# What a user who must choose a new password may still reach (everything else leads to the form).
PASSWORD_CHANGE_EXEMPT = {"accounts.change_password", "accounts.logout", "accounts.login", "static",
                          "core.set_language", "core.healthz", "core.robots"}


@bp.before_app_request
def require_password_change():
    """After an administrator issued a one-time password (or for demo passwords outside demo
    mode), every page asks for a new password first; demo mode lets the flag be, as the login does."""
    if request.endpoint in PASSWORD_CHANGE_EXEMPT or request.endpoint is None:
        return None
    if not current_user.is_authenticated or not current_user.must_change_password:
        return None
    if current_app.config.get("DEMO_MODE"):
        return None
    target = url_for("accounts.change_password")
    if getattr(request, "htmx", None):
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def home_for(user: User) -> str:
    if user.is_host and "host.dashboard" in current_app.view_functions:
        return url_for("host.dashboard")
    if user.is_admin and "admin.index" in current_app.view_functions:
        return url_for("admin.index")
    return url_for("menu.index")


def demo_accounts() -> list[User]:
    """The accounts the login page lists: the demo feature's, while demo data is loaded
    (``demo/loader.py`` registers them); none without it."""
    advertised = current_app.extensions.get("login_demo_accounts")
    return advertised() if advertised is not None else []


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        # The attempt was counted before this check (core.security); a right password gives it back.
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            forgive_attempt()
            new_session()  # rotate: nothing from the anonymous session carries over
            login_user(user)
            if user.must_change_password and not current_app.config.get("DEMO_MODE"):
                return redirect(url_for("accounts.change_password"))
            return redirect(safe_next(request.args.get("next"), home_for(user)))
        form.password.errors.append(_("Wrong username or password."))
        status = 422
    elif request.method == "POST":
        status = 422
    return render_template("accounts/login.html", form=form, demo_users=demo_accounts()), status


@bp.post("/logout")
def logout():
    from blueprints.core.forms import EmptyForm

    if EmptyForm().validate_on_submit():
        if current_user.is_authenticated:
            # Session cookies are signed, not stored: bumping the version is what makes a copy
            # of this cookie worthless (it also ends the user's sessions on other devices).
            current_user.session_version += 1
            db.session.commit()
        logout_user()
        new_session()
        flash(_("You have logged out."), "info")
    return redirect(url_for("menu.index"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        # Counted against the account's budget before this check, as a login is (core.security).
        if not current_user.check_password(form.current_password.data):
            form.current_password.errors.append(_("The current password is wrong."))
            return render_template("accounts/password.html", form=form), 422
        forgive_attempt()
        if form.new_password.data == form.current_password.data:
            problem = _("Choose a password different from the current one.")
        else:
            problem = password_problem(form.new_password.data, current_user)
        if problem:
            form.new_password.errors.append(problem)
            status = 422
        else:
            current_user.set_password(form.new_password.data)
            current_user.must_change_password = False
            current_user.session_version += 1
            db.session.commit()
            login_user(current_user._get_current_object())
            flash(_("Your password has been changed."), "success")
            return redirect(home_for(current_user))
    elif request.method == "POST":
        status = 422
    return render_template("accounts/password.html", form=form), status


@bp.cli.command("create")
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", "display_name", default=None, help="Display name")
@click.option("--organisation", default=None, help="Organisation name (secretaries)")
@click.option("--station", "stations", multiple=True, help="Station name (hosts; repeatable)")
def create_command(username, password, role, display_name, organisation, stations):
    """Create an account."""
    from blueprints.catalog.models import Station

    role = Role(role)
    org = None
    if organisation:
        org = db.session.scalar(select(Organisation).where(Organisation.name == organisation))
        if org is None:
            raise click.ClickException(f"no organisation named {organisation!r}")
    found = []
    for name in stations:
        station = db.session.scalar(select(Station).where(Station.name == name))
        if station is None:
            raise click.ClickException(f"no station named {name!r}")
        found.append(station)
    try:
        user = create_user(username, password, role, display_name, org, found)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"created {user.username} ({role.value})")
