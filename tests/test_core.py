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
    assert response.get_json() == {"status": "ok", "database": "ok",
                                   "jobs": {"due": 0, "oldest_due_seconds": 0, "scheduled": 0, "given_up": 0}}


def test_healthz_reports_the_jobs_backlog_and_the_age_of_its_oldest_due_job(client, frozen_now):
    from datetime import timedelta

    from blueprints.jobs import queue
    from blueprints.booking import notifications  # noqa: F401  (registers the mail handler)

    queue.enqueue("mail", "mail:test:1", {"to": "a@example.org"}, run_after=frozen_now.now - timedelta(minutes=5))
    queue.enqueue("mail", "mail:test:2", {"to": "b@example.org"})
    queue.enqueue("mail", "mail:test:3", {"to": "c@example.org"}, run_after=frozen_now.now + timedelta(hours=3))
    db.session.commit()
    jobs = client.get("/healthz").get_json()["jobs"]
    assert jobs == {"due": 2, "oldest_due_seconds": 300, "scheduled": 1, "given_up": 0}


def test_healthz_is_503_when_the_database_is_down(tmp_path):
    broken = create_app(app_config("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unavailable"


def _counts():
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model))
            for model in (Station, Package, Slot, User, Booking)}


def test_demo_load_builds_the_district_and_is_idempotent():
    load_demo(branches=12, history=False)
    first = _counts()
    load_demo(branches=12, history=False)
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
    load_demo(branches=3, history=False)
    html = client.get("/login").get_data(as_text=True)
    assert "演示账号" in html and "partyday" in html and "sec1" in html


def test_demo_accounts_can_log_in(client):
    load_demo(branches=2, history=False)
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


@pytest.mark.parametrize(("raw", "data", "valid"), [
    ("", None, True),  # no choice: left to Optional
    ("7", 7, True),
    ("8", 8, False),  # not among the choices
    ("x", None, False),  # not an id at all
])
def test_long_select_field_checks_the_choice_against_a_set_with_wtforms_result(app, raw, data, valid):
    from werkzeug.datastructures import MultiDict
    from wtforms.validators import Optional

    from blueprints.core.forms import BaseForm, LongSelectField
    from blueprints.core.params import optional_id

    class Form(BaseForm):
        class Meta:
            csrf = False

        station = LongSelectField("station", coerce=optional_id, validators=[Optional()])

    form = Form(MultiDict({"station": raw}))
    form.station.choices = [("", "全部")] + [(n, f"站点{n}") for n in range(1, 8)]
    assert form.validate() is valid
    assert form.station.data == data


def test_favicon_is_served_and_linked_and_pages_have_a_meta_description(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response.headers["Location"].endswith("/static/favicon.svg")
    with client.get("/static/favicon.svg") as icon:
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    for path in ("/", "/login"):
        html = client.get(path).get_data(as_text=True)
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
        match = re.search(r'<meta name="description" content="([^"]+)">', html)
        assert match and "主题党日" in match.group(1)


# -- event, action and status keys never show raw ------------------------------------------

def _event_actions_written_by_the_code() -> dict[str, set[str]]:
    """Every action key the code writes, read from its source: ``record(booking, status, actor,
    "<action>")`` and ``booking_services.record(...)`` for booking events, ``_event(slot, user,
    "<action>")`` for slot events, and ``BookingEvent(…, action=…)`` / ``SlotEvent(…, action=…)``."""
    import ast

    found = {"booking": set(), "slot": set()}

    def strings(node):
        return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}

    for path in (ROOT / "blueprints").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            action = next((k.value for k in node.keywords if k.arg == "action"), None)
            if name == "record" and len(node.args) >= 4:
                found["booking"] |= strings(node.args[3])
            elif name == "_event" and len(node.args) >= 3:
                found["slot"] |= strings(node.args[2])
            elif name == "BookingEvent" and action is not None:
                found["booking"] |= strings(action)
            elif name == "SlotEvent" and action is not None:
                found["slot"] |= strings(action)
    return found


def test_every_event_action_the_code_writes_has_a_label():
    from blueprints.booking.models import BOOKING_EVENT_ACTIONS
    from blueprints.catalog.models import SLOT_EVENT_ACTIONS

    written = _event_actions_written_by_the_code()
    assert {"created", "cancelled", "promoted", "slot_changed"} <= written["booking"]  # the scan finds them
    assert {"created", "capacity_changed", "closed", "reopened", "no_shows_marked"} <= written["slot"]
    assert written["booking"] - set(BOOKING_EVENT_ACTIONS) == set()
    assert written["slot"] - set(SLOT_EVENT_ACTIONS) == set()


def test_an_event_without_a_label_cannot_be_written():
    from blueprints.booking.models import BookingEvent
    from blueprints.catalog.models import SlotEvent

    with pytest.raises(ValueError):
        SlotEvent(action="teleported")
    with pytest.raises(ValueError):
        BookingEvent(action="teleported")


def _visible_text(html: str) -> str:
    import html as html_module

    html = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", html)
    return html_module.unescape(re.sub(r"(?s)<[^>]+>", " ", html))


def test_no_page_shows_a_raw_event_action_or_status_key(app):
    """The host's slot page, the branch's booking page and the audit trail, with one event of
    every action key (those the code writes and those labelled), in Chinese: no key shows raw."""
    from datetime import timedelta

    from blueprints.booking.models import BOOKING_EVENT_ACTIONS, BookingEvent, BookingStatus
    from blueprints.catalog.models import SLOT_EVENT_ACTIONS, SlotEvent, SlotStatus
    from blueprints.core import clock

    from . import factories as f

    written = _event_actions_written_by_the_code()
    booking_actions = sorted(written["booking"] | set(BOOKING_EVENT_ACTIONS))
    slot_actions = sorted(written["slot"] | set(SLOT_EVENT_ACTIONS))
    station = f.create_station()
    slot = f.create_slot(station=station, capacity=45)
    host = f.create_host(stations=[station])
    secretary = f.create_secretary()
    admin = f.create_admin()
    booking = f.create_booking(slot=slot, organisation=secretary.organisation, headcount=12)
    start, end = slot.starts_at, slot.ends_at
    moved = (f"time {start.isoformat()}–{end.isoformat()} → "
             f"{(start + timedelta(hours=1)).isoformat()}–{(end + timedelta(hours=1)).isoformat()}")
    details = {
        "edited": f"{moved}; capacity 30 → 45; max_groups None → 3; note",
        "capacity_changed": "30 → 45",
        "headcount_changed": "10 → 12",
        "checked_in": "12",
        "slot_changed": moved,
    }
    statuses = list(BookingStatus)
    for i, action in enumerate(booking_actions):
        db.session.add(BookingEvent(booking=booking, actor_id=host.id, action=action, detail=details.get(action, ""),
                                    from_status=statuses[i % len(statuses)],
                                    to_status=statuses[(i + 1) % len(statuses)],
                                    at=clock.now() - timedelta(minutes=i)))
    for i, action in enumerate(slot_actions):
        detail = "series 0123456789abcdef" if action == "created" else details.get(action, "")
        db.session.add(SlotEvent(slot=slot, actor_id=host.id, action=action, detail=detail,
                                 at=clock.now() - timedelta(minutes=i)))
    db.session.commit()

    keys = set(booking_actions) | set(slot_actions) | {s.value for s in BookingStatus} | {s.value for s in SlotStatus}
    keys |= {"time", "capacity", "max_groups", "note", "series", "None"}  # the words of event details
    pages = {
        (host, f"/host/slots/{slot.id}"): slot_actions,
        (secretary, f"/bookings/{booking.id}"): [a for a in booking_actions if a != "created"],
        (admin, "/admin/audit"): booking_actions + slot_actions,
    }
    for (user, path), shown_actions in pages.items():
        client = app.test_client()
        assert client.post("/login", data={"username": user.username, "password": f.PASSWORD}).status_code == 302
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        text = _visible_text(html)
        raw = sorted(k for k in keys if re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", text))
        assert raw == [], f"{path} shows raw keys {raw}"
        for action in shown_actions:  # and each event is really on the page, by its label
            assert f'data-action="{action}"' in html or path == "/admin/audit", (path, action)
        assert "名额 30 → 45" in text or path != f"/host/slots/{slot.id}"


def test_every_notification_kind_the_code_sends_reads_as_a_sentence(app):
    """The inbox shows ``message_for(kind, params)``: no kind may fall back to its raw key."""
    import ast

    from blueprints.booking.models import BookingStatus
    from blueprints.booking.notifications import KINDS, message_for

    sent = set()
    for path in (ROOT / "blueprints").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "notify" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                sent.add(node.args[0].value)
    sent |= {"confirmed", "pending", "waitlisted"}  # notify(status.value, …) when a booking is made
    assert {"promoted", "slot_cancelled", "new_pending"} <= sent
    assert sent - set(KINDS) == set()
    with app.test_request_context(), force_locale("zh_CN"):
        for kind in KINDS:
            text = message_for(kind, {"status": BookingStatus.CONFIRMED.label})
            assert text != kind and re.search(r"[\u4e00-\u9fff]", text), kind
