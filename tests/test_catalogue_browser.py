"""Browser: an administrator creates a station and a package, then deactivates the package from
the list (htmx swaps just the row) — with JavaScript, and the same forms without it."""
import pytest
import sqlalchemy as sa

from blueprints.catalog.models import Package, Station
from blueprints.core.extensions import db

from . import factories as f
from .conftest import browser_login

pytestmark = pytest.mark.browser


def test_admin_creates_station_and_package_and_toggles_active(live_server, page_js_and_nojs):
    page = page_js_and_nojs
    admin = f.create_admin()
    host = f.create_host(display_name="李站长")
    browser_login(page, live_server.url, admin.username, f.PASSWORD)

    page.goto(live_server.url + "/admin/")
    page.get_by_role("link", name="站点").first.click()
    page.get_by_role("link", name="新建站点").click()
    page.get_by_label("名称", exact=True).fill("虹桥品汇党群服务站")
    page.get_by_label("街镇").fill("新虹街道")
    page.get_by_label("预约需站点管理员审核").check()
    page.get_by_label("预约截止（开始前几小时）").fill("12")
    page.get_by_label("李站长").check()
    page.get_by_role("button", name="保存站点").click()
    page.get_by_text("已保存站点“虹桥品汇党群服务站”。").wait_for()
    db.session.rollback()
    station = db.session.scalar(sa.select(Station).where(Station.name == "虹桥品汇党群服务站"))
    assert station.requires_approval and station.booking_cutoff_hours == 12
    assert [h.id for h in station.hosts] == [host.id]

    page.goto(live_server.url + "/admin/packages/new")
    page.get_by_label("类别").select_option("theory")
    page.get_by_label("名称", exact=True).fill("虹桥·理论学习包")
    page.get_by_label("每批最少人数").fill("20")
    page.get_by_label("每批最多人数").fill("10")
    page.get_by_label("虹桥品汇党群服务站").check()
    page.get_by_role("button", name="保存服务包").click()
    page.get_by_text("每批最多人数不能少于最少人数（20 人）").wait_for()
    page.get_by_label("每批最多人数").fill("40")
    page.get_by_role("button", name="保存服务包").click()
    page.get_by_text("已保存服务包“虹桥·理论学习包”。").wait_for()
    db.session.rollback()
    package = db.session.scalar(sa.select(Package).where(Package.title == "虹桥·理论学习包"))
    assert (package.min_group_size, package.max_group_size) == (20, 40)
    assert [s.id for s in package.stations] == [station.id]

    row = page.locator(f"#package-{package.id}")
    row.get_by_role("button", name="停用“虹桥·理论学习包”").click()
    page.locator(f"#package-{package.id}.row-inactive").wait_for()
    assert page.locator(f"#package-{package.id}").get_by_role("button", name="启用“虹桥·理论学习包”").is_visible()
    db.session.rollback()
    assert db.session.get(Package, package.id).active is False
