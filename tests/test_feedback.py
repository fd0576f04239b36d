"""Feedback after the day (issue 15, item 5): the booking organisation rates a session it attended.

Domain rules (blueprints/booking/feedback.py) tested directly, then every route that shows or
takes a rating: the booking page (page and htmx block), the 待评价 prompt of the booking list and
the inbox, the host's /host/feedback, the statistics section and its spreadsheets."""
from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from blueprints.booking import feedback
from blueprints.booking.models import Booking, BookingEvent, BookingFeedback, BookingStatus
from blueprints.booking.services import NotAllowed
from blueprints.catalog.models import Category
from blueprints.core.extensions import db

from . import factories as f


def _attended(slot, organisation, **params):
    return f.create_booking(slot=slot, organisation=organisation, status=BookingStatus.ATTENDED,
                            attended_headcount=params.pop("attended_headcount", 9), **params)


@pytest.fixture
def scene(frozen_now):
    """Now: Monday 2026-11-23 10:00 in Shanghai. Branch A attended a session at station X two days
    ago; B attended the same session; Y is another station with its own host."""
    now = frozen_now.now
    x = f.create_station(name="七宝老街党群服务站")
    y = f.create_station(name="虹桥天地党群服务站")
    package = f.create_package(title="四史微党课", category=Category.THEORY, stations=[x, y])
    other_package = f.create_package(title="红色寻访", category=Category.PRACTICE, stations=[x, y])
    org_a = f.create_organisation(name="七宝镇第一党支部")
    org_b = f.create_organisation(name="华漕镇第二党支部")
    sec_a = f.create_secretary(organisation=org_a)
    sec_b = f.create_secretary(organisation=org_b)
    host_x = f.create_host(stations=[x])
    host_y = f.create_host(stations=[y])
    admin = f.create_admin()
    past = f.create_slot(package=package, station=x, starts_at=now - timedelta(days=2))
    booking = _attended(past, org_a)
    booking_b = _attended(past, org_b)
    return {"now": now, "x": x, "y": y, "package": package, "other_package": other_package, "org_a": org_a,
            "org_b": org_b, "sec_a": sec_a, "sec_b": sec_b, "host_x": host_x, "host_y": host_y, "admin": admin,
            "past": past, "booking": booking, "booking_b": booking_b}


def _count(model=BookingFeedback):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


# -- who may rate, and when -------------------------------------------------------------------------

def test_may_rate_the_booking_organisations_secretary_after_the_attended_session(scene):
    assert feedback.may_rate(scene["sec_a"], scene["booking"])


@pytest.mark.parametrize("who", ["sec_b", "host_x", "host_y", "admin"])
def test_may_rate_refuses_another_branchs_secretary_the_host_and_the_admin(scene, who):
    assert not feedback.may_rate(scene[who], scene["booking"])


def test_may_rate_refuses_a_deactivated_secretary(scene):
    scene["sec_a"].active = False
    assert not feedback.may_rate(scene["sec_a"], scene["booking"])


@pytest.mark.parametrize("status", [BookingStatus.CONFIRMED, BookingStatus.NO_SHOW, BookingStatus.CANCELLED,
                                    BookingStatus.PENDING, BookingStatus.DECLINED, BookingStatus.WAITLISTED])
def test_may_rate_only_attended_bookings(scene, status):
    booking = f.create_booking(slot=f.create_slot(package=scene["package"], station=scene["x"],
                                                  starts_at=scene["now"] - timedelta(days=3)),
                               organisation=scene["org_a"], status=status)
    assert not feedback.may_rate(scene["sec_a"], booking)


def test_may_rate_not_while_the_checked_in_session_is_still_running(scene):
    running = f.create_slot(package=scene["package"], station=scene["x"], starts_at=scene["now"] - timedelta(hours=1))
    booking = _attended(running, scene["org_a"])
    assert not feedback.may_rate(scene["sec_a"], booking)
    assert feedback.may_rate(scene["sec_a"], booking, now=running.ends_at)


# -- rating ---------------------------------------------------------------------------------------

def test_rate_stores_one_row_with_author_and_times(scene):
    given = feedback.rate(scene["sec_a"], scene["booking"].id, 5, "  讲解员准备充分。 ")
    row = db.session.scalar(sa.select(BookingFeedback))
    assert (row.id, row.booking_id, row.rating, row.comment, row.author_id) == \
        (given.id, scene["booking"].id, 5, "讲解员准备充分。", scene["sec_a"].id)
    assert row.created_at == row.updated_at == scene["now"]


def test_rate_keeps_the_bookings_status_revision_and_history(scene):
    booking = scene["booking"]
    before = (booking.status, booking.revision, booking.updated_at, _count(BookingEvent))
    feedback.rate(scene["sec_a"], booking.id, 4, "")
    booking = db.session.get(Booking, booking.id, populate_existing=True)
    assert (booking.status, booking.revision, booking.updated_at, _count(BookingEvent)) == before


def test_rate_again_within_14_days_edits_the_same_row(scene, frozen_now):
    first = feedback.rate(scene["sec_a"], scene["booking"].id, 3, "一般")
    frozen_now.set(scene["now"] + timedelta(days=13, hours=23))
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "后来想想很好")
    row = db.session.scalar(sa.select(BookingFeedback))
    assert _count() == 1 and row.id == first.id
    assert (row.rating, row.comment, row.created_at) == (5, "后来想想很好", scene["now"])
    assert row.updated_at == scene["now"] + timedelta(days=13, hours=23)


def test_rate_after_14_days_is_refused_and_changes_nothing(scene, frozen_now):
    feedback.rate(scene["sec_a"], scene["booking"].id, 3, "一般")
    frozen_now.set(scene["now"] + timedelta(days=14))
    with pytest.raises(feedback.FeedbackError) as refused:
        feedback.rate(scene["sec_a"], scene["booking"].id, 5, "改一下")
    assert "14" in refused.value.message and refused.value.field is None
    row = db.session.scalar(sa.select(BookingFeedback))
    assert (row.rating, row.comment) == (3, "一般")


def test_another_secretary_of_the_same_organisation_may_edit_its_rating(scene):
    deputy = f.create_secretary(organisation=scene["org_a"])
    feedback.rate(scene["sec_a"], scene["booking"].id, 3, "")
    feedback.rate(deputy, scene["booking"].id, 4, "")
    row = db.session.scalar(sa.select(BookingFeedback))
    assert (row.rating, row.author_id) == (4, deputy.id)


@pytest.mark.parametrize("who", ["sec_b", "host_x", "admin"])
def test_rate_by_another_branchs_secretary_the_host_or_the_admin_is_not_allowed(scene, who):
    with pytest.raises(NotAllowed):
        feedback.rate(scene[who], scene["booking"].id, 5, "")
    assert _count() == 0


def test_rate_an_unknown_booking_is_not_allowed(scene):
    with pytest.raises(NotAllowed):
        feedback.rate(scene["sec_a"], 999999, 5, "")


@pytest.mark.parametrize("rating", [0, 6, -1, "abc", "5", None, True, 4.5])
def test_rate_refuses_a_rating_outside_1_to_5_at_its_field(scene, rating):
    with pytest.raises(feedback.FeedbackError) as refused:
        feedback.rate(scene["sec_a"], scene["booking"].id, rating, "")
    assert refused.value.field == "rating" and "1 到 5 分" in refused.value.message
    assert _count() == 0


def test_rate_refuses_a_comment_over_500_characters(scene):
    with pytest.raises(feedback.FeedbackError) as refused:
        feedback.rate(scene["sec_a"], scene["booking"].id, 5, "好" * 501)
    assert refused.value.field == "comment" and "500" in refused.value.message
    assert _count() == 0
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "好" * 500)
    assert _count() == 1


def test_rate_refuses_a_session_not_over_or_not_attended(scene):
    upcoming = f.create_booking(slot=f.create_slot(package=scene["package"], station=scene["x"]),
                                organisation=scene["org_a"])
    with pytest.raises(feedback.FeedbackError) as refused:
        feedback.rate(scene["sec_a"], upcoming.id, 5, "")
    assert "签到" in refused.value.message
    assert _count() == 0


# -- the 待评价 prompt ---------------------------------------------------------------------------------

def test_awaiting_feedback_lists_attended_ended_unrated_sessions_of_the_last_30_days(scene):
    now = scene["now"]
    org = scene["org_a"]

    def session(days, status=BookingStatus.ATTENDED, organisation=org):
        slot = f.create_slot(package=scene["package"], station=scene["y"], starts_at=now - timedelta(days=days))
        return f.create_booking(slot=slot, organisation=organisation, status=status)

    recent = session(10)
    old = session(31)  # ended more than 30 days ago
    no_show = session(5, BookingStatus.NO_SHOW)
    rated = session(6)
    session(4, organisation=scene["org_b"])
    feedback.rate(scene["sec_a"], rated.id, 4, "")
    items, more = feedback.awaiting_feedback(org.id)
    assert [b.id for b in items] == [scene["booking"].id, recent.id] and not more
    assert old.id not in {b.id for b in items} and no_show.id not in {b.id for b in items}


def test_awaiting_feedback_is_bounded_and_says_when_there_are_more(scene, count_queries):
    for days in range(3, 10):
        _attended(f.create_slot(package=scene["package"], station=scene["y"],
                                starts_at=scene["now"] - timedelta(days=days)), scene["org_a"])
    organisation_id = scene["org_a"].id
    with count_queries() as counter:
        items, more = feedback.awaiting_feedback(organisation_id, limit=5)
        [b.slot.package.title + b.slot.station.name for b in items]
    assert len(items) == 5 and more and counter.count == 1


# -- the host's list and the statistics -------------------------------------------------------------

def test_station_feedback_lists_the_stations_ratings_newest_first_with_average(scene, frozen_now):
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "很好")
    frozen_now.set(scene["now"] + timedelta(hours=1))
    feedback.rate(scene["sec_b"], scene["booking_b"].id, 2, "")
    at_y = _attended(f.create_slot(package=scene["package"], station=scene["y"],
                                   starts_at=scene["now"] - timedelta(days=3)), scene["org_a"])
    feedback.rate(scene["sec_a"], at_y.id, 1, "")
    result = feedback.station_feedback(scene["x"].id, 1, 20)
    assert [c.booking.id for c in result.items] == [scene["booking_b"].id, scene["booking"].id]
    assert (result.summary.count, result.summary.average) == (2, 3.5)
    assert [c.organisation_name for c in result.items] == ["华漕镇第二党支部", "七宝镇第一党支部"]
    assert result.items[1].package_title == "四史微党课" and result.items[1].label == "5 分 非常满意"
    assert feedback.station_feedback([scene["x"].id, scene["y"].id]).summary.count == 3
    assert feedback.station_feedback([]).summary.count == 0


def test_station_feedback_pages_and_its_query_count_does_not_grow(scene, count_queries):
    def rate_sessions(n):
        for i in range(n):
            organisation = f.create_organisation()
            secretary = f.create_secretary(organisation=organisation)
            booking = _attended(scene["past"], organisation)
            feedback.rate(secretary, booking.id, 1 + i % 5, f"意见{i}")

    rate_sessions(3)
    station_id = scene["x"].id
    with count_queries() as small:
        first = feedback.station_feedback(station_id, 1, 2)
        [(c.package_title, c.slot.starts_at, c.feedback.comment) for c in first.items]
    rate_sessions(5)
    with count_queries() as big:
        page = feedback.station_feedback(station_id, 2, 2)
        [(c.package_title, c.slot.starts_at, c.feedback.comment) for c in page.items]
    assert small.count == big.count == 2
    assert (page.page, page.pages, page.total, len(page.items)) == (2, 4, 8, 2)
    assert feedback.station_feedback(scene["x"].id, 99, 2).page == 4  # past the end: the last page


def test_rating_summary_per_station_and_package_with_latest_comments(scene):
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "很好")
    feedback.rate(scene["sec_b"], scene["booking_b"].id, 4, "")
    other = _attended(f.create_slot(package=scene["other_package"], station=scene["y"],
                                    starts_at=scene["now"] - timedelta(days=5)), scene["org_a"])
    feedback.rate(scene["sec_a"], other.id, 2, "场地临时调整没有通知")
    summary = feedback.rating_summary()
    assert (summary.overall.count, summary.overall.total) == (3, 11)
    assert [(r.name, r.count, r.average) for r in summary.stations] == \
        [("七宝老街党群服务站", 2, 4.5), ("虹桥天地党群服务站", 1, 2.0)]
    assert [(r.name, r.count, r.average) for r in summary.packages] == [("四史微党课", 2, 4.5), ("红色寻访", 1, 2.0)]
    assert [c.feedback.comment for c in summary.comments] == ["场地临时调整没有通知", "很好"]  # with words only
    assert len(feedback.rating_summary(comments=1).comments) == 1
    from blueprints.catalog.models import Slot

    assert feedback.rating_summary(Slot.station_id == scene["y"].id).overall.count == 1


# -- the booking page -------------------------------------------------------------------------------

def test_secretary_sees_an_accessible_rating_form_on_the_attended_booking(client, login, scene):
    login(scene["sec_a"])
    html = client.get(f"/bookings/{scene['booking'].id}").get_data(as_text=True)
    form = html.split('id="booking-feedback"')[1].split("</section>")[0]
    assert "<fieldset" in form and "<legend>本支部对本场次满意吗？</legend>" in form
    for n, words in ((5, "非常满意"), (4, "满意"), (3, "一般"), (2, "不太满意"), (1, "不满意")):
        assert f'<input type="radio" name="rating" id="rating-{n}" value="{n}">' in form
        assert f'<label class="rating-option" for="rating-{n}">' in form
        assert f'<span class="rating-text">{n} 分 {words}</span>' in form
    assert 'aria-hidden="true">★★★★★</span>' in form  # the stars are decoration; the words say it
    assert f'action="/bookings/{scene["booking"].id}/feedback"' in form and 'name="comment"' in form


def test_secretary_rates_without_js_303_back_with_thanks_and_the_rating_shows(client, login, scene):
    login(scene["sec_a"])
    response = client.post(f"/bookings/{scene['booking'].id}/feedback", data={"rating": "4", "comment": "组织有序"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/bookings/{scene['booking'].id}")
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "感谢评价" in html
    block = html.split('id="booking-feedback"')[1].split("</section>")[0]
    assert 'data-rating="4"' in block and "4 分 满意" in block and "组织有序" in block
    assert "修改评价" in block  # still editable: the form in a <details>


def test_secretary_rates_with_htmx_gets_the_feedback_block(client, login, scene, htmx_headers):
    login(scene["sec_a"])
    response = client.post(f"/bookings/{scene['booking'].id}/feedback", data={"rating": "5", "comment": ""},
                           headers=htmx_headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<section class="panel feedback" id="booking-feedback"')
    assert "感谢评价" in html and 'data-rating="5"' in html
    assert "感谢评价" not in client.get(f"/bookings/{scene['booking'].id}").get_data(as_text=True)  # no flash left


@pytest.mark.parametrize("data", [{"rating": "0"}, {"rating": "6"}, {"rating": "abc"}, {}, {"rating": ""},
                                  {"rating": "4.5"}])
@pytest.mark.parametrize("htmx", [False, True])
def test_secretary_bad_rating_422_with_message_at_the_field_and_nothing_changed(client, login, scene, data, htmx,
                                                                                htmx_headers):
    login(scene["sec_a"])
    response = client.post(f"/bookings/{scene['booking'].id}/feedback", data={**data, "comment": "好"},
                           headers=htmx_headers if htmx else {})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert ('<p class="error" id="rating-error" role="alert">请选择 1 到 5 分中的一项评分。</p>') in html
    assert 'aria-describedby="rating-error"' in html
    assert ("<html" in html) is not htmx
    assert _count() == 0


def test_secretary_comment_too_long_422_at_the_comment(client, login, scene):
    login(scene["sec_a"])
    response = client.post(f"/bookings/{scene['booking'].id}/feedback", data={"rating": "5", "comment": "好" * 501})
    assert response.status_code == 422
    assert '<p class="error" id="comment-error" role="alert">评价意见请不要超过 500 字。</p>' in \
        response.get_data(as_text=True).replace("评价内容", "评价意见")
    assert _count() == 0


def test_secretary_edit_after_14_days_422_read_only_message(client, login, scene, frozen_now, htmx_headers):
    feedback.rate(scene["sec_a"], scene["booking"].id, 3, "一般")
    frozen_now.set(scene["now"] + timedelta(days=15))
    login(scene["sec_a"])
    page = client.get(f"/bookings/{scene['booking'].id}").get_data(as_text=True)
    block = page.split('id="booking-feedback"')[1].split("</section>")[0]
    assert "<form" not in block and "已于" in block and "截止修改" in block and "3 分 一般" in block
    for headers in ({}, htmx_headers):
        response = client.post(f"/bookings/{scene['booking'].id}/feedback", data={"rating": "5"}, headers=headers)
        assert response.status_code == 422
        assert "这条评价提交已超过 14 天，不能再修改。" in response.get_data(as_text=True)
    row = db.session.scalar(sa.select(BookingFeedback))
    assert (row.rating, row.comment) == (3, "一般")


def test_secretary_cannot_rate_an_upcoming_booking_422(client, login, scene):
    upcoming = f.create_booking(slot=f.create_slot(package=scene["package"], station=scene["x"]),
                                organisation=scene["org_a"])
    login(scene["sec_a"])
    assert 'id="booking-feedback"' not in client.get(f"/bookings/{upcoming.id}").get_data(as_text=True)
    response = client.post(f"/bookings/{upcoming.id}/feedback", data={"rating": "5"})
    assert response.status_code == 422 and "场次结束、并已签到后才能评价。" in response.get_data(as_text=True)
    assert _count() == 0


@pytest.mark.parametrize("who", ["sec_b", "host_x", "host_y", "admin"])
def test_another_branchs_secretary_the_host_and_the_admin_cannot_rate_404(client, login, scene, who):
    login(scene[who])
    response = client.post(f"/bookings/{scene['booking'].id}/feedback", data={"rating": "5", "comment": "好"})
    assert response.status_code == 404
    assert _count() == 0


def test_anonymous_visitor_cannot_rate_and_is_sent_to_login(client, scene):
    response = client.post(f"/bookings/{scene['booking'].id}/feedback", data={"rating": "5"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert _count() == 0


def test_host_and_admin_read_the_rating_on_the_booking_page_without_a_form(client, login, scene):
    feedback.rate(scene["sec_a"], scene["booking"].id, 2, "开始时间推迟了")
    for who in ("host_x", "admin"):
        login(scene[who])
        html = client.get(f"/bookings/{scene['booking'].id}").get_data(as_text=True)
        block = html.split('id="booking-feedback"')[1].split("</section>")[0]
        assert "2 分 不太满意" in block and "开始时间推迟了" in block and "<form" not in block
        client.post("/logout")


def test_other_branchs_secretary_never_sees_the_rating(client, login, scene):
    feedback.rate(scene["sec_a"], scene["booking"].id, 2, "开始时间推迟了")
    login(scene["sec_b"])
    assert client.get(f"/bookings/{scene['booking'].id}").status_code == 404
    own = client.get(f"/bookings/{scene['booking_b'].id}").get_data(as_text=True)
    assert "开始时间推迟了" not in own and 'data-rating="2"' not in own and 'data-rated="false"' in own
    assert "开始时间推迟了" not in client.get("/bookings").get_data(as_text=True)


def test_booking_page_queries_do_not_grow_with_ratings(client, login, scene, count_queries):
    login(scene["sec_a"])
    client.get(f"/bookings/{scene['booking'].id}")  # the first request after login reads the user
    with count_queries() as unrated:
        client.get(f"/bookings/{scene['booking'].id}")
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "好")
    feedback.rate(scene["sec_b"], scene["booking_b"].id, 5, "好")
    with count_queries() as rated:
        client.get(f"/bookings/{scene['booking'].id}")
    assert rated.count == unrated.count


# -- the 待评价 prompt on the booking list and in the inbox ----------------------------------------------

@pytest.mark.parametrize("path", ["/bookings", "/notifications"])
def test_secretary_sees_awaiting_feedback_prompt_until_rated(client, login, scene, path):
    login(scene["sec_a"])
    html = client.get(path).get_data(as_text=True)
    prompt = html.split('id="awaiting-feedback"')[1].split("</section>")[0]
    assert "待评价" in html and f'href="/bookings/{scene["booking"].id}#booking-feedback"' in prompt
    assert "四史微党课" in prompt and "七宝老街党群服务站" in prompt
    client.post(f"/bookings/{scene['booking'].id}/feedback", data={"rating": "5"})
    assert 'id="awaiting-feedback"' not in client.get(path).get_data(as_text=True)


@pytest.mark.parametrize("who", ["host_x", "admin"])
def test_host_and_admin_inbox_has_no_awaiting_feedback_prompt(client, login, scene, who):
    login(scene[who])
    assert 'id="awaiting-feedback"' not in client.get("/notifications").get_data(as_text=True)


def test_booking_list_htmx_past_block_has_no_prompt(client, login, scene, htmx_headers):
    login(scene["sec_a"])
    html = client.get("/bookings?page=1", headers=htmx_headers).get_data(as_text=True)
    assert "<html" not in html and 'id="past-bookings"' in html and 'id="awaiting-feedback"' not in html


def test_secretary_booking_list_queries_do_not_grow_with_sessions_to_rate(client, login, scene, count_queries):
    login(scene["sec_a"])
    client.get("/bookings")  # the first request after login reads the user
    with count_queries() as one:
        client.get("/bookings")
    for days in range(3, 12):
        _attended(f.create_slot(package=scene["other_package"], station=scene["y"],
                                starts_at=scene["now"] - timedelta(days=days)), scene["org_a"])
    with count_queries() as many:
        html = client.get("/bookings").get_data(as_text=True)
    assert many.count == one.count
    assert html.split('id="awaiting-feedback"')[1].split("</section>")[0].count("<li") == feedback.PROMPT_LIMIT
    assert "还有更多场次待评价" in html


# -- the host's page ----------------------------------------------------------------------------------

def test_host_feedback_shows_own_station_ratings_with_average_and_count(client, login, scene):
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "讲解员准备充分")
    feedback.rate(scene["sec_b"], scene["booking_b"].id, 4, "")
    at_y = _attended(f.create_slot(package=scene["package"], station=scene["y"],
                                   starts_at=scene["now"] - timedelta(days=3)), scene["org_a"])
    feedback.rate(scene["sec_a"], at_y.id, 1, "虹桥的意见")
    login(scene["host_x"])
    response = client.get("/host/feedback")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" in html
    assert "<strong data-average>4.5</strong>" in html and "<strong data-count>2</strong>" in html
    assert "讲解员准备充分" in html and "七宝镇第一党支部" in html and "华漕镇第二党支部" in html
    assert "四史微党课" in html and "11月21日" in html and "5 分 非常满意" in html
    assert "虹桥的意见" not in html


def test_host_feedback_htmx_returns_the_list_block(client, login, scene, htmx_headers):
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "")
    login(scene["host_x"])
    html = client.get("/host/feedback", headers=htmx_headers).get_data(as_text=True)
    assert "<html" not in html and html.lstrip().startswith('<div id="feedback-list">')


def test_host_of_another_station_gets_404_for_its_feedback(client, login, scene):
    login(scene["host_y"])
    assert client.get(f"/host/feedback?station={scene['x'].id}").status_code == 404
    assert client.get("/host/feedback?station=abc").status_code == 404
    assert client.get(f"/host/feedback?station={scene['y'].id}").status_code == 200


@pytest.mark.parametrize("who", ["sec_a", "admin"])
def test_host_feedback_secretary_and_admin_get_403(client, login, scene, who):
    login(scene[who])
    assert client.get("/host/feedback").status_code == 403


def test_host_feedback_is_linked_from_the_dashboard(client, login, scene):
    login(scene["host_x"])
    assert 'href="/host/feedback"' in client.get("/host/").get_data(as_text=True)


def test_host_feedback_queries_do_not_grow_with_ratings(client, login, scene, count_queries):
    login(scene["host_x"])
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "")
    client.get("/host/feedback")  # the first request after login reads the user
    with count_queries() as one:
        client.get("/host/feedback")
    for _ in range(6):
        organisation = f.create_organisation()
        feedback.rate(f.create_secretary(organisation=organisation), _attended(scene["past"], organisation).id, 3, "好")
    with count_queries() as many:
        client.get("/host/feedback")
    assert many.count == one.count


# -- statistics ----------------------------------------------------------------------------------------

def test_admin_stats_shows_ratings_per_station_and_package_and_latest_comments(client, login, scene, htmx_headers):
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "讲解员准备充分")
    feedback.rate(scene["sec_b"], scene["booking_b"].id, 2, "")
    login(scene["admin"])
    for headers in ({}, htmx_headers):
        html = client.get("/admin/stats", headers=headers).get_data(as_text=True)
        section = html.split('id="stats-feedback"')[1].split("</section>")[0]
        assert "<strong data-average>3.5</strong>" in section and "<strong data-count>2</strong>" in section
        assert f'<tr data-id="{scene["x"].id}"><th scope="row">七宝老街党群服务站</th><td>3.5</td><td>2</td></tr>' in section
        assert f'<tr data-id="{scene["package"].id}"><th scope="row">四史微党课</th><td>3.5</td><td>2</td></tr>' in section
        assert "讲解员准备充分" in section and "七宝镇第一党支部" in section
        assert html.count("<svg") == 5  # no chart added: the existing ones keep their scales


def test_admin_stats_feedback_follows_the_filters(client, login, scene):
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "好")
    login(scene["admin"])
    html = client.get(f"/admin/stats?station={scene['y'].id}").get_data(as_text=True)
    assert "本期间的场次还没有评价。" in html.split('id="stats-feedback"')[1].split("</section>")[0]


def test_admin_stats_shows_a_new_rating_on_the_next_get(client, login, scene):
    login(scene["admin"])
    assert "本期间的场次还没有评价。" in client.get("/admin/stats").get_data(as_text=True)
    feedback.rate(scene["sec_a"], scene["booking"].id, 4, "新的评价")
    html = client.get("/admin/stats").get_data(as_text=True)
    assert "新的评价" in html and "<strong data-count>1</strong>" in html


def test_host_feedback_and_booking_page_show_a_new_rating_on_the_next_get(client, login, scene):
    login(scene["host_x"])
    assert "<strong data-count>0</strong>" in client.get("/host/feedback").get_data(as_text=True)
    client.get(f"/bookings/{scene['booking'].id}")
    feedback.rate(scene["sec_a"], scene["booking"].id, 4, "新的评价")
    assert "新的评价" in client.get("/host/feedback").get_data(as_text=True)
    assert "新的评价" in client.get(f"/bookings/{scene['booking'].id}").get_data(as_text=True)


def test_admin_stats_queries_do_not_grow_with_ratings(client, login, scene, count_queries):
    login(scene["admin"])
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "好")
    client.get("/admin/stats")  # the first request after login reads the user
    with count_queries() as one:
        client.get("/admin/stats")
    for i in range(5):
        station = f.create_station()
        package = f.create_package(stations=[station])
        organisation = f.create_organisation()
        booking = _attended(f.create_slot(package=package, station=station,
                                          starts_at=scene["now"] - timedelta(days=3 + i)), organisation)
        feedback.rate(f.create_secretary(organisation=organisation), booking.id, 4, f"意见{i}")
    client.get("/admin/stats")  # new stations: the session's user is read again (global version)
    with count_queries() as many:
        client.get("/admin/stats")
    assert many.count == one.count


def test_admin_stats_rating_spreadsheets(client, login, scene):
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "讲解员准备充分")
    feedback.rate(scene["sec_b"], scene["booking_b"].id, 2, "")
    login(scene["admin"])

    def rows(table):
        response = client.get(f"/admin/stats/{table}.xlsx")
        assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
        return list(load_workbook(BytesIO(response.data)).active.iter_rows(values_only=True))

    assert rows("ratings_stations") == [("站点", "评价数", "平均评分"), ("七宝老街党群服务站", 2, 3.5)]
    assert rows("ratings_packages") == [("服务包", "评价数", "平均评分"), ("四史微党课", 2, 3.5)]
    every = rows("ratings")
    assert every[0] == ("场次日期", "站点", "服务包", "单位/组织", "评分", "评价意见", "评价时间")
    assert sorted(r[3:6] for r in every[1:]) == [("七宝镇第一党支部", 5, "讲解员准备充分"), ("华漕镇第二党支部", 2, None)]
    assert every[1][0] == "2026-11-21"


def test_host_stats_rating_spreadsheet_only_own_stations(client, login, scene):
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "好")
    login(scene["host_y"])
    response = client.get("/host/stats/ratings.xlsx")
    assert response.status_code == 200
    assert list(load_workbook(BytesIO(response.data)).active.iter_rows(min_row=2, values_only=True)) == []
    assert client.get(f"/host/stats/ratings.xlsx?station={scene['x'].id}").status_code == 404


# -- demo data ----------------------------------------------------------------------------------------

def test_demo_history_rates_a_good_share_of_attended_sessions_once(frozen_now):
    from blueprints.catalog.models import Slot
    from blueprints.demo.loader import load_demo

    load_demo(branches=12)
    now = frozen_now.now
    attended = db.session.scalars(sa.select(Booking).join(Slot, Slot.id == Booking.slot_id).where(
        Booking.status == BookingStatus.ATTENDED, Slot.ends_at < now)).all()
    rows = db.session.scalars(sa.select(BookingFeedback)).all()
    assert 0.4 * len(attended) <= len(rows) <= 0.8 * len(attended)
    by_booking = {b.id: b for b in attended}
    for row in rows:
        booking = by_booking[row.booking_id]  # only attended, ended sessions are rated
        assert booking.slot.ends_at <= row.created_at < now and 1 <= row.rating <= 5
        assert row.author.organisation_id == booking.organisation_id
    assert sum(1 for r in rows if r.comment) >= len(rows) // 2 and {r.rating for r in rows} >= {4, 5}
    # Recent sessions are left to rate: the demo shows the 待评价 prompt.
    assert any(feedback.awaiting_feedback(o)[0] for o in {b.organisation_id for b in attended})
    ratings = sorted((r.booking_id, r.rating, r.comment) for r in rows)
    load_demo(branches=12)
    assert sorted((r.booking_id, r.rating, r.comment) for r in db.session.scalars(sa.select(BookingFeedback))) == \
        ratings


def test_rate_racing_a_first_rating_of_the_same_booking_edits_it(scene, monkeypatch):
    """Two first ratings at once: the second insert meets the unique booking_id, rolls back and
    edits the row the first one committed (no error for the user, still one row)."""
    feedback.rate(scene["sec_a"], scene["booking"].id, 2, "先提交的")
    real, calls = feedback.feedback_of, []

    def not_seen_the_first_time(booking_id):
        calls.append(booking_id)
        return None if len(calls) == 1 else real(booking_id)

    monkeypatch.setattr(feedback, "feedback_of", not_seen_the_first_time)
    feedback.rate(scene["sec_a"], scene["booking"].id, 5, "后提交的")
    rows = db.session.scalars(sa.select(BookingFeedback)).all()
    assert len(calls) == 2 and [(r.rating, r.comment) for r in rows] == [(5, "后提交的")]
