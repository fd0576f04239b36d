"""One word per concept (issue 14, the glossary in README.md): the booking and catalogue catalogs,
the organisation's name for itself (本支部 / 本单位 / 本组织), the administrators' pages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask_babel import force_locale

from blueprints.accounts.models import Organisation, OrganisationKind

from . import factories as f

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = [ROOT / "blueprints" / name / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
            for name in ("booking", "catalogue")]
# Words the glossary replaced: 每组/团体/团队 (a package's group size is 每批人数, booked groups
# are counted in 批), 后台管理 (the administrators' area is 区级管理). 本支部 names only a 党支部,
# so no fixed message may say it: pages ask Organisation.self_name.
RETIRED = ("每组", "团体", "团队", "后台管理", "本支部")


def _messages(path: Path):
    with path.open("rb") as po:
        for message in read_po(po):
            if message.id:
                strings = message.string if isinstance(message.string, tuple) else (message.string,)
                yield (message.id if isinstance(message.id, str) else message.id[0]), strings


@pytest.mark.parametrize("catalog", CATALOGS, ids=lambda p: p.parts[-5])
def test_the_booking_and_catalogue_catalogs_use_no_retired_word(catalog):
    found = [(msgid, string) for msgid, strings in _messages(catalog) for string in strings
             if any(word in string for word in RETIRED)]
    assert found == []


@pytest.mark.parametrize("kind,zh,en", [
    (OrganisationKind.BRANCH, "本支部", "your branch"),
    (OrganisationKind.REGIONAL_UNIT, "本单位", "your unit"),  # "两新" organisations are regional units here
    (OrganisationKind.GENERAL_BRANCH, "本组织", "your organisation"),
    (OrganisationKind.PARTY_COMMITTEE, "本组织", "your organisation"),
])
def test_an_organisation_names_itself_by_its_kind(app, kind, zh, en):
    organisation = Organisation(name="测试", kind=kind)
    with app.test_request_context():
        with force_locale("zh_CN"):
            assert str(organisation.self_name) == zh
        with force_locale("en"):
            assert str(organisation.self_name) == en


def test_admin_sees_district_administration_in_the_navigation_and_batches_in_the_package_form(client, login):
    login(f.create_admin())
    page = client.get("/admin/packages/new").get_data(as_text=True)
    nav = re.search(r'<nav class="main-nav".*?</nav>', page, re.S).group(0)
    assert ">区级管理</a>" in nav
    assert "每批最少人数" in page and "每批最多人数" in page
    for word in ("每组", "后台管理"):
        assert word not in page
    station_form = client.get("/admin/stations/new").get_data(as_text=True)
    assert "填写完整的街道地址" in station_form


def test_the_readme_glossary_lists_every_word_of_the_session():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Glossary / 术语表"):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    for word in ("服务包", "场次", "服务站", "名额", "预约", "候补", "审核", "签到", "参加人数", "每批人数", "批",
                 "本支部", "本单位", "本组织", "区级管理", "站点管理员", "支部书记", "主题党日"):
        assert f"| {word} |" in section or f"| {word} / " in section, word
