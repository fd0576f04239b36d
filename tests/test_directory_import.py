"""Organisation import (admins): CSV in UTF-8 / GB18030 and XLSX, preview then confirm, errors named
by row and column, nothing imported on any error, invitations of secretaries."""
import csv
import io
import re
from html import unescape

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from blueprints.accounts.models import Organisation, OrganisationKind, Role, User
from blueprints.core.extensions import db

from . import factories as f

HEADER = ["名称", "类型", "上级组织", "街镇", "党员人数", "书记姓名", "书记电话"]
GOOD_ROWS = [
    # the branches come before their committee: parents are found in the whole file
    ["新虹街道机关第一党支部", "党支部", "新虹街道党工委", "新虹街道", "23", "王芳", "13900001111"],
    ["新虹街道机关第二党支部", "党支部", "新虹街道党工委", "新虹街道", "18", "李强", "13900002222"],
    ["新虹街道党工委", "党委", "", "新虹街道", "120", "张明", "021-64881234"],
    ["虹桥商务区联合党总支", "党总支", "新虹街道党工委", "新虹街道", "45", "", ""],
    ["上海虹桥品汇有限公司", "区域单位", "", "新虹街道", "", "赵丽", "13900003333"],
]


def csv_bytes(rows, header=HEADER, encoding="utf-8-sig", delimiter=","):
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows, header=HEADER):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def upload(client, data, filename="组织.csv", **extra):
    return client.post("/admin/organisations/import", data={"file": (io.BytesIO(data), filename), **extra},
                       content_type="multipart/form-data")


def signed_rows(html):
    return unescape(re.search(r'name="rows"[^>]*value="([^"]+)"', html).group(1))


def confirm(client, html, invite=False):
    data = {"rows": signed_rows(html)}
    if invite:
        data["invite_secretaries"] = "y"
    return client.post("/admin/organisations/import/confirm", data=data)


def org_count():
    return db.session.scalar(select(func.count(Organisation.id)))


@pytest.fixture
def admin(login):
    return login(f.create_admin())


def test_import_good_utf8_csv_previews_then_creates_with_parents_from_the_same_file(client, admin):
    response = upload(client, csv_bytes(GOOD_ROWS))
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "确认导入" in html or "导入 5 个组织" in html
    assert "新虹街道机关第一党支部" in html and 'id="preview-creates"' in html
    assert org_count() == 0  # the preview saves nothing

    done = confirm(client, html)
    assert done.status_code == 200
    assert "导入完成" in done.get_data(as_text=True)
    orgs = {o.name: o for o in db.session.scalars(select(Organisation))}
    assert len(orgs) == 5
    branch = orgs["新虹街道机关第一党支部"]
    assert branch.kind is OrganisationKind.BRANCH
    assert branch.parent.name == "新虹街道党工委"
    assert branch.member_count == 23 and branch.secretary_phone == "13900001111"
    assert orgs["上海虹桥品汇有限公司"].member_count == 0
    assert orgs["上海虹桥品汇有限公司"].parent is None
    assert orgs["新虹街道党工委"].secretary_phone == "021-64881234"


def test_import_updates_known_organisations_and_shows_what_changes(client, admin):
    committee = f.create_organisation(name="新虹街道党工委", kind=OrganisationKind.PARTY_COMMITTEE)
    f.create_organisation(name="新虹街道机关第一党支部", member_count=10, parent=committee, secretary_phone="13900001111")
    html = upload(client, csv_bytes(GOOD_ROWS[:1])).get_data(as_text=True)
    assert 'id="preview-updates"' in html
    assert "党员人数" in html and "<del>10</del>" in html and "<ins>23</ins>" in html
    confirm(client, html)
    branch = db.session.scalar(select(Organisation).where(Organisation.name == "新虹街道机关第一党支部"))
    assert branch.member_count == 23 and branch.secretary_name == "王芳"
    assert org_count() == 2


def test_import_without_optional_columns_keeps_the_stored_values(client, admin):
    f.create_organisation(name="七宝镇党委", kind=OrganisationKind.PARTY_COMMITTEE, member_count=300,
                          secretary_name="陈书记", subdistrict="七宝镇")
    html = upload(client, csv_bytes([["七宝镇党委", "党委"], ["七宝镇第一党支部", "党支部"]], header=["名称", "类型"])).get_data(as_text=True)
    confirm(client, html)
    committee = db.session.scalar(select(Organisation).where(Organisation.name == "七宝镇党委"))
    assert committee.member_count == 300 and committee.secretary_name == "陈书记" and committee.subdistrict == "七宝镇"
    assert org_count() == 2


def test_import_good_xlsx_with_numbers_typed_as_numbers(client, admin):
    rows = [["松江站党委", "党委", None, "岳阳街道", 80, "周红", 13900004444],
            ["松江站志愿服务党支部", "党支部", "松江站党委", "岳阳街道", 12.0, "吴军", "13900005555"]]
    response = upload(client, xlsx_bytes(rows), filename="organisations.xlsx")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    confirm(client, html)
    orgs = {o.name: o for o in db.session.scalars(select(Organisation))}
    assert orgs["松江站党委"].secretary_phone == "13900004444"
    assert orgs["松江站志愿服务党支部"].member_count == 12
    assert orgs["松江站志愿服务党支部"].parent.name == "松江站党委"


def test_import_gb18030_csv_is_decoded(client, admin):
    data = csv_bytes(GOOD_ROWS, encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    html = upload(client, data).get_data(as_text=True)
    assert "新虹街道机关第一党支部" in html
    confirm(client, html)
    assert db.session.scalar(select(Organisation.secretary_name).where(Organisation.name == "新虹街道党工委")) == "张明"


def test_import_accepts_english_headers_and_kinds_and_tabs(client, admin):
    header = ["name", "kind", "parent", "subdistrict", "member count", "secretary name", "secretary phone"]
    rows = [["Hongqiao committee", "committee", "", "Xinhong", "5", "Wang", "13900000001"],
            ["Hongqiao branch", "Party branch", "Hongqiao committee", "Xinhong", "3", "Li", "13900000002"]]
    html = upload(client, csv_bytes(rows, header=header, encoding="utf-8", delimiter="\t")).get_data(as_text=True)
    confirm(client, html)
    branch = db.session.scalar(select(Organisation).where(Organisation.name == "Hongqiao branch"))
    assert branch.kind is OrganisationKind.BRANCH and branch.parent.name == "Hongqiao committee"


def test_import_file_with_errors_names_every_row_and_column_and_imports_nothing(client, admin):
    f.create_organisation(name="已有的党支部")
    rows = [
        ["好的党委", "党委", "", "新虹街道", "10", "王", "13900000000"],  # row 2: fine
        ["", "党支部", "好的党委", "", "1", "", ""],  # row 3: no name
        ["坏类型", "党小组", "", "", "1", "", ""],  # row 4: unknown kind
        ["坏人数", "党支部", "", "", "二十", "", ""],  # row 5: not a number
        ["坏电话", "党支部", "", "", "1", "", "call me"],  # row 6: not a phone
        ["没上级", "党支部", "不存在的党委", "", "1", "", ""],  # row 7: unknown parent
        ["好的党委", "党委", "", "", "1", "", ""],  # row 8: duplicate of row 2
        ["支部下面", "党支部", "已有的党支部", "", "1", "", ""],  # row 9: a branch as parent
        ["上标人数", "党支部", "", "", "²", "", ""],  # row 10: str.isdigit() says yes, int() says no (was a 500)
    ]
    response = upload(client, csv_bytes(rows))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "未导入任何数据" in html
    for expected in [
        "第 3 行「名称」", "第 4 行「类型」", "“党小组”", "第 5 行「党员人数」", "“二十”",
        "第 6 行「书记电话」", "第 7 行「上级组织」", "不存在的党委", "第 8 行「名称」", "第 2 行",
        "第 9 行「上级组织」", "第 10 行「党员人数」",
    ]:
        assert expected in html, expected
    assert "第 2 行「" not in html
    assert org_count() == 1  # only the one made above


def test_import_admin_member_counts_typed_with_full_width_digits_are_read_as_numbers(client, admin):
    response = upload(client, csv_bytes([["全角党支部", "党支部", "", "", "１２人", "", ""]]))
    assert response.status_code == 200
    confirm(client, response.get_data(as_text=True))
    assert db.session.scalar(select(Organisation.member_count).where(Organisation.name == "全角党支部")) == 12


def test_import_refuses_parents_that_go_round_in_a_circle(client, admin):
    rows = [["甲党委", "党委", "乙党委", "", "1", "", ""], ["乙党委", "党委", "甲党委", "", "1", "", ""]]
    response = upload(client, csv_bytes(rows))
    assert response.status_code == 422
    assert "不能形成循环" in response.get_data(as_text=True)
    assert org_count() == 0


def test_import_refuses_a_file_without_the_name_column(client, admin):
    response = upload(client, csv_bytes([["x", "党委"]], header=["组织", "类型"]))
    assert response.status_code == 422
    assert "缺少「名称」列" in response.get_data(as_text=True)


def test_confirm_rechecks_the_database_and_imports_nothing_when_it_changed(client, admin):
    committee = f.create_organisation(name="新虹街道党工委", kind=OrganisationKind.PARTY_COMMITTEE)
    html = upload(client, csv_bytes([GOOD_ROWS[0], ["新组织", "党支部", "", "", "1", "", ""]])).get_data(as_text=True)
    committee.kind = OrganisationKind.BRANCH  # someone edits the parent into a branch meanwhile
    db.session.commit()
    response = confirm(client, html)
    assert response.status_code == 422
    assert "是党支部" in response.get_data(as_text=True)
    assert org_count() == 1


def test_confirm_with_a_forged_or_foreign_preview_is_refused(app, client, admin):
    html = upload(client, csv_bytes(GOOD_ROWS)).get_data(as_text=True)
    token = signed_rows(html)
    response = client.post("/admin/organisations/import/confirm", data={"rows": token[:-3] + "abc"})
    assert response.status_code == 422
    assert "请重新上传" in response.get_data(as_text=True)
    other = app.test_client()
    other_admin = f.create_admin()
    other.post("/login", data={"username": other_admin.username, "password": f.PASSWORD})
    assert other.post("/admin/organisations/import/confirm", data={"rows": token}).status_code == 422
    assert org_count() == 0


def test_oversize_upload_gets_a_clear_message(app, client, admin, monkeypatch):
    monkeypatch.setitem(app.config, "DIRECTORY_IMPORT_MAX_BYTES", 1000)
    response = upload(client, csv_bytes(GOOD_ROWS * 20))
    assert response.status_code == 413
    assert "文件超过" in response.get_data(as_text=True)
    assert org_count() == 0


def test_upload_beyond_the_application_limit_shows_the_import_page(app, client, admin, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 2000)
    response = upload(client, b"x" * 5000)
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "文件超过" in html and 'enctype="multipart/form-data"' in html


@pytest.mark.parametrize("filename,data,message", [
    ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "只能导入 CSV 或 XLSX 文件"),
    ("report.pdf", b"%PDF-1.4 hello", "只能导入 CSV 或 XLSX 文件"),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 50, ".xls"),
    ("fake.xlsx", b"PK\x03\x04 not really a zip", "不是可读取的 XLSX"),
    ("binary.csv", b"\x00\x01\x02\xff\xfe\x00", "编码"),
    ("empty.csv", b"", "文件是空的"),
    ("header-only.csv", "名称,类型\r\n".encode(), "没有组织"),
])
def test_non_spreadsheet_uploads_are_refused_with_a_message(client, admin, filename, data, message):
    response = upload(client, data, filename=filename)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert org_count() == 0


def test_upload_without_a_file_asks_for_one(client, admin):
    response = client.post("/admin/organisations/import", data={}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "请选择" in response.get_data(as_text=True)


def test_import_can_invite_secretaries_with_one_time_passwords(client, admin):
    existing = f.create_organisation(name="新虹街道机关第二党支部", secretary_phone="13900002222")
    f.create_secretary(organisation=existing, username="already")
    f.create_user(Role.HOST, username="13900001111", stations=[f.create_station()])  # username taken
    html = upload(client, csv_bytes(GOOD_ROWS)).get_data(as_text=True)
    # 第一党支部, 党工委 and 品汇 have phones and no account; 第二党支部 has one; 党总支 has no phone
    assert re.search(r"<strong>3</strong><span>位尚无账号的书记", html)
    done = confirm(client, html, invite=True)
    page = done.get_data(as_text=True)
    assert done.headers["Cache-Control"] == "no-store"
    users = {u.organisation.name: u for u in db.session.scalars(select(User).where(User.username != "already", User.role == Role.SECRETARY))}
    assert set(users) == {"新虹街道机关第一党支部", "新虹街道党工委", "上海虹桥品汇有限公司"}
    first = users["新虹街道机关第一党支部"]
    assert first.username == "13900001111-2"  # the plain number was taken
    assert users["新虹街道党工委"].username == "02164881234"
    assert first.must_change_password and first.display_name == "王芳"
    password = re.search(r"<td><code>13900001111-2</code></td><td><code class=\"one-time\">([^<]+)</code>", page).group(1)
    assert first.check_password(password)
    assert "data:text/csv;charset=utf-8;base64," in page


def test_import_without_invitation_creates_no_accounts(client, admin):
    html = upload(client, csv_bytes(GOOD_ROWS)).get_data(as_text=True)
    confirm(client, html)
    assert db.session.scalar(select(func.count(User.id))) == 1  # the admin


def test_import_pages_are_for_admins_only_secretary_host_and_anonymous_refused(app, client, login):
    anonymous = app.test_client()
    assert anonymous.get("/admin/organisations/import").status_code == 302
    assert anonymous.post("/admin/organisations/import/confirm", data={"rows": "x"}).status_code == 302
    for user in (f.create_secretary(), f.create_host()):
        other = app.test_client()
        other.post("/login", data={"username": user.username, "password": f.PASSWORD})
        assert other.get("/admin/organisations/import").status_code == 403
        response = other.post("/admin/organisations/import", data={"file": (io.BytesIO(csv_bytes(GOOD_ROWS)), "a.csv")},
                              content_type="multipart/form-data")
        assert response.status_code == 403
    assert org_count() == 1  # the secretary factory made one


def test_import_preview_query_count_is_bounded(client, admin, count_queries):
    rows = [[f"第{n}党支部", "党支部", "大党委", "新虹街道", str(n), "王", f"139{n:08d}"] for n in range(200)]
    rows.append(["大党委", "党委", "", "新虹街道", "999", "", ""])
    f.create_organisation(name="第1党支部")
    with count_queries() as counter:
        html = upload(client, csv_bytes(rows)).get_data(as_text=True)
    assert "第199党支部" in html
    assert counter.count <= 12, counter.statements


def test_preview_too_big_for_the_form_field_is_refused_at_upload(app, client, admin, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_FORM_MEMORY_SIZE", 10_500)
    rows = [[f"第{n}个很长很长的党支部名称{n * 7919}", "党支部", "", "", str(n), "", ""] for n in range(400)]
    response = upload(client, csv_bytes(rows))
    assert response.status_code == 413
    assert "请拆分成几个文件" in response.get_data(as_text=True)
