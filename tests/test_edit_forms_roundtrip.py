"""Every edit form of the admin and host pages, opened for an existing object and saved unchanged:
each field shows the stored value, the save is accepted, and no stored value moves (issue 13).

The form is read from the page as a browser would submit it (text, number, date and time inputs,
checked boxes, the selected option of each select, textareas), so a field that does not show its
value — as the package form's category did (an enum against the select's strings) — fails here.
"""
from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

from werkzeug.datastructures import MultiDict

import pytest
import sqlalchemy as sa

from blueprints.accounts.models import Organisation, OrganisationKind, User
from blueprints.quotas.models import Quota, QuotaPeriod
from blueprints.catalog.models import Campaign, Category, Package, Slot, Station
from blueprints.core.extensions import db

from . import factories as f
from .conftest import FROZEN_NOW


class FormReader(HTMLParser):
    """The fields a browser would send for the form posting to ``action``."""

    def __init__(self, action: str):
        super().__init__(convert_charrefs=True)
        self.action, self.inside, self.fields = action, False, []
        self._select = self._textarea = None
        self._select_first = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("action", "").split("?")[0] == self.action
        if not self.inside:
            return
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button", "reset"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((a["name"], a.get("value", "on")))
            else:
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._select_first, self._selected = a.get("name"), None, False
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self.fields.append((self._select, value))
                self._selected = True
        elif tag == "textarea":
            self._textarea, self._text = a.get("name"), ""

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            if not self._selected and self._select_first is not None:
                self.fields.append((self._select, self._select_first))  # as a browser sends it
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append((self._textarea, self._text.removeprefix("\r\n").removeprefix("\n")))  # as a browser does
            self._textarea = None


def submitted_fields(html: str, action: str) -> list[tuple[str, str]]:
    reader = FormReader(action)
    reader.feed(html)
    assert reader.fields, f"no form posting to {action} on the page"
    return reader.fields


def stored(row) -> dict:
    """The row's stored columns, read again from the database (timestamps aside)."""
    table = type(row).__table__
    values = db.session.execute(sa.select(table).where(table.c.id == row.id)).mappings().one()
    return {k: v for k, v in values.items() if k not in ("updated_at", "created_at")}


def links(model_name: str, row) -> dict:
    """Association rows that an edit form also saves (hosts of a station, stations of a package)."""
    if model_name == "station":
        return {"hosts": sorted(h.id for h in db.session.get(Station, row.id).hosts)}
    if model_name == "package":
        return {"stations": sorted(s.id for s in db.session.get(Package, row.id).stations)}
    if model_name in ("account", "host_account"):
        return {"stations": sorted(s.id for s in db.session.get(User, row.id).stations)}
    return {}


@pytest.fixture
def world(frozen_now):
    station = f.create_station(name="莘庄党群服务站", address="莘庄镇莘松路 1 号", subdistrict="莘庄镇",
                               phone="021-64123456", speciality="红色寻访", description="两层的阵地",
                               requires_approval=True, booking_cutoff_hours=36, cancel_deadline_hours=48)
    other = f.create_station(name="七宝党群服务站")
    campaign = f.create_campaign(name="进博五彩先锋")
    package = f.create_package(category=Category.PRACTICE, title="红色寻访", summary="沿线寻访",
                               description="三个点位", duration_minutes=150, min_group_size=8,
                               max_group_size=35, campaign=campaign, stations=[station, other])
    host = f.create_host(stations=[station, other], phone="13912345678")
    parent = f.create_organisation(name="闵行区机关党委", kind=OrganisationKind.PARTY_COMMITTEE)
    organisation = f.create_organisation(name="机关第一党支部", parent=parent, subdistrict="莘庄镇",
                                         member_count=23)
    secretary = f.create_secretary(organisation=organisation, phone="13800001111")
    quota = Quota(organisation=organisation, category=Category.THEORY, period=QuotaPeriod.QUARTER, max_bookings=3)
    db.session.add(quota)
    slot = f.create_slot(package=package, station=station, capacity=30, max_groups=3, note="请提前 10 分钟到",
                         starts_at=FROZEN_NOW + timedelta(days=6, hours=1))
    db.session.commit()
    return {"station": station, "campaign": campaign, "package": package, "quota": quota,
            "organisation": organisation, "account": secretary, "host_account": host, "slot": slot,
            "host": host, "admin": f.create_admin()}


# (name, who, page with the form, the form's action, the row it saves)
FORMS = [
    ("station", "admin", "/admin/stations/{station}", "/admin/stations/{station}", "station"),
    ("campaign", "admin", "/admin/campaigns/{campaign}", "/admin/campaigns/{campaign}", "campaign"),
    ("package", "admin", "/admin/packages/{package}", "/admin/packages/{package}", "package"),
    ("quota", "admin", "/admin/quotas/{quota}", "/admin/quotas/{quota}", "quota"),
    ("organisation", "admin", "/admin/organisations/{organisation}/edit", "/admin/organisations/{organisation}/edit",
     "organisation"),
    ("account", "admin", "/admin/accounts/{account}/edit", "/admin/accounts/{account}/edit", "account"),
    ("host account", "admin", "/admin/accounts/{host_account}/edit", "/admin/accounts/{host_account}/edit",
     "host_account"),
    ("slot", "host", "/host/slots/{slot}", "/host/slots/{slot}/edit", "slot"),
]


@pytest.mark.parametrize("name,who,page,action,row_name", FORMS, ids=[form[0] for form in FORMS])
def test_an_edit_form_saved_unchanged_keeps_every_value(client, login, world, name, who, page, action, row_name):
    ids = {key: value.id for key, value in world.items()}
    row = world[row_name]
    before, linked = stored(row), links(row_name, row)
    login(world[who])
    html = client.get(page.format(**ids)).get_data(as_text=True)
    fields = submitted_fields(html, action.format(**ids))
    response = client.post(action.format(**ids), data=MultiDict(fields))
    assert response.status_code in (302, 303), (name, fields, response.get_data(as_text=True)[:3000])
    assert stored(row) == before
    assert links(row_name, row) == linked


def test_the_reader_sends_the_selected_option_and_checked_boxes_only():
    html = """<form action="/x" method="post"><input name="a" value="1"><input type="checkbox" name="b" value="2">
    <input type="checkbox" name="c" value="3" checked><select name="d"><option value="p">P</option>
    <option value="q" selected>Q</option></select><select name="e"><option value="">—</option></select>
    <textarea name="t">
文本</textarea><button type="submit">保存</button></form>"""
    assert submitted_fields(html, "/x") == [("a", "1"), ("c", "3"), ("d", "q"), ("e", ""), ("t", "文本")]
