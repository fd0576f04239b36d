"""Browser: an administrator imports organisations (errors first, then preview → confirm with
secretary invitations), with and without JavaScript; screenshots of the directory pages at
desktop and phone width go to test-artifacts/directory/."""
from pathlib import Path

import pytest
import sqlalchemy as sa

from blueprints.accounts.models import Organisation, OrganisationKind, User
from blueprints.core.extensions import db

from . import factories as f
from .conftest import browser_login
from .test_directory_import import GOOD_ROWS, csv_bytes

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "directory"


def _upload(page, name, data):
    page.get_by_label("表格文件（CSV 或 XLSX）").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": data})
    page.get_by_role("button", name="上传并预览").click()
    page.wait_for_load_state()


def test_import_preview_then_confirm_with_invitations(live_server, page_js_and_nojs, tmp_path):
    page = page_js_and_nojs
    f.create_admin(username="district-admin")
    f.create_organisation(name="新虹街道机关第二党支部", member_count=5)
    browser_login(page, live_server.url, "district-admin", f.PASSWORD)
    page.goto(live_server.url + "/admin/organisations")
    page.get_by_role("link", name="从表格导入").click()
    page.wait_for_url("**/admin/organisations/import")

    bad = csv_bytes(GOOD_ROWS + [["坏行", "党小组", "", "", "x", "", ""]], encoding="gb18030")
    _upload(page, "组织.csv", bad)
    report = page.locator(".import-report")
    assert "未导入任何数据" in report.inner_text()
    assert "第 7 行「类型」" in report.inner_text() and "第 7 行「党员人数」" in report.inner_text()
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Organisation.id))) == 1

    _upload(page, "组织.csv", csv_bytes(GOOD_ROWS, encoding="gb18030"))
    assert "核对导入内容" in page.locator("h1").inner_text()
    assert page.locator("#preview-creates tbody tr").count() == 4
    assert "<del>5</del>" in page.locator("#preview-updates").inner_html()
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Organisation.id))) == 1  # nothing saved yet
    page.get_by_label("为尚无账号的书记创建账号").check()
    page.get_by_role("button", name="导入 5 个组织").click()
    page.wait_for_load_state()

    assert "导入完成" in page.locator("h1").inner_text()
    assert page.locator("#invitations tbody tr").count() == 4
    download = page.get_by_role("link", name="下载名单（CSV）")
    assert download.get_attribute("href").startswith("data:text/csv")
    db.session.rollback()
    committee = db.session.scalar(sa.select(Organisation).where(Organisation.name == "新虹街道党工委"))
    assert committee.kind is OrganisationKind.PARTY_COMMITTEE
    assert db.session.scalar(sa.select(sa.func.count(User.id)).where(User.must_change_password)) == 4


def test_screenshots_of_the_directory_pages(live_server, browser):
    admin = f.create_admin(username="district-admin", display_name="区委组织部")
    committee = f.create_organisation(name="新虹街道党工委", kind=OrganisationKind.PARTY_COMMITTEE,
                                      subdistrict="新虹街道", member_count=120, secretary_name="张明",
                                      secretary_phone="021-64881234")
    for n in range(1, 8):
        org = f.create_organisation(name=f"新虹街道机关第{n}党支部", parent=committee, member_count=10 + n,
                                    secretary_name="王芳", secretary_phone=f"1390000{n:04d}")
        if n % 2:
            f.create_secretary(organisation=org, username=f"1390000{n:04d}", display_name="王芳")
    f.create_host(username="host-qibao", display_name="李站长", stations=[f.create_station(name="七宝老街党群服务站")])
    target = f.create_secretary(username="13900009999", display_name="赵丽")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in {"desktop": (1280, 900), "phone": (390, 844)}.items():
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        browser_login(page, live_server.url, admin.username, f.PASSWORD)
        for name, path in [("organisations", "/admin/organisations"), ("organisation_edit", f"/admin/organisations/{committee.id}/edit"),
                           ("import", "/admin/organisations/import"), ("accounts", "/admin/accounts"),
                           ("account_edit", f"/admin/accounts/{target.id}/edit")]:
            page.goto(live_server.url + path)
            page.screenshot(path=str(ARTIFACTS / f"{name}_{size}.png"), full_page=True)
            page.screenshot(path=str(ARTIFACTS / f"{name}_{size}_top.png"))
        page.goto(live_server.url + "/admin/organisations/import")
        _upload(page, "组织.csv", csv_bytes(GOOD_ROWS + [["坏行", "党小组", "", "", "x", "", "电话"]]))
        page.screenshot(path=str(ARTIFACTS / f"import_errors_{size}.png"), full_page=True)
        _upload(page, "组织.csv", csv_bytes(GOOD_ROWS))
        page.screenshot(path=str(ARTIFACTS / f"import_preview_{size}.png"), full_page=True)
        page.screenshot(path=str(ARTIFACTS / f"import_preview_{size}_top.png"))
        if size == "desktop":
            page.get_by_label("为尚无账号的书记创建账号").check()
            page.get_by_role("button", name="导入").first.click()
            page.wait_for_load_state()
            page.screenshot(path=str(ARTIFACTS / f"import_done_{size}.png"), full_page=True)
        page.goto(live_server.url + f"/admin/accounts/{target.id}/edit")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="重置密码").click()
        page.wait_for_load_state()
        page.screenshot(path=str(ARTIFACTS / f"password_issued_{size}.png"), full_page=True)
        context.close()
    assert (ARTIFACTS / "organisations_phone.png").exists()
