"""Health check, demo data, translations, CSRF wiring."""
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from flask_babel import force_locale, get_translations
from sqlalchemy import func, select

from app import create_app
from blueprints.accounts.models import User
from blueprints.catalog.models import Package, Slot, Station
from blueprints.core.extensions import db
from blueprints.demo.loader import demo_data_loaded, load_demo
from blueprints.booking.models import Booking

from .conftest import app_config

ROOT = Path(__file__).resolve().parents[1]


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_down(tmp_path):
    broken = create_app(app_config("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unavailable"


def _counts():
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Station, Package, Slot, User, Booking)}


def test_demo_load_builds_the_district_and_is_idempotent():
    load_demo(branches=12)
    first = _counts()
    load_demo(branches=12)
    assert _counts() == first
    assert first["Station"] >= 8 and first["Package"] >= 12
    assert demo_data_loaded()
    names = set(db.session.scalars(select(User.username)))
    assert {"admin", "host1", "sec1", "sec12"} <= names
    assert f"host{first['Station']}" in names
    assert db.session.scalar(select(func.count()).where(Slot.capacity == 20)) >= 1
    user = db.session.scalar(select(User).where(User.username == "sec1"))
    assert user.check_password("partyday") and user.organisation is not None


def test_demo_load_branches_option(app):
    result = app.test_cli_runner().invoke(args=["demo", "load", "--branches", "15"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).where(User.username == "sec15")) == 1


def test_login_page_lists_demo_accounts_only_when_demo_data_is_loaded(client):
    assert "演示账号" not in client.get("/login").get_data(as_text=True)
    load_demo(branches=3)
    html = client.get("/login").get_data(as_text=True)
    assert "演示账号" in html and "partyday" in html and "sec1" in html


def test_demo_accounts_can_log_in(client):
    load_demo(branches=2)
    response = client.post("/login", data={"username": "sec1", "password": "partyday"})
    assert response.status_code == 302


def _extracted_messages():
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    sources = {"blueprints": [("**.py", "python")], "templates": [("**.html", "jinja2")]}
    for directory, method_map in sources.items():
        path = ROOT / directory
        for filename, lineno, message, comments, context in extract_from_dir(
            str(path), method_map, keywords=keywords,
            options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
        ):
            yield f"{directory}/{filename}:{lineno}", message


def test_every_message_has_a_chinese_translation(app):
    with app.test_request_context(), force_locale("zh_CN"):
        catalog = get_translations()._catalog
    missing = []
    for where, message in _extracted_messages():
        key = message[0] if isinstance(message, tuple) else message
        lookup = (key, 0) if isinstance(message, tuple) else key
        if not catalog.get(lookup):
            missing.append(f"{where}: {key}")
    assert missing == []


def test_csrf_is_enforced_and_accepted_from_the_htmx_header(tmp_path):
    app = create_app(app_config(f"sqlite:///{tmp_path / 'csrf.sqlite3'}", WTF_CSRF_ENABLED=True))
    with app.app_context():
        db.create_all()
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    refused = client.post("/lang", data={"lang": "en"})
    assert refused.status_code == 400
    assert "页面已过期" in refused.get_data(as_text=True)
    accepted = client.post("/lang", data={"lang": "en"}, headers={"X-CSRFToken": token})
    assert accepted.status_code == 302
    with app.app_context():
        db.engine.dispose()


def test_messages_outside_a_request_use_the_default_language(app):
    from flask_babel import gettext

    with app.app_context():
        assert gettext("This slot has been cancelled.") == "该场次已取消。"


@pytest.mark.parametrize("raw,errors", [
    ("abc", ["请填写整数。"]),
    ("", []),          # Optional: nothing to say
    ("0", ["范围1-5"]),
    ("3", []),
])
def test_whole_number_field_gives_one_message(app, raw, errors):
    from werkzeug.datastructures import MultiDict
    from wtforms.validators import NumberRange, Optional

    from blueprints.core.forms import BaseForm, WholeNumberField

    class Form(BaseForm):
        class Meta:
            csrf = False

        n = WholeNumberField("n", validators=[Optional(), NumberRange(1, 5, message="范围1-5")],
                             invalid_message="请填写整数。")

    form = Form(MultiDict({"n": raw}))
    form.validate()
    assert form.n.errors == errors
