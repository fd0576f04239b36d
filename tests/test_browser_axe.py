"""axe-core on every page of every role, at 390×844 and 1280×800, and every navigation item
reachable on a phone (issue 14).

The pages come from the app's URL map: each GET route is visited by every role whose column in
``tests/test_authz_matrix.py``'s ``ROUTES`` says OK (anonymous, the branch secretary ``sec1``, the
host ``host1``, the administrator ``admin`` of the demo district, standing for ``anon``, ``sec_a``,
``host_x`` and ``admin`` there), with URL parameters taken from the scene below; a few more states
(the menu with filters, the error pages, …) are listed in ``EXTRA``, states reached by a POST (a
refused login, the import preview, forms sent empty, …) in ``EXTRA_ACTIONS`` and ``FORM_ERRORS``. A GET route that
is not an HTML page is listed in ``NOT_PAGES`` with the reason; a new route that is in neither fails
``test_every_get_route_is_visited_or_listed``.

axe-core (tests/vendor/axe.min.js, MPL-2.0) is injected into each page under ``bypass_csp`` and runs
its default rule set (WCAG 2.x A/AA and best practices); no rule and no page is skipped. Every
violation of a role is collected and the test fails listing all of them (page, width, rule, impact,
selectors), so one run shows the whole picture.
"""
from __future__ import annotations

import itertools
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from blueprints.accounts.models import User
from blueprints.quotas.models import Quota, QuotaPeriod
from blueprints.booking.models import BookingStatus, Notification
from blueprints.catalog.models import Category, Package
from blueprints.core import clock
from blueprints.core.extensions import db
from blueprints.demo.loader import load_demo

from . import factories as f
from .conftest import browser_login
from .test_authz_matrix import OK, ROUTES

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
AXE_VERSION = AXE.read_text(encoding="utf-8").split("\n", 1)[0].removeprefix("/*! axe ").strip()
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
VIEWPORTS = (PHONE, DESKTOP)

# The demo account of each role, and the column of the authorisation matrix it stands for.
ROLES = {"anon": (None, "anon"), "secretary": ("sec1", "sec_a"), "host": ("host1", "host_x"),
         "admin": ("admin", "admin")}

# GET routes that are not pages, and why they are not visited here.
NOT_PAGES = {
    "static": "files (CSS, JavaScript, images) of the pages checked here",
    "core.healthz": "JSON for load balancers",
    "core.robots": "plain text for crawlers",
    "core.favicon": "a redirect to /static/favicon.svg",
    "feeds.feed": "an iCalendar document for calendar apps",
    "feeds.booking_ics": "an iCalendar file to download",
    "host.roster_csv": "a CSV download",
    "host.roster_xlsx": "an XLSX download",
    "host.sign_in_sheet": "an XLSX download",
    "host_stats.export": "an XLSX download",
    "admin.stats_export": "an XLSX download",
    "directory.export_csv": "a CSV download",
    "directory.export_xlsx": "an XLSX download",
    "booking.places": "htmx fragment polled into the slot page (checked there); without htmx a redirect to it",
    "directory.suggest_organisations": "<option>s filled into a <datalist> of the organisation forms (checked there)",
    "catalogue.organisation_options": "<option>s filled into the quota form's <datalist> (checked there)",
}

# Which object of the scene a URL parameter names, by parameter, then by endpoint.
PARAMS = {"package_id": "package", "slot_id": "slot", "booking_id": "booking", "station_id": "station",
          "campaign_id": "campaign", "quota_id": "quota", "organisation_id": "organisation", "user_id": "user",
          "token": "checkin_token"}
ENDPOINT_PARAMS = {
    "host.slot": {"slot_id": "booked_slot"},  # with sec1's pending booking and its actions
    "host.roster": {"slot_id": "past_slot"},  # over: attended and unsettled groups, the no-show form
    "host.checkin_list": {"slot_id": "today_slot"},  # check-in is open today
}

# More states of pages than one per route: (roles, path with {scene} names, status, name).
EXTRA = [
    (("anon", "secretary"), "/?category=theory&available=y", 200, "menu with filters"),
    (("anon",), "/?category=nonsense&day_from=bad", 422, "menu with invalid filters"),
    (("anon", "secretary", "host", "admin"), "/packages/999999", 404, "error 404"),
    (("secretary", "host"), "/admin/", 403, "error 403"),
    (("admin",), "/host/", 403, "error 403"),
    (("admin",), "/admin/audit?what=created", 200, "audit filtered"),
    (("admin",), "/admin/audit?date_from=bad", 200, "audit with invalid filters"),
    (("secretary",), "/slots/{booked_slot}", 200, "slot already booked"),
    (("host",), "/host/slots/{slot}", 200, "slot without bookings"),
    (("secretary", "host", "admin"), "/bookings/{confirmed}/confirmation", 200, "confirmation of a confirmed booking"),
    (("anon",), "/calendar?week=2026-W60&category=nonsense", 422, "calendar with a bad week and filter"),
]


def failed_login(page, base: str, scene: dict) -> None:
    page.goto(base + "/login")
    page.get_by_label("用户名").fill("sec1")
    page.get_by_label("密码").fill("wrong password")
    page.get_by_role("button", name="登录").click()
    page.locator("main [role=alert]").first.wait_for()


IMPORTS = itertools.count(1)


def import_csv() -> bytes:
    """One organisation changed and a new one (a new name each time) whose secretary has no account."""
    n = next(IMPORTS)
    return ("名称,类型,上级组织,街镇,党员人数,书记姓名,书记电话\n"
            f"新虹街道机关第一党支部,党支部,,新虹街道,{30 + n},王建国,13900010000\n"
            f"华漕镇测试导入第{n}党支部,党支部,,华漕镇,12,赵敏,1390002{n:04d}\n").encode()


def import_preview(page, base: str, scene: dict) -> None:
    page.goto(base + "/admin/organisations/import")
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "organisations.csv", "mimeType": "text/csv", "buffer": import_csv()}])
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/admin/organisations/import")
    page.locator("main form[action$='/import/confirm']").wait_for()


def import_done(page, base: str, scene: dict) -> None:
    import_preview(page, base, scene)
    page.locator("input[name=invite_secretaries]").check()  # the new secretary's one-time password is listed
    page.locator("main form[action$='/import/confirm'] button[type=submit]").click()
    page.wait_for_url("**/admin/organisations/import/confirm")
    page.locator("#invitations").wait_for()


def password_issued(page, base: str, scene: dict) -> None:
    page.goto(base + f"/admin/accounts/{scene['other_user']}/edit")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("form[action$='/reset-password'] button").click()
    page.wait_for_url("**/reset-password")


def feedback_form(page, base: str, scene: dict) -> None:
    """The rating form of a session sec1's branch attended (the scene's past slot), from 待评价."""
    page.goto(base + "/bookings")
    page.locator("#awaiting-feedback a").first.click()
    page.wait_for_url("**/bookings/*")
    page.locator("#booking-feedback form").wait_for()


def feedback_refused(page, base: str, scene: dict) -> None:
    """The rating form sent without a rating: 422, the message at the fieldset (nothing is stored)."""
    feedback_form(page, base, scene)
    page.locator("#booking-feedback button[type=submit]").click()
    page.locator("#booking-feedback [role=alert]").first.wait_for()
    page.wait_for_timeout(100)


# States reached by a POST: (roles, action(page, base, scene), name).
EXTRA_ACTIONS = [
    (("secretary",), feedback_form, "rating form"),
    (("secretary",), feedback_refused, "rating refused"),
    (("anon",), failed_login, "login refused"),
    (("admin",), import_preview, "import preview"),
    (("admin",), import_done, "import done"),
    (("admin",), password_issued, "one-time password shown"),
]

# Forms sent with their text fields emptied (the browser's own checks off, as a user of an old
# browser or a script would): the answer shows the field errors. Checked at phone width only (the
# same markup as the page itself at both widths; this keeps the run short).
FORM_ERRORS = {
    "secretary": ["booking.slot", "accounts.change_password", "booking.move"],
    "host": ["host.new_slot", "host.new_series"],
    "admin": ["catalogue.new_station", "catalogue.new_campaign", "catalogue.new_package", "catalogue.new_quota",
              "directory.new_organisation", "directory.new_account", "directory.import_organisations",
              "accounts.change_password"],
}
SUBMIT_EMPTY = """() => {
  const forms = [...document.querySelectorAll('main form')].filter(f => f.method === 'post');
  const form = forms.sort((a, b) => b.elements.length - a.elements.length)[0];
  for (const el of form.elements) {
    if (el.tagName === 'TEXTAREA' || ['text', 'number', 'tel', 'email', 'password', 'date', 'time', 'search']
        .includes(el.type)) el.value = '';
  }
  form.noValidate = true;
  form.requestSubmit();
}"""


def submit_empty(page, base: str, path: str) -> int:
    page.goto(base + path)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.evaluate(SUBMIT_EMPTY)
    page.wait_for_load_state()
    page.locator("main [role=alert]").first.wait_for()
    page.wait_for_timeout(100)  # htmx settles the swapped content
    return answer.value.status


def get_routes(app) -> dict[str, str]:
    """Endpoint → rule of every GET route of the application (not those a test adds to the
    session's app, such as tests/test_accounts.py's /_probe/… guards)."""
    return {r.endpoint: r.rule for r in app.url_map.iter_rules()
            if "GET" in r.methods and not _added_by_a_test(app, r.endpoint)}


def _added_by_a_test(app, endpoint: str) -> bool:
    view = app.view_functions.get(endpoint)
    return getattr(view, "__module__", "").startswith("tests.")


def unvisited_routes(app) -> list[str]:
    """GET routes that are neither a page some role reaches (OK in the matrix, parameters known)
    nor listed in NOT_PAGES."""
    problems = []
    for endpoint, rule in sorted(get_routes(app).items()):
        if endpoint in NOT_PAGES:
            continue
        entry = ROUTES.get(("GET", rule))
        if entry is None:
            problems.append(f"{rule}: no entry in test_authz_matrix.ROUTES")
            continue
        if not any(entry.expected[column] == OK for _, column in ROLES.values()):
            problems.append(f"{rule}: no role reaches it; list it in NOT_PAGES with the reason")
        for name in re.findall(r"<(?:\w+:)?(\w+)>", rule):
            if name not in {**PARAMS, **ENDPOINT_PARAMS.get(endpoint, {})}:
                problems.append(f"{rule}: which object of the scene does <{name}> name? (PARAMS)")
    return problems


def test_every_get_route_is_visited_or_listed(app):
    """A new page cannot be missed silently: every GET route is visited or listed with a reason."""
    assert not unvisited_routes(app), "\n".join(unvisited_routes(app))
    assert set(NOT_PAGES) <= set(get_routes(app)), "NOT_PAGES lists a route that is gone"


def test_a_new_route_is_noticed(app):
    from app import create_app

    other = create_app({**app.config, "SERVER_NAME": "localhost"})
    def notes(note_id):
        return ""

    notes.__module__ = "blueprints.host.routes"  # as if the application had it, not a test
    other.add_url_rule("/host/notes/<int:note_id>", "host.notes", notes)
    assert unvisited_routes(other) == ["/host/notes/<int:note_id>: no entry in test_authz_matrix.ROUTES"]


# -- the scene -----------------------------------------------------------------------------------

def build_scene() -> dict:
    """The demo district (three organisations) and, at host1's station, one of each state the
    pages show: a slot sec1 may book, sec1's pending booking, a session today with sec1's confirmed
    group (check-in), a past one with an attended and an unsettled group, messages, a quota."""
    from blueprints.feeds import services as feed_services
    from blueprints.host import checkin

    load_demo(branches=3)
    users = {u.username: u for u in db.session.scalars(db.select(User).where(
        User.username.in_(["sec1", "sec2", "host1", "admin"])))}
    sec1, host1 = users["sec1"], users["host1"]
    organisation, other = sec1.organisation, users["sec2"].organisation
    station = host1.stations[0]
    package = db.session.scalars(db.select(Package).where(Package.stations.contains(station))
                                 .order_by(Package.id)).first()
    now = clock.now()

    def slot(**params):
        return f.create_slot(package=package, station=station, capacity=30, **params)

    scene = {"package": package, "station": station, "campaign": package.campaign or f.create_campaign(),
             "organisation": organisation, "user": sec1, "other_user": users["sec2"]}
    scene["slot"] = slot(starts_at=now + timedelta(days=9, hours=1))
    scene["booked_slot"] = slot(starts_at=now + timedelta(days=10))
    scene["booking"] = f.create_booking(slot=scene["booked_slot"], organisation=organisation,
                                        headcount=max(package.min_group_size, 8), status=BookingStatus.PENDING,
                                        note="需要投影仪")
    scene["today_slot"] = slot(starts_at=now + timedelta(hours=2))
    confirmed = f.create_booking(slot=scene["today_slot"], organisation=organisation,
                                 headcount=max(package.min_group_size, 8))
    scene["confirmed"] = confirmed  # its confirmation: the check-in code on the slot's day
    scene["past_slot"] = slot(starts_at=now - timedelta(days=2))
    f.create_booking(slot=scene["past_slot"], organisation=organisation, headcount=max(package.min_group_size, 8),
                     status=BookingStatus.ATTENDED, attended_headcount=max(package.min_group_size, 8))
    f.create_booking(slot=scene["past_slot"], organisation=other, headcount=max(package.min_group_size, 6))
    scene["quota"] = Quota(organisation=organisation, category=Category.THEORY, period=QuotaPeriod.YEAR,
                           max_bookings=50)
    db.session.add(scene["quota"])
    for user in users.values():
        db.session.add(Notification(user_id=user.id, booking_id=scene["booking"].id, kind="booking_confirmed",
                                    params={}))
    feed_services.subscriptions_for(sec1)
    feed_services.subscriptions_for(host1)
    db.session.commit()
    values = {name: str(obj.id) for name, obj in scene.items()}
    values["checkin_token"] = checkin.checkin_token(confirmed)
    return values


def pages_for(app, role: str, scene: dict) -> list[tuple[str, str, int]]:
    """(name, path, expected status) of every page ``role`` reaches."""
    column = ROLES[role][1]
    pages = []
    for endpoint, rule in sorted(get_routes(app).items(), key=lambda item: item[1]):
        entry = ROUTES.get(("GET", rule))
        if endpoint in NOT_PAGES or entry is None or entry.expected[column] != OK:
            continue
        names = {**PARAMS, **ENDPOINT_PARAMS.get(endpoint, {})}
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: scene[names[m.group(1)]], rule)
        pages.append((endpoint, path, 200))
    for roles, path, status, name in EXTRA:
        if role in roles:
            pages.append((name, path.format(**scene), status))
    return pages


# -- checks in the page --------------------------------------------------------------------------

RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ['violations']});
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' — '
      + (n.failureSummary || '').split('\\n').slice(1, 3).join(' ').trim()),
    count: v.nodes.length,
  }));
}"""

# Every navigation item (link or button) in the header, once its fold is open, and in the pages' own
# navigation (sections, directory, breadcrumbs, pages); a destination counts as reachable when one
# visible item leading there lies fully within the screen's width (the page scrolls vertically,
# never sideways). The fold's own 导航 control is no destination: it shows only where it folds.
NAVIGATION = """() => {
  const items = document.querySelectorAll(
    '.site-header a[href], .site-header button, nav a[href], .admin-nav a[href]');
  const seen = new Map();
  for (const el of items) {
    const key = el.tagName === 'A' ? el.getAttribute('href')
      : 'button ' + (el.form ? el.form.getAttribute('action') : '') + ' ' + el.name + '=' + el.value;
    const r = el.getBoundingClientRect();  // in page coordinates: where a sideways scroll would take it
    const left = r.left + window.scrollX, right = r.right + window.scrollX;
    const shown = r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
    const fits = left >= -0.5 && right <= window.innerWidth + 0.5;
    const label = el.textContent.trim().replace(/\\s+/g, ' ') || el.getAttribute('aria-label') || key;
    const now = seen.get(key) || {label, ok: false, why: ''};
    if (shown && fits) now.ok = true;
    else if (!now.ok) now.why = shown ? `cut off (${Math.round(left)}–${Math.round(right)} px)` : 'hidden';
    seen.set(key, now);
  }
  return [...seen.entries()].filter(([, v]) => !v.ok).map(([k, v]) => `${v.label} (${k}): ${v.why}`);
}"""


def open_navigation(page) -> bool:
    """Open the header's folded navigation (a <details>) if this width folds it."""
    summary = page.locator(".nav-menu > summary")
    if summary.count() and summary.is_visible():
        if page.locator(".nav-menu[open]").count() == 0:
            summary.click()
        return True
    return False


def check(page, label: str, found: list[str]) -> None:
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    for v in page.evaluate(RUN_AXE):
        nodes = "\n      ".join(v["nodes"]) + ("\n      …" if v["count"] > 5 else "")
        found.append(f"{label}: {v['id']} ({v['impact']}, {v['count']}×) {v['help']}\n      {nodes}")


def walk(app, browser, base: str, role: str, scene: dict) -> tuple[list[str], list[str], list[str]]:
    """Visit every page of ``role`` at both widths in one context (logged in once): answers that
    were not the page expected, axe's violations, navigation items out of reach on a phone."""
    context = browser.new_context(viewport=PHONE, bypass_csp=True)
    context.add_init_script(path=str(AXE))  # in every document, before its own scripts
    page = context.new_page()
    page.set_default_timeout(15_000)
    wrong, violations, unreachable = [], [], []
    try:
        if ROLES[role][0]:
            browser_login(page, base, ROLES[role][0], "partyday")
        pages = pages_for(app, role, scene)
        for viewport in VIEWPORTS:
            page.set_viewport_size(viewport)
            width = f"{viewport['width']}px"
            for name, path, status in pages:
                response = page.goto(base + path)
                if response.status != status or "text/html" not in response.headers.get("content-type", ""):
                    wrong.append(f"{path}: {response.status} {response.headers.get('content-type')}, expected {status}")
                    continue
                label = f"{role} {path} [{name}] @{width}"
                check(page, label, violations)
                if viewport is PHONE:
                    if open_navigation(page) and path == "/":  # the unfolded navigation itself, once
                        check(page, label + " navigation open", violations)
                    unreachable += [f"{label}: {item}" for item in page.evaluate(NAVIGATION)]
            for name, action in [(n, a) for roles, a, n in EXTRA_ACTIONS if role in roles]:
                action(page, base, scene)
                check(page, f"{role} {page.url.removeprefix(base)} [{name}] @{width}", violations)
            if viewport is PHONE:
                paths = {name: path for name, path, _ in pages}
                for endpoint in FORM_ERRORS.get(role, []):
                    status = submit_empty(page, base, paths[endpoint])
                    if not 400 <= status < 500:
                        wrong.append(f"{role} {paths[endpoint]} sent empty: {status}, expected a refusal")
                    check(page, f"{role} {paths[endpoint]} [{endpoint} sent empty] @{width}", violations)
    finally:
        context.close()
    return wrong, violations, unreachable


@pytest.mark.browser
@pytest.mark.slow
def test_axe_finds_no_violation_and_navigation_is_reachable(app, live_server, browser):
    """One scene for all roles (the demo district with its history takes seconds to load); each
    role in its own browser context, the administrator last (it resets a password and imports)."""
    scene = build_scene()
    wrong, violations, unreachable = [], [], []
    for role in ROLES:
        started = time.monotonic()
        found = walk(app, browser, live_server.url, role, scene)
        for total, more in zip((wrong, violations, unreachable), found):
            total += more
        print(f"{role}: {len(pages_for(app, role, scene))} pages × {len(VIEWPORTS)} widths, "
              f"{time.monotonic() - started:.1f} s")
    assert not wrong, "pages that did not answer as expected:\n" + "\n".join(wrong)
    assert not violations, f"axe-core {AXE_VERSION} found {len(violations)} violations:\n" + "\n".join(violations)
    assert not unreachable, "navigation items out of reach at 390 px:\n" + "\n".join(unreachable)


@pytest.mark.browser
def test_the_checks_can_fail(browser):
    """The machinery itself: axe reports a known violation, and an item beyond the screen's edge
    or hidden is reported unreachable while a duplicate link that fits makes its address reachable."""
    context = browser.new_context(viewport=PHONE, bypass_csp=True)
    page = context.new_page()
    try:
        page.set_content('<!doctype html><html lang="zh-CN"><head><title>t</title></head><body><main>'
                         '<h1>测试</h1><img src="data:,"><nav aria-label="n">'
                         '<a href="/far" style="margin-left:500px">远</a><a href="/hidden" hidden>藏</a>'
                         '<a href="/twice" hidden>一</a><a href="/twice">二</a></nav></main></body></html>')
        found: list[str] = []
        check(page, "test page", found)
        assert len(found) == 1 and found[0].startswith("test page: image-alt (critical, 1×)"), found
        unreachable = page.evaluate(NAVIGATION)
        assert sorted(unreachable) == ["藏 (/hidden): hidden", "远 (/far): cut off (508–524 px)"], unreachable
    finally:
        context.close()
