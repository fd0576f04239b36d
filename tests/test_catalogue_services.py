"""Catalogue rules without a client: validation messages in Chinese, nothing written on bad input,
deactivate rather than delete what is referred to, quotas."""
from datetime import date

import pytest
import sqlalchemy as sa

from blueprints.quotas.models import Quota, QuotaPeriod
from blueprints.catalog.models import Campaign, Category, Package, Station
from blueprints.catalogue import services
from blueprints.catalogue.services import CampaignData, CatalogueError, PackageData, QuotaData, Referenced, StationData
from blueprints.core.extensions import db

from . import factories as f


def count(model):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def errors_of(call):
    with pytest.raises(CatalogueError) as caught:
        call()
    return caught.value.errors


# -- stations ---------------------------------------------------------------------------------------

def test_station_is_created_with_its_hosts():
    host = f.create_host()
    station = services.save_station(None, StationData(
        name=" 七宝老街党群服务站 ", subdistrict="七宝镇", requires_approval=True, booking_cutoff_hours=0,
        cancel_deadline_hours=48, host_ids=[host.id]))
    db.session.expire_all()
    station = db.session.get(Station, station.id)
    assert station.name == "七宝老街党群服务站"
    assert station.requires_approval and station.booking_cutoff_hours == 0 and station.cancel_deadline_hours == 48
    assert [h.id for h in station.hosts] == [host.id]


@pytest.mark.parametrize("changes,field,message", [
    ({"name": "  "}, "name", "请填写站点名称"),
    ({"name": "站" * 121}, "name", "最多 120 个字"),
    ({"booking_cutoff_hours": -1}, "booking_cutoff_hours", "0 到 1440"),
    ({"booking_cutoff_hours": None}, "booking_cutoff_hours", "请填写预约截止时间"),
    ({"cancel_deadline_hours": -5}, "cancel_deadline_hours", "0 到 1440"),
    ({"cancel_deadline_hours": 100000}, "cancel_deadline_hours", "0 到 1440"),
    ({"phone": "021-6400<script>"}, "phone", "电话号码只能包含"),
])
def test_station_validation_messages_are_chinese_and_nothing_is_written(changes, field, message):
    data = StationData(name="新站点", **{k: v for k, v in changes.items() if k != "name"})
    if "name" in changes:
        data.name = changes["name"]
    errors = errors_of(lambda: services.save_station(None, data))
    assert message in errors[field]
    assert count(Station) == 0


def test_station_names_are_unique_case_of_create_and_edit():
    f.create_station(name="虹桥天地党群服务站")
    other = f.create_station(name="心驿虹桥党群服务站")
    errors = errors_of(lambda: services.save_station(None, StationData(name="虹桥天地党群服务站")))
    assert errors["name"] == "已有站点名为“虹桥天地党群服务站”，请换一个名称。"
    errors = errors_of(lambda: services.save_station(other, StationData(name="虹桥天地党群服务站")))
    assert "已有站点" in errors["name"]
    db.session.expire_all()
    assert db.session.get(Station, other.id).name == "心驿虹桥党群服务站"
    # Keeping one's own name is fine.
    services.save_station(other, StationData(name="心驿虹桥党群服务站", phone="021 6400-0000"))


def test_only_host_accounts_can_run_a_station():
    secretary = f.create_secretary()
    errors = errors_of(lambda: services.save_station(None, StationData(name="站", host_ids=[secretary.id])))
    assert errors["hosts"] == "只有站点管理员账号可以负责站点。"
    errors = errors_of(lambda: services.save_station(None, StationData(name="站", host_ids=[999999])))
    assert "hosts" in errors


def test_station_with_slots_cannot_be_deleted_only_deactivated():
    slot = f.create_slot()
    f.create_booking(slot=slot)
    station = slot.station
    with pytest.raises(Referenced) as caught:
        services.delete_station(station)
    assert "1 个场次、1 条预约" in caught.value.message and "停用" in caught.value.message
    assert db.session.get(Station, station.id) is not None
    services.set_active(station, False)
    db.session.expire_all()
    assert db.session.get(Station, station.id).active is False


def test_unused_station_is_deleted_with_its_host_and_package_links():
    station = f.create_station()
    host = f.create_host(stations=[station])
    package = f.create_package(stations=[station, f.create_station()])
    assert services.station_references(station.id).any is False
    services.delete_station(station)
    db.session.expire_all()
    assert db.session.get(Station, station.id) is None
    assert db.session.get(type(host), host.id).stations == []
    assert len(db.session.get(Package, package.id).stations) == 1


# -- campaigns --------------------------------------------------------------------------------------

def test_campaign_dates_and_unique_name():
    errors = errors_of(lambda: services.save_campaign(None, CampaignData(
        name="", starts_on=date(2026, 12, 1), ends_on=date(2026, 11, 1))))
    assert errors == {"name": "请填写主题活动名称。", "ends_on": "结束日期早于开始日期。"}
    errors = errors_of(lambda: services.save_campaign(None, CampaignData(name="枢纽先锋")))
    assert errors["starts_on"] == "请填写开始日期。" and errors["ends_on"] == "请填写结束日期。"
    services.save_campaign(None, CampaignData(name="枢纽先锋", starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31)))
    errors = errors_of(lambda: services.save_campaign(None, CampaignData(
        name="枢纽先锋", starts_on=date(2026, 1, 1), ends_on=date(2026, 1, 1))))
    assert "已有主题活动" in errors["name"]
    assert count(Campaign) == 1


def test_campaign_with_packages_cannot_be_deleted():
    campaign = f.create_campaign()
    f.create_package(campaign_id=campaign.id)
    with pytest.raises(Referenced) as caught:
        services.delete_campaign(campaign)
    assert "有 1 个服务包属于此主题活动" in caught.value.message
    empty = f.create_campaign()
    services.delete_campaign(empty)
    assert count(Campaign) == 1


# -- packages ---------------------------------------------------------------------------------------

def _package(**changes):
    station = changes.pop("station", None) or f.create_station()
    data = PackageData(category="theory", title="进博·理论学习包", station_ids=[station.id])
    for key, value in changes.items():
        setattr(data, key, value)
    return data


@pytest.mark.parametrize("changes,field,message", [
    ({"min_group_size": 20, "max_group_size": 10}, "max_group_size", "每批最多人数不能少于最少人数（20 人）"),
    ({"min_group_size": 0}, "min_group_size", "1 到 10000"),
    ({"max_group_size": None}, "max_group_size", "请填写每批最多人数"),
    ({"duration_minutes": 0}, "duration_minutes", "1 到 1440"),
    ({"category": "party"}, "category", "请选择类别"),
    ({"title": ""}, "title", "请填写服务包名称"),
    ({"station_ids": []}, "stations", "请至少选择一个"),
    ({"station_ids": [987654]}, "stations", "已不存在"),
    ({"campaign_id": 987654}, "campaign", "该主题活动已不存在"),
])
def test_package_validation_messages(changes, field, message):
    data = _package(**changes)
    errors = errors_of(lambda: services.save_package(None, data))
    assert message in errors[field]
    assert count(Package) == 0


def test_package_is_saved_with_stations_and_campaign_and_edited():
    campaign = f.create_campaign()
    a, b = f.create_station(), f.create_station()
    package = services.save_package(None, _package(station=a, campaign_id=campaign.id, min_group_size=5,
                                                   max_group_size=5, category="volunteer"))
    assert package.category is Category.VOLUNTEER and package.campaign_id == campaign.id
    services.save_package(package, _package(station=b, title="新标题", campaign_id=None))
    db.session.expire_all()
    package = db.session.get(Package, package.id)
    assert package.title == "新标题" and package.campaign_id is None
    assert [s.id for s in package.stations] == [b.id]


def test_package_with_slots_is_deactivated_not_deleted():
    slot = f.create_slot()
    with pytest.raises(Referenced) as caught:
        services.delete_package(slot.package)
    assert "1 个场次、0 条预约" in caught.value.message
    unused = f.create_package()
    services.delete_package(unused)
    assert db.session.get(Package, unused.id) is None


# -- quotas -----------------------------------------------------------------------------------------

def test_quota_is_created_by_organisation_name_and_is_unique_per_category_and_period():
    org = f.create_organisation(name="新虹街道机关第一党支部")
    quota = services.save_quota(None, QuotaData(organisation="新虹街道机关第一党支部", category="theory",
                                                period="quarter", max_bookings=2))
    assert (quota.organisation_id, quota.category, quota.period, quota.max_bookings) == (
        org.id, Category.THEORY, QuotaPeriod.QUARTER, 2)
    errors = errors_of(lambda: services.save_quota(None, QuotaData(
        organisation="新虹街道机关第一党支部", category="theory", period="quarter", max_bookings=3)))
    assert errors["period"] == "该组织已有此类别、此周期的限额，请修改原有限额。"
    # Another period is another quota; editing keeps the organisation.
    services.save_quota(None, QuotaData(organisation=org.name, category="theory", period="year", max_bookings=5))
    services.save_quota(quota, QuotaData(category="theory", period="quarter", max_bookings=1))
    db.session.expire_all()
    assert db.session.get(Quota, quota.id).max_bookings == 1
    assert count(Quota) == 2


@pytest.mark.parametrize("data,field,message", [
    (QuotaData(organisation="不存在的支部", category="theory", period="month", max_bookings=1),
     "organisation", "没有名为“不存在的支部”的组织"),
    (QuotaData(organisation="", category="theory", period="month", max_bookings=1), "organisation", "请填写组织名称"),
    (QuotaData(organisation="ORG", category="", period="month", max_bookings=1), "category", "请选择类别"),
    (QuotaData(organisation="ORG", category="theory", period="week", max_bookings=1), "period", "请选择周期"),
    (QuotaData(organisation="ORG", category="theory", period="month", max_bookings=0), "max_bookings", "1 到 1000"),
    (QuotaData(organisation="ORG", category="theory", period="month", max_bookings=None), "max_bookings",
     "请填写最多预约次数"),
])
def test_quota_validation_messages(data, field, message):
    f.create_organisation(name="ORG")
    errors = errors_of(lambda: services.save_quota(None, data))
    assert message in errors[field]
    assert count(Quota) == 0


def test_a_quota_set_here_is_enforced_by_the_booking_rules(frozen_now):
    from blueprints.booking.services import quota_refusal

    org = f.create_organisation()
    services.save_quota(None, QuotaData(organisation=org.name, category="theory", period="year", max_bookings=1))
    f.create_booking(slot=f.create_slot(package=f.create_package(category=Category.THEORY)), organisation=org)
    refusal = quota_refusal(org.id, f.create_slot(package=f.create_package(category=Category.THEORY)))
    assert refusal and "每年" in refusal


def test_overview_counts():
    f.create_station(active=False)
    f.create_package()
    counts = services.overview()
    assert counts["stations"] == 2 and counts["stations_active"] == 1
    assert counts["packages"] == counts["packages_active"] == 1
