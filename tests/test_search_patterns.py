"""Every search box matches what was typed literally (``core.db.contains``, issue 13).

Before, the station, package, quota and menu searches put the text into a LIKE pattern as it
was: "%" matched every row and "_" any character. Each search here is given a text with a LIKE
wildcard and must find only the row that really contains it.
"""
from __future__ import annotations

import pytest

from blueprints.accounts import services as account_services
from blueprints.accounts.models import Role
from blueprints.quotas.models import Quota, QuotaPeriod
from blueprints.catalog.models import Category
from blueprints.catalogue import services as catalogue
from blueprints.core.db import contains, like_pattern
from blueprints.core.extensions import db
from blueprints.directory import services as directory
from blueprints.menu.queries import MenuFilters, menu_page

from . import factories as f


@pytest.mark.parametrize("typed,pattern", [
    ("100%", "%100\\%%"), ("a_b", "%a\\_b%"), ("C:\\x", "%C:\\\\x%"), ("  党建  ", "%党建%")])
def test_a_typed_wildcard_is_escaped_and_spaces_trimmed(typed, pattern):
    assert like_pattern(typed) == pattern


def test_contains_is_case_insensitive_over_any_column():
    f.create_station(name="Hub Station", address="")
    f.create_station(name="其他", address="near the HUB")
    from blueprints.catalog.models import Station
    names = db.session.scalars(db.select(Station.name).where(contains("hub", Station.name, Station.address)))
    assert sorted(names) == ["Hub Station", "其他"]


def test_station_search_finds_a_percent_sign_only_where_it_is():
    f.create_station(name="100%党建阵地")
    f.create_station(name="普通驿站")
    assert [s.name for s in catalogue.station_page("%", "", 1, 20).items] == ["100%党建阵地"]


def test_package_search_treats_an_underscore_as_an_underscore():
    f.create_package(title="理论_学习")
    f.create_package(title="理论学习包")
    assert [p.title for p in catalogue.package_page("论_学", "", None, "", 1, 20).items] == ["理论_学习"]


def test_quota_search_by_organisation_name_is_literal():
    for name in ("50%支部", "第五支部"):
        organisation = f.create_organisation(name=name)
        db.session.add(Quota(organisation=organisation, category=Category.THEORY, period=QuotaPeriod.MONTH,
                             max_bookings=2))
    db.session.commit()
    assert [q.organisation.name for q in catalogue.quota_page("%", "", 1, 20).items] == ["50%支部"]


def test_menu_search_is_literal():
    station = f.create_station()
    wanted = f.create_package(title="“四史”学习_专题", stations=[station])
    f.create_package(title="四史学习专题", stations=[station])
    found = menu_page(MenuFilters(q="_专"), 1, 20).pagination.items
    assert [p.id for p in found] == [wanted.id]


def test_directory_searches_and_suggestions_are_literal():
    hit = f.create_organisation(name="机关_第一支部")
    f.create_organisation(name="机关第一支部")
    found = directory.organisation_page(directory.OrganisationFilters(q="关_第", status="all"), 1, 20)[0].items
    assert [o.id for o in found] == [hit.id]
    assert account_services.suggest_organisations("_") == ["机关_第一支部"]
    f.create_user(Role.ADMIN, display_name="王%管理员")
    f.create_user(Role.ADMIN, display_name="王管理员")
    accounts = directory.account_page(directory.AccountFilters(q="王%", status="all"), 1, 20).items
    assert [u.display_name for u in accounts] == ["王%管理员"]
