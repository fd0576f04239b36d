"""Text fields refuse control characters, in one place: every form derives from ``BaseForm``
(``blueprints/core/forms.py``), which puts ``input_guard.refuse_control_characters`` first on each
of its text fields. Multi-line fields (textareas) keep tab and line breaks; single-line ones refuse
them too. C1 controls, DEL, the Unicode line and paragraph separators and the bidirectional
overrides and isolates are refused everywhere. The answer is the form again with a Chinese message
naming the character, and nothing is written.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import MultiDict
from wtforms import StringField

import blueprints
from blueprints.accounts.models import Organisation
from blueprints.booking.models import Booking, BookingStatus
from blueprints.core import input_guard
from blueprints.core.extensions import db
from blueprints.core.forms import BaseForm

from . import factories as f

GOOD_FORM = {"headcount": "8", "contact_name": "王书记", "contact_phone": "13912345678", "note": "请准备投影"}
CONTROL_MESSAGE = "不可见的控制字符（U+000B）"
SINGLE_LINE_MESSAGE = "只能填写一行"


@pytest.fixture
def booking_scene(frozen_now):
    station = f.create_station()
    slot = f.create_slot(package=f.create_package(stations=[station]), station=station, capacity=30)
    return slot, f.create_secretary()


def _bookings() -> int:
    return db.session.scalar(sa.select(sa.func.count(Booking.id)))


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_secretary_booking_with_a_vertical_tab_in_the_contact_name_is_refused(client, login, booking_scene, htmx):
    slot, secretary = booking_scene
    login(secretary)
    response = client.post(f"/slots/{slot.id}/book", data={**GOOD_FORM, "contact_name": "王\x0b书记"},
                           headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert html.count(CONTROL_MESSAGE) == 1 and "“联系人”中第 2 个字符" in html
    assert 'name="contact_name"' in html and 'role="alert"' in html
    assert _bookings() == 0


def test_secretary_booking_as_json_with_a_control_character_books_nothing(client, login, booking_scene):
    # BaseForm reads no JSON body (core/forms.py); were it to, the guard would see its text too
    slot, secretary = booking_scene
    login(secretary)
    response = client.post(f"/slots/{slot.id}/book", json={**GOOD_FORM, "contact_name": "王书记\x0b"})
    assert response.status_code == 422
    assert _bookings() == 0


def test_secretary_booking_note_keeps_line_breaks_and_tabs(client, login, booking_scene):
    slot, secretary = booking_scene
    login(secretary)
    note = "第一行\r\n第二行\n\t缩进的第三行"
    response = client.post(f"/slots/{slot.id}/book", data={**GOOD_FORM, "note": note})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert db.session.scalar(sa.select(Booking.note)) == note


@pytest.mark.parametrize("name", ["王\n书记", "王书记\r", "王\t书记", "王\u2028书记"])
def test_secretary_booking_with_a_line_break_in_the_contact_name_is_refused(client, login, booking_scene, name):
    slot, secretary = booking_scene
    login(secretary)
    response = client.post(f"/slots/{slot.id}/book", data={**GOOD_FORM, "contact_name": name})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert SINGLE_LINE_MESSAGE in html or "不可见的控制字符（U+2028）" in html
    assert _bookings() == 0


@pytest.mark.parametrize("char", ["\x0b", "\x0c", "\x01", "\x1f", "\x7f", "\x85", "\x9f", "\u2028", "\u2029",
                                  "\u202a", "\u202e", "\u2066", "\u2069"])
def test_secretary_booking_note_with_a_control_character_is_refused(client, login, booking_scene, char):
    slot, secretary = booking_scene
    login(secretary)
    response = client.post(f"/slots/{slot.id}/book", data={**GOOD_FORM, "note": f"请准备{char}投影"})
    assert response.status_code == 422
    assert f"不可见的控制字符（U+{ord(char):04X}）" in response.get_data(as_text=True)
    assert _bookings() == 0


def test_secretary_cancel_reason_with_a_control_character_changes_nothing(client, login, booking_scene):
    slot, secretary = booking_scene
    booking = f.create_booking(slot=slot, organisation=secretary.organisation)
    login(secretary)
    response = client.post(f"/bookings/{booking.id}/cancel", data={"reason": "时间\x0b冲突"})
    assert response.status_code == 422
    assert CONTROL_MESSAGE in response.get_data(as_text=True)
    assert db.session.get(Booking, booking.id).status is BookingStatus.CONFIRMED


def test_admin_organisation_name_with_a_control_character_changes_nothing(client, login):
    organisation = f.create_organisation(name="新虹第一党支部")
    login(f.create_admin())
    form = {"name": "新虹第一\x0b党支部", "kind": "branch", "parent": "", "subdistrict": "新虹街道",
            "member_count": "20", "secretary_name": "赵书记", "secretary_phone": "13900000001", "active": "y"}
    response = client.post(f"/admin/organisations/{organisation.id}/edit", data=form)
    assert response.status_code in (200, 422)
    assert CONTROL_MESSAGE in response.get_data(as_text=True)
    assert db.session.get(Organisation, organisation.id).name == "新虹第一党支部"


def test_host_slot_note_is_single_line(client, login, frozen_now):
    station = f.create_station()
    host = f.create_host(stations=[station])
    slot = f.create_slot(package=f.create_package(stations=[station]), station=station, note="原备注")
    login(host)
    start = slot.starts_at
    response = client.post(f"/host/slots/{slot.id}/edit", data={
        "day": f"{start:%Y-%m-%d}", "start": "14:00", "end": "16:00", "capacity": "25", "max_groups": "",
        "note": "改期\n请注意"})
    assert response.status_code == 422
    assert SINGLE_LINE_MESSAGE in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(type(slot), slot.id).note == "原备注"


# -- every form of the app ------------------------------------------------------------------------------

def _form_classes() -> list[type]:
    for module in pkgutil.walk_packages(blueprints.__path__, "blueprints."):
        if module.name.endswith(".forms"):
            importlib.import_module(module.name)
    found, todo = set(), [BaseForm]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__name__}")


def _text_fields(form) -> list:
    return [field for field in form if isinstance(field, StringField) and field.name != "csrf_token"]


def _build(form_class, formdata=None):
    parameters = inspect.signature(form_class.__init__).parameters
    extra = {name: () for name in ("stations", "packages", "subdistricts", "campaigns", "parents", "options")
             if name in parameters and parameters[name].default is inspect.Parameter.empty}
    return form_class(formdata=formdata, meta={"csrf": False}, **extra)


def test_every_text_field_of_every_form_refuses_control_characters(app):
    classes = _form_classes()
    assert len(classes) > 20  # the import found the forms
    checked = 0
    for form_class in classes:
        fields = _text_fields(_build(form_class))
        if not fields:
            continue
        form = _build(form_class, MultiDict({field.name: "a\x0bb" for field in fields}))
        for field in _text_fields(form):  # field by field: some forms get their choices later
            field.validate(form)
            assert any("U+000B" in str(e) for e in field.errors), (form_class.__name__, field.name, field.errors)
            checked += 1
    assert checked > 40


@pytest.mark.parametrize("text, multiline, expected", [
    ("王书记", False, None), ("", False, None), ("a\tb", False, (1, "\t")), ("a\nb", False, (1, "\n")),
    ("a\r\nb\tc", True, None), ("a\x0bb", True, (1, "\x0b")), ("ab\x00", True, (2, "\x00")),
    ("\x85", True, (0, "\x85")), ("x\u202ey", True, (1, "\u202e")), ("x\u200by", False, None),
    ("中文，标点。😀", False, None),
])
def test_forbidden_character(text, multiline, expected):
    assert input_guard.forbidden_character(text, multiline=multiline) == expected
