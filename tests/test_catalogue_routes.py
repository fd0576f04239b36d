"""Catalogue management routes: every page and htmx fragment, admin-only access, validation
messages, deactivate vs delete, quotas, bounded queries on the lists."""
import re

import pytest
import sqlalchemy as sa

from blueprints.accounts.models import Role
from blueprints.quotas.models import Quota, QuotaPeriod
from blueprints.catalog.models import Campaign, Category, Package, Station
from blueprints.core.extensions import db

from . import factories as f

HX = {"HX-Request": "true"}


@pytest.fixture
def admin(login):
    return login(f.create_admin())


def html(response):
    return response.get_data(as_text=True)


def checked(page, name):
    """Values of the ticked checkboxes called ``name``."""
    return {int(m.group(1)) for tag in re.findall(r"<input[^>]*>", page)
            if f'name="{name}"' in tag and " checked" in tag and (m := re.search(r'value="(\d+)"', tag))}


def _catalogue_urls(app):
    """Every URL of the feature (ids filled with 1) with its methods, plus /admin/."""
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("catalogue.") or rule.endpoint == "admin.index":
            path = re.sub(r"<int:\w+>", "1", rule.rule)
            for method in sorted((rule.methods or set()) & {"GET", "POST"}):
                urls.append((method, path))
    return urls


def test_every_catalogue_route_is_listed(app):
    paths = {p for _, p in _catalogue_urls(app)}
    assert {"/admin/", "/admin/stations", "/admin/packages", "/admin/campaigns", "/admin/quotas",
            "/admin/audit", "/admin/stations/1/active", "/admin/packages/1/delete"} <= paths


@pytest.mark.parametrize("role", [Role.SECRETARY, Role.HOST])
def test_secretary_and_host_are_refused_every_catalogue_route_403(app, client, login, role):
    login(f.create_user(role, stations=[f.create_station()] if role is Role.HOST else None))
    station = f.create_station()
    for method, path in _catalogue_urls(app):
        response = client.open(path, method=method, data={"name": "x", "active": "0"})
        assert response.status_code == 403, (method, path)
    db.session.expire_all()
    assert db.session.get(Station, station.id).active is True


def test_anonymous_is_sent_to_login_from_every_catalogue_route(app, client):
    for method, path in _catalogue_urls(app):
        response = client.open(path, method=method)
        assert response.status_code == 302 and "/login" in response.headers["Location"], (method, path)


# -- index ------------------------------------------------------------------------------------------

def test_admin_index_links_every_section_for_admin(client, admin):
    f.create_station()
    page = html(client.get("/admin/"))
    for href in ("/admin/stations", "/admin/campaigns", "/admin/packages", "/admin/quotas", "/admin/audit",
                 "/admin/stats"):
        assert f'href="{href}"' in page
    assert "区级管理" in page and "启用 1 / 共 1" in page
    # The main navigation links the index.
    assert 'href="/admin/"' in page


# -- stations ---------------------------------------------------------------------------------------

def test_admin_station_list_searches_and_paginates_page_and_fragment(client, admin, app):
    for n in range(app.config["PAGE_SIZE"] + 3):
        f.create_station(name=f"站点{n:02d}", subdistrict="七宝镇" if n == 5 else "新虹街道")
    page = html(client.get("/admin/stations"))
    assert "<html" in page and 'rel="next"' in page and "共 23 项" in page
    assert page.count('<tr id="station-') == app.config["PAGE_SIZE"]
    second = html(client.get("/admin/stations?page=2"))
    assert second.count('<tr id="station-') == 3
    fragment = client.get("/admin/stations?q=七宝", headers=HX)
    body = html(fragment)
    assert "<html" not in body and body.count('<tr id="station-') == 1 and "站点05" in body
    assert fragment.headers["Vary"] and "HX-Request" in fragment.headers["Vary"]
    assert 'id="results"' in body


def test_admin_station_list_queries_are_bounded(client, admin, count_queries):
    def list_queries():
        with count_queries() as counter:
            assert client.get("/admin/stations").status_code == 200
        return counter.count

    f.create_host(stations=[f.create_station()])
    few = list_queries()
    for _ in range(12):
        station = f.create_station()
        f.create_host(stations=[station])
        f.create_host(stations=[station])
    assert list_queries() == few


def test_admin_creates_a_station_with_hosts(client, admin):
    host = f.create_host()
    form = html(client.get("/admin/stations/new"))
    for label in ("名称", "地址", "街镇", "电话", "预约需站点管理员审核", "预约截止（开始前几小时）", "取消截止（开始前几小时）",
                  "站点管理员", "启用（各组织可在此预约）"):
        assert label in form
    assert host.display_name in form
    response = client.post("/admin/stations/new", data={
        "name": "虹桥品汇党群服务站", "address": "闵行区申长路", "subdistrict": "新虹街道", "phone": "021-64000000",
        "requires_approval": "y", "booking_cutoff_hours": "12", "cancel_deadline_hours": "24", "active": "y",
        "hosts": [str(host.id)]})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/stations")
    station = db.session.scalar(sa.select(Station).where(Station.name == "虹桥品汇党群服务站"))
    assert station.requires_approval and station.booking_cutoff_hours == 12
    assert [h.id for h in station.hosts] == [host.id]
    assert "已保存站点" in html(client.get("/admin/stations"))


def test_admin_station_form_errors_are_chinese_422_and_change_nothing(client, admin):
    f.create_station(name="已有站点")
    response = client.post("/admin/stations/new", data={
        "name": "已有站点", "booking_cutoff_hours": "-3", "cancel_deadline_hours": "abc"})
    body = html(response)
    assert response.status_code == 422
    assert "已有站点名为“已有站点”" in body
    assert "请填写 0 到 1440 之间的数字" in body
    assert "不是有效的整数" in body
    assert db.session.scalar(sa.select(sa.func.count(Station.id))) == 1
    fragment = client.post("/admin/stations/new", data={"name": ""}, headers=HX)
    assert fragment.status_code == 422
    assert "<html" not in html(fragment) and "请填写站点名称" in html(fragment)


def test_admin_edits_a_station_page_and_fragment(client, admin):
    old_host, new_host = f.create_host(), f.create_host()
    station = f.create_station(name="七宝老街党群服务站")
    station.hosts = [old_host]
    db.session.commit()
    page = html(client.get(f"/admin/stations/{station.id}"))
    assert 'value="七宝老街党群服务站"' in page and checked(page, "hosts") == {old_host.id}
    assert "<html" not in html(client.get(f"/admin/stations/{station.id}", headers=HX))
    response = client.post(f"/admin/stations/{station.id}", data={
        "name": "七宝老街党群服务站", "booking_cutoff_hours": "0", "cancel_deadline_hours": "0",
        "hosts": [str(new_host.id)]})
    assert response.status_code == 302
    station = db.session.get(Station, station.id)
    assert [h.id for h in station.hosts] == [new_host.id]
    assert station.active is False  # the box was not ticked
    assert client.get("/admin/stations/999999").status_code == 404


def test_admin_toggles_station_active_returns_the_row_fragment(client, admin):
    station = f.create_station(name="虹桥火车站党群服务站")
    response = client.post(f"/admin/stations/{station.id}/active", data={"active": "0"}, headers=HX)
    body = html(response)
    assert response.status_code == 200
    assert body.strip().startswith("<tr") and "<html" not in body and "row-inactive" in body
    assert 'name="active" value="1"' in body  # the button now activates
    assert db.session.get(Station, station.id).active is False
    # Without JavaScript: a redirect back to the list it came from, with a message.
    response = client.post(f"/admin/stations/{station.id}/active", data={"active": "1", "next": "/admin/stations?page=1"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/stations?page=1"
    assert db.session.get(Station, station.id).active is True
    # An address outside the administration is not followed.
    response = client.post(f"/admin/stations/{station.id}/active", data={"active": "1", "next": "https://evil.example/"})
    assert response.headers["Location"].endswith("/admin/stations")


def test_admin_toggle_with_bad_value_changes_nothing(client, admin):
    station = f.create_station()
    response = client.post(f"/admin/stations/{station.id}/active", data={"active": "maybe"}, headers=HX)
    assert response.status_code == 422 and "请选择启用或停用" in html(response)
    response = client.post(f"/admin/stations/{station.id}/active", data={"active": "maybe"})
    assert response.status_code == 302
    assert db.session.get(Station, station.id).active is True


def test_admin_cannot_delete_a_station_with_bookings_and_is_offered_deactivation(client, admin):
    slot = f.create_slot()
    f.create_booking(slot=slot)
    station_id = slot.station_id
    page = html(client.get(f"/admin/stations/{station_id}"))
    assert "不能删除" in page and "停用“" in page
    assert f'action="/admin/stations/{station_id}/delete"' not in page
    response = client.post(f"/admin/stations/{station_id}/delete")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/stations/{station_id}")
    assert db.session.get(Station, station_id) is not None
    assert "1 个场次、1 条预约，不能删除" in html(client.get(f"/admin/stations/{station_id}"))


def test_admin_deletes_an_unused_station(client, admin):
    station_id = f.create_station().id
    page = html(client.get(f"/admin/stations/{station_id}"))
    assert f'action="/admin/stations/{station_id}/delete"' in page
    response = client.post(f"/admin/stations/{station_id}/delete")
    assert response.status_code == 302
    assert db.session.get(Station, station_id) is None
    assert client.post(f"/admin/stations/{station_id}/delete").status_code == 404


# -- campaigns --------------------------------------------------------------------------------------

def test_admin_campaign_list_create_edit_toggle(client, admin):
    campaign = f.create_campaign(name="进博五彩先锋")
    f.create_package(campaign_id=campaign.id)
    page = html(client.get("/admin/campaigns"))
    assert "进博五彩先锋" in page and f'href="/admin/packages?campaign={campaign.id}">1<' in page
    assert "<html" not in html(client.get("/admin/campaigns", headers=HX))
    assert "开始日期" in html(client.get("/admin/campaigns/new"))
    response = client.post("/admin/campaigns/new", data={
        "name": "枢纽先锋", "starts_on": "2026-03-01", "ends_on": "2026-02-01"})
    assert response.status_code == 422 and "结束日期早于开始日期" in html(response)
    response = client.post("/admin/campaigns/new", data={
        "name": "枢纽先锋", "starts_on": "2026-03-01", "ends_on": "2026-12-31", "active": "y"})
    assert response.status_code == 302
    assert db.session.scalar(sa.select(sa.func.count(Campaign.id))) == 2
    response = client.post(f"/admin/campaigns/{campaign.id}", data={
        "name": "进博五彩先锋 3.0", "starts_on": "2020-01-01", "ends_on": "2020-12-31", "active": "y"})
    assert response.status_code == 302
    assert db.session.get(Campaign, campaign.id).name == "进博五彩先锋 3.0"
    assert "<html" not in html(client.get(f"/admin/campaigns/{campaign.id}", headers=HX))
    row = html(client.post(f"/admin/campaigns/{campaign.id}/active", data={"active": "0"}, headers=HX))
    assert row.strip().startswith("<tr") and ">1</a>" in row
    assert db.session.get(Campaign, campaign.id).active is False


def test_admin_cannot_delete_a_campaign_with_packages(client, admin):
    campaign = f.create_campaign()
    f.create_package(campaign_id=campaign.id)
    response = client.post(f"/admin/campaigns/{campaign.id}/delete")
    assert response.status_code == 302
    assert db.session.get(Campaign, campaign.id) is not None
    assert "不能删除" in html(client.get(f"/admin/campaigns/{campaign.id}"))
    empty_id = f.create_campaign().id
    assert client.post(f"/admin/campaigns/{empty_id}/delete").status_code == 302
    assert db.session.get(Campaign, empty_id) is None


# -- packages ---------------------------------------------------------------------------------------

def test_admin_package_list_filters_page_and_fragment(client, admin):
    campaign = f.create_campaign()
    f.create_package(title="进博·理论学习包", category=Category.THEORY, campaign_id=campaign.id)
    f.create_package(title="进博·志愿服务包", category=Category.VOLUNTEER)
    f.create_package(title="旧的实践包", category=Category.PRACTICE, active=False)
    page = html(client.get("/admin/packages"))
    assert page.count('<tr id="package-') == 3
    # In menu order: theory study, Party-spirit practice, volunteering.
    assert page.index("进博·理论学习包") < page.index("旧的实践包") < page.index("进博·志愿服务包")
    assert html(client.get("/admin/packages?category=volunteer")).count('<tr id="package-') == 1
    assert "进博·理论学习包" in html(client.get(f"/admin/packages?campaign={campaign.id}"))
    inactive = html(client.get("/admin/packages?status=inactive", headers=HX))
    assert "<html" not in inactive and inactive.count('<tr id="package-') == 1 and "旧的实践包" in inactive
    # A filter value that is not offered is ignored rather than an error.
    assert client.get("/admin/packages?category=nonsense&campaign=x").status_code == 200


def test_admin_package_list_queries_are_bounded(client, admin, count_queries):
    def list_queries():
        with count_queries() as counter:
            assert client.get("/admin/packages").status_code == 200
        return counter.count

    f.create_package(campaign_id=f.create_campaign().id)
    few = list_queries()
    for _ in range(10):
        f.create_package(campaign_id=f.create_campaign().id, stations=[f.create_station(), f.create_station()])
    assert list_queries() == few


def test_admin_creates_and_edits_a_package(client, admin):
    a, b = f.create_station(), f.create_station()
    campaign = f.create_campaign()
    form = html(client.get("/admin/packages/new"))
    for label in ("类别", "名称", "简介", "时长（分钟）", "每批最少人数", "每批最多人数", "提供此服务包的站点"):
        assert label in form
    response = client.post("/admin/packages/new", data={
        "category": "practice", "title": "七宝·党性实践包", "summary": "走读老街", "duration_minutes": "90",
        "min_group_size": "5", "max_group_size": "30", "campaign": str(campaign.id), "stations": [str(a.id), str(b.id)],
        "active": "y"})
    assert response.status_code == 302
    package = db.session.scalar(sa.select(Package).where(Package.title == "七宝·党性实践包"))
    assert package.category is Category.PRACTICE and package.campaign_id == campaign.id
    assert sorted(s.id for s in package.stations) == sorted([a.id, b.id])
    edit = html(client.get(f"/admin/packages/{package.id}"))
    assert checked(edit, "stations") == {a.id, b.id}
    assert "<html" not in html(client.get(f"/admin/packages/{package.id}", headers=HX))
    response = client.post(f"/admin/packages/{package.id}", data={
        "category": "practice", "title": "七宝·党性实践包", "duration_minutes": "90", "min_group_size": "5",
        "max_group_size": "30", "campaign": "", "stations": [str(b.id)], "active": "y"})
    assert response.status_code == 302
    package = db.session.get(Package, package.id)
    assert package.campaign_id is None and [s.id for s in package.stations] == [b.id]


def test_admin_package_min_above_max_is_refused_in_chinese(client, admin):
    station = f.create_station()
    response = client.post("/admin/packages/new", data={
        "category": "theory", "title": "X", "duration_minutes": "60", "min_group_size": "40",
        "max_group_size": "10", "stations": [str(station.id)]}, headers=HX)
    assert response.status_code == 422
    assert "每批最多人数不能少于最少人数（40 人）" in html(response) and "<html" not in html(response)
    response = client.post("/admin/packages/new", data={
        "category": "theory", "title": "X", "duration_minutes": "60", "min_group_size": "1", "max_group_size": "10",
        "campaign": "abc"})
    assert response.status_code == 422 and "请至少选择一个提供此服务包的站点" in html(response)
    assert db.session.scalar(sa.select(sa.func.count(Package.id))) == 0


def test_admin_package_toggle_and_delete_rules(client, admin):
    slot = f.create_slot()
    package = slot.package
    row = html(client.post(f"/admin/packages/{package.id}/active", data={"active": "0"}, headers=HX))
    assert row.strip().startswith("<tr") and "row-inactive" in row
    assert db.session.get(Package, package.id).active is False
    client.post(f"/admin/packages/{package.id}/delete")
    assert db.session.get(Package, package.id) is not None
    assert "1 个场次、0 条预约，不能删除" in html(client.get(f"/admin/packages/{package.id}"))
    unused_id = f.create_package().id
    client.post(f"/admin/packages/{unused_id}/delete")
    assert db.session.get(Package, unused_id) is None


# -- quotas -----------------------------------------------------------------------------------------

def test_admin_quota_list_search_page_and_fragment(client, admin):
    a = f.create_organisation(name="新虹街道机关第一党支部")
    b = f.create_organisation(name="七宝镇第二党支部")
    db.session.add_all([Quota(organisation_id=a.id, category=Category.THEORY, period=QuotaPeriod.QUARTER, max_bookings=2),
                        Quota(organisation_id=b.id, category=Category.VOLUNTEER, period=QuotaPeriod.YEAR, max_bookings=5)])
    db.session.commit()
    page = html(client.get("/admin/quotas"))
    assert "每季度最多预约理论学习 2 次" in page and "每年最多预约志愿服务 5 次" in page
    fragment = html(client.get("/admin/quotas?q=七宝", headers=HX))
    assert "<html" not in fragment and "七宝镇第二党支部" in fragment and "新虹街道" not in fragment
    assert "七宝镇" not in html(client.get("/admin/quotas?category=theory"))


def test_admin_creates_edits_and_deletes_a_quota(client, admin):
    org = f.create_organisation(name="新虹街道机关第一党支部")
    form = html(client.get("/admin/quotas/new?organisation=新虹街道机关第一党支部"))
    assert 'value="新虹街道机关第一党支部"' in form and "最多预约次数" in form and 'list="organisation-options"' in form
    response = client.post("/admin/quotas/new", data={
        "organisation": "新虹街道机关第一党支部", "category": "theory", "period": "quarter", "max_bookings": "2"})
    assert response.status_code == 302
    quota = db.session.scalar(sa.select(Quota))
    assert (quota.organisation_id, quota.max_bookings) == (org.id, 2)
    duplicate = client.post("/admin/quotas/new", data={
        "organisation": "新虹街道机关第一党支部", "category": "theory", "period": "quarter", "max_bookings": "3"})
    assert duplicate.status_code == 422 and "该组织已有此类别、此周期的限额" in html(duplicate)
    edit = html(client.get(f"/admin/quotas/{quota.id}"))
    assert "新虹街道机关第一党支部" in edit
    assert "<html" not in html(client.get(f"/admin/quotas/{quota.id}", headers=HX))
    response = client.post(f"/admin/quotas/{quota.id}", data={"category": "theory", "period": "month", "max_bookings": "1"})
    assert response.status_code == 302
    quota = db.session.get(Quota, quota.id)
    assert quota.period is QuotaPeriod.MONTH and quota.max_bookings == 1 and quota.organisation_id == org.id
    response = client.post(f"/admin/quotas/{quota.id}", data={"category": "theory", "period": "month", "max_bookings": "0"})
    assert response.status_code == 422 and "请填写 1 到 1000 之间的数字" in html(response)
    quota_id = quota.id
    assert client.post(f"/admin/quotas/{quota_id}/delete").status_code == 302
    assert db.session.scalar(sa.select(sa.func.count(Quota.id))) == 0


def test_admin_quota_for_an_unknown_organisation_suggests_names(client, admin):
    f.create_organisation(name="新虹街道机关第一党支部")
    response = client.post("/admin/quotas/new", data={
        "organisation": "第一党支部", "category": "theory", "period": "quarter", "max_bookings": "2"})
    body = html(response)
    assert response.status_code == 422 and "没有名为“第一党支部”的组织" in body
    assert "您是不是要找" in body and "新虹街道机关第一党支部" in body
    assert db.session.scalar(sa.select(sa.func.count(Quota.id))) == 0


def test_admin_organisation_suggestions_fragment(client, admin):
    f.create_organisation(name="新虹街道机关第一党支部")
    f.create_organisation(name="七宝镇第二党支部")
    response = client.get("/admin/quotas/organisations?organisation=新虹", headers=HX)
    body = html(response)
    assert "<html" not in body and body.strip().startswith("<datalist")
    assert "新虹街道机关第一党支部" in body and "七宝镇" not in body
    assert "<html" in html(client.get("/admin/quotas/organisations?organisation=新虹"))


def test_csrf_is_required_on_catalogue_posts(tmp_path):
    """With CSRF on, a toggle without the token changes nothing; the htmx header token works."""
    from app import create_app

    from .conftest import app_config

    app = create_app(app_config(f"sqlite:///{tmp_path / 'csrf.sqlite3'}", WTF_CSRF_ENABLED=True))
    with app.app_context():
        db.create_all()
        username = f.create_admin().username
        station_id = f.create_station().id
        db.session.remove()

    def active():
        with app.app_context():
            value = db.session.get(Station, station_id).active
            db.session.remove()
            return value

    client = app.test_client()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', html(client.get("/login"))).group(1)
    assert client.post("/login", data={"username": username, "password": f.PASSWORD, "csrf_token": token}
                       ).status_code == 302
    token = re.search(r'"X-CSRFToken": "([^"]+)"', html(client.get("/admin/stations"))).group(1)
    refused = client.post(f"/admin/stations/{station_id}/active", data={"active": "0"}, headers=HX)
    assert refused.status_code == 400 and active() is True
    accepted = client.post(f"/admin/stations/{station_id}/active", data={"active": "0"},
                           headers={**HX, "X-CSRFToken": token})
    assert accepted.status_code == 200 and active() is False
    with app.app_context():
        db.engine.dispose()
