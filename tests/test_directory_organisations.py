"""Organisation list, create/edit and export (admins only), with the CSRF-protected import flow."""
import io
import re
from html import unescape

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app import create_app
from blueprints.accounts.models import Organisation, OrganisationKind
from blueprints.core.extensions import db

from . import factories as f
from .conftest import app_config
from .test_directory_import import GOOD_ROWS, csv_bytes, upload


@pytest.fixture
def admin(login):
    return login(f.create_admin())


def _tree():
    committee = f.create_organisation(name="新虹街道党工委", kind=OrganisationKind.PARTY_COMMITTEE, subdistrict="新虹街道")
    branches = [f.create_organisation(name=f"新虹第{n}党支部", parent=committee, subdistrict="新虹街道") for n in range(3)]
    other = f.create_organisation(name="七宝镇党委", kind=OrganisationKind.PARTY_COMMITTEE, subdistrict="七宝镇",
                                  secretary_name="陈七宝", secretary_phone="13911112222")
    unit = f.create_organisation(name="=HYPERLINK(1)公司", kind=OrganisationKind.REGIONAL_UNIT, subdistrict="七宝镇",
                                 parent=other, member_count=0, secretary_phone="021-64000000")
    gone = f.create_organisation(name="已撤销党支部", active=False)
    return committee, branches, other, unit, gone


def _names(html):
    return re.findall(r'<th scope="row"><a href="/admin/organisations/\d+/edit">([^<]+)</a>', html)


def test_admin_list_shows_active_organisations_with_parent_and_accounts(client, admin):
    committee, branches, *_ = _tree()
    f.create_secretary(organisation=branches[0])
    html = client.get("/admin/organisations").get_data(as_text=True)
    names = [unescape(n) for n in _names(html)]
    assert "新虹街道党工委" in names and "已撤销党支部" not in names
    assert "共 6 个组织" in html
    assert 'href="/admin/organisations?parent=%d&amp;status=all"' % committee.id in html or \
        'href="/admin/organisations?status=all&amp;parent=%d"' % committee.id in html


@pytest.mark.parametrize("query,expected", [
    ({"q": "七宝"}, {"七宝镇党委"}),
    ({"q": "陈七宝"}, {"七宝镇党委"}),
    ({"kind": "regional_unit"}, {"=HYPERLINK(1)公司"}),
    ({"subdistrict": "七宝镇"}, {"七宝镇党委", "=HYPERLINK(1)公司"}),
    ({"status": "inactive"}, {"已撤销党支部"}),
    ({"q": "%"}, set()),
])
def test_admin_list_filters(client, admin, query, expected):
    _tree()
    html = client.get("/admin/organisations", query_string=query).get_data(as_text=True)
    assert {unescape(n) for n in _names(html)} == expected


def test_admin_list_filter_by_parent(client, admin):
    committee, branches, *_ = _tree()
    html = client.get("/admin/organisations", query_string={"parent": committee.id}).get_data(as_text=True)
    assert set(_names(html)) == {b.name for b in branches}
    assert f'<option selected value="{committee.id}">新虹街道党工委</option>' in html


def test_admin_list_htmx_fragment_is_only_the_results(client, admin, htmx_headers):
    _tree()
    response = client.get("/admin/organisations?q=新虹", headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and html.lstrip().startswith('<div id="results"')
    assert "新虹第0党支部" in html
    boosted = client.get("/admin/organisations", headers={**htmx_headers, "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True)


def test_admin_list_is_paginated_with_bounded_queries(app, client, admin, count_queries, monkeypatch):
    monkeypatch.setitem(app.config, "PAGE_SIZE", 10)
    parent = f.create_organisation(name="大党委", kind=OrganisationKind.PARTY_COMMITTEE)
    for n in range(25):
        org = f.create_organisation(name=f"分页党支部{n:02d}", parent=parent)
        f.create_secretary(organisation=org)
    with count_queries() as counter:
        html = client.get("/admin/organisations?page=2").get_data(as_text=True)
    assert len(_names(html)) == 10 and "第 2 / 3 页" in html
    assert counter.count <= 8, counter.statements
    with count_queries() as counter:
        client.get("/admin/organisations?page=3")
    assert counter.count <= 8


def test_admin_creates_an_organisation(client, admin):
    committee = f.create_organisation(name="新虹街道党工委", kind=OrganisationKind.PARTY_COMMITTEE)
    response = client.post("/admin/organisations/new", data={
        "name": "新虹新党支部", "kind": "branch", "parent": "新虹街道党工委", "subdistrict": "新虹街道",
        "member_count": "9", "secretary_name": "钱", "secretary_phone": "13900009999", "active": "y"})
    assert response.status_code == 302
    org = db.session.scalar(select(Organisation).where(Organisation.name == "新虹新党支部"))
    assert org.parent_id == committee.id and org.member_count == 9 and org.active


@pytest.mark.parametrize("data,message", [
    ({"name": "", "kind": "branch", "member_count": "1"}, "必填"),
    ({"name": "重名党支部", "kind": "branch", "member_count": "1"}, "已有名为“重名党支部”的组织"),
    ({"name": "x", "kind": "branch", "member_count": "1", "parent": "没有这个"}, "没有名为“没有这个”的组织"),
    ({"name": "x", "kind": "branch", "member_count": "1", "parent": "重名党支部"}, "是党支部"),
    ({"name": "x", "kind": "branch", "member_count": "-1"}, "党员人数"),
    ({"name": "x", "kind": "branch", "member_count": "1", "secretary_phone": "abc"}, "请输入电话号码"),
    ({"name": "x", "kind": "nonsense", "member_count": "1"}, "类型"),
])
def test_admin_create_organisation_with_bad_input_changes_nothing(client, admin, data, message):
    f.create_organisation(name="重名党支部")
    response = client.post("/admin/organisations/new", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Organisation.id))) == 1


def test_admin_edits_an_organisation_and_cannot_make_a_circle(client, admin):
    committee, branches, other, *_ = _tree()
    page = client.get(f"/admin/organisations/{other.id}/edit").get_data(as_text=True)
    assert 'value="七宝镇党委"' in page and '<option selected value="committee">' in page
    response = client.post(f"/admin/organisations/{committee.id}/edit", data={
        "name": "新虹街道党工委", "kind": "committee", "parent": "七宝镇党委", "member_count": "100", "active": "y"})
    assert response.status_code == 302
    response = client.post(f"/admin/organisations/{other.id}/edit", data={
        "name": "七宝镇党委", "kind": "committee", "parent": "新虹街道党工委", "member_count": "1", "active": "y"})
    assert response.status_code == 422
    assert "不能形成循环" in response.get_data(as_text=True)
    db.session.refresh(other)
    assert other.parent_id is None


def test_edit_form_htmx_fragment_returns_the_form(client, admin, htmx_headers):
    org = f.create_organisation()
    response = client.post(f"/admin/organisations/{org.id}/edit", data={"name": "", "kind": "branch", "member_count": "1"},
                           headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in html and 'id="organisation-form"' in html


def test_edit_unknown_organisation_is_404(client, admin):
    assert client.get("/admin/organisations/999999/edit").status_code == 404


def test_suggestions_for_the_organisation_fields(client, admin):
    _tree()
    html = client.get("/admin/organisations/suggest?organisation=新虹", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert '<option value="新虹第0党支部">' in html
    parents = client.get("/admin/organisations/suggest?parent=新虹").get_data(as_text=True)
    assert "新虹街道党工委" in parents and "党支部" not in parents


def test_export_round_trip_xlsx_and_csv(client, admin):
    _tree()
    before = {o.name: (o.kind, o.parent.name if o.parent else None, o.subdistrict, o.member_count, o.secretary_name,
                       o.secretary_phone) for o in db.session.scalars(select(Organisation).where(Organisation.active))}

    xlsx = client.get("/admin/organisations/export.xlsx")
    assert xlsx.status_code == 200 and xlsx.mimetype.endswith("spreadsheetml.sheet")
    assert "attachment" in xlsx.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == ["名称", "类型", "上级组织", "街镇", "党员人数", "书记姓名", "书记电话"]
    assert ("=HYPERLINK(1)公司", "区域单位", "七宝镇党委", "七宝镇", 0, "王书记", "021-64000000") in rows
    assert sheet["A2"].data_type == "s"  # never a formula

    csv_response = client.get("/admin/organisations/export.csv")
    assert csv_response.data.startswith(b"\xef\xbb\xbf")
    assert "'=HYPERLINK(1)公司" in csv_response.data.decode("utf-8-sig")

    for data, filename in ((xlsx.data, "back.xlsx"), (csv_response.data, "back.csv")):
        db.session.execute(db.update(Organisation).values(parent_id=None))
        db.session.execute(db.delete(Organisation).where(Organisation.active))
        db.session.commit()
        html = upload(client, data, filename=filename).get_data(as_text=True)
        assert "导入 6 个组织" in html, filename
        token = unescape(re.search(r'name="rows"[^>]*value="([^"]+)"', html).group(1))
        client.post("/admin/organisations/import/confirm", data={"rows": token})
        after = {o.name: (o.kind, o.parent.name if o.parent else None, o.subdistrict, o.member_count, o.secretary_name,
                          o.secretary_phone) for o in db.session.scalars(select(Organisation).where(Organisation.active))}
        assert after == before, filename
        # and importing the export over itself changes nothing
        again = upload(client, data, filename=filename).get_data(as_text=True)
        assert re.search(r"<strong>0</strong><span>个组织有修改", again)


def test_export_respects_the_filters(client, admin):
    _tree()
    response = client.get("/admin/organisations/export.csv?subdistrict=七宝镇")
    lines = response.data.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == 3


@pytest.mark.parametrize("path", [
    "/admin/organisations", "/admin/organisations/new", "/admin/organisations/suggest?q=x",
    "/admin/organisations/export.xlsx", "/admin/organisations/export.csv",
])
def test_organisation_pages_refuse_secretary_and_host_and_send_anonymous_to_login(app, path):
    anonymous = app.test_client()
    response = anonymous.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    for user in (f.create_secretary(), f.create_host()):
        other = app.test_client()
        other.post("/login", data={"username": user.username, "password": f.PASSWORD})
        assert other.get(path).status_code == 403


def test_secretary_cannot_edit_an_organisation_even_their_own(app, client, login):
    secretary = login(f.create_secretary())
    org = secretary.organisation
    response = client.post(f"/admin/organisations/{org.id}/edit", data={"name": "改名", "kind": "branch", "member_count": "1"})
    assert response.status_code == 403
    db.session.refresh(org)
    assert org.name != "改名"


def test_import_flow_with_csrf_switched_on(tmp_path):
    app = create_app(app_config(f"sqlite:///{tmp_path / 'csrf.sqlite3'}", WTF_CSRF_ENABLED=True,
                                DIRECTORY_IMPORT_MAX_BYTES=50_000, MAX_CONTENT_LENGTH=100_000))
    with app.app_context():  # requests below run in app contexts of their own (their own g)
        db.create_all()
        username = f.create_admin(username="csrf-admin").username
    client = app.test_client()

    def token_of(html):
        return re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)

    token = token_of(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": username, "password": f.PASSWORD, "csrf_token": token}).status_code == 302
    token = token_of(client.get("/admin/organisations/import").get_data(as_text=True))
    refused = client.post("/admin/organisations/import", data={"file": (io.BytesIO(csv_bytes(GOOD_ROWS)), "a.csv")},
                          content_type="multipart/form-data")
    assert refused.status_code == 400
    too_big = client.post("/admin/organisations/import", data={
        "csrf_token": token, "file": (io.BytesIO(b"x" * 200_000), "a.csv")}, content_type="multipart/form-data")
    assert too_big.status_code == 413 and "文件超过" in too_big.get_data(as_text=True)
    preview = client.post("/admin/organisations/import", data={
        "csrf_token": token, "file": (io.BytesIO(csv_bytes(GOOD_ROWS)), "a.csv")}, content_type="multipart/form-data")
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200, html
    rows = unescape(re.search(r'name="rows"[^>]*value="([^"]+)"', html).group(1))
    assert client.post("/admin/organisations/import/confirm", data={"rows": rows}).status_code == 400
    done = client.post("/admin/organisations/import/confirm", data={"rows": rows, "csrf_token": token_of(html)})
    assert done.status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count(Organisation.id))) == 5
        db.engine.dispose()
