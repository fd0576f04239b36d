"""Bad input, property-based: arbitrary text, numbers, dates, oversized and malformed values.

Every form (field names taken from its WTForms class, plus the few raw fields a route reads)
and every query parameter of the booking, menu, host, feeds, account and admin routes is posted
as the role that may use it, starting from valid data and replacing any subset of the fields
with values hypothesis draws: arbitrary Unicode, NUL bytes, invalid UTF-8 percent-escapes,
numbers far beyond 64 bits, negative numbers, impossible dates (2026-02-30), 100 kB strings.
The answer is never a 500, and when the request is refused (anything but 2xx or a redirect
after success) not one row of the database has changed. URL parameters get the same treatment
in ``test_url_parameters_survive_bad_values``.

The dataset is the authorisation matrix's ``World``; it is rebuilt only after a request that
changed something, so hypothesis' examples share the function-scoped fixtures safely (hence
the suppressed ``function_scoped_fixture`` health check).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprints.accounts.forms import ChangePasswordForm, LoginForm
from blueprints.admin.forms import StatsFilterForm
from blueprints.booking.forms import BookingForm, CancelForm, HeadcountForm
from blueprints.host.forms import (CapacityForm, CheckInForm, DeclineForm, EditSlotForm, ReasonForm, SeriesForm,
                                   SlotForm)
from blueprints.menu.forms import MenuFilterForm

from .test_authz_matrix import (ACCOUNT_FORM, CAMPAIGN_FORM, ORGANISATION_FORM, PACKAGE_FORM,  # noqa: F401
                                QUOTA_FORM, ROUTES, STATION_FORM, SUCCESS, World, classify, client_as,
                                fast_passwords, fill, fresh_world, routes_in_url_map, snapshot)

FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    # The examples share the test's fixtures on purpose: Scene rebuilds the data when needed.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
    derandomize=False,
)

SPECIAL = [
    "", " ", "\x00", "a\x00b", "0", "-1", "-0", "+5", "1e309", "NaN", "inf", "0x10", "1_000", "３",
    "٣", "9" * 40, "-" + "9" * 40, "2147483648", "9223372036854775808", "-9223372036854775809",
    "2026-02-30", "2026-13-01", "2026-00-10", "0000-00-00", "0001-01-01", "9999-12-31", "10000-01-01",
    "2026/11/30", "30.11.2026", "2026-11-30T10:00", "24:00", "23:60", "25:61", "9:5", "09:00", "-09:00",
    "09:00,14:00", "09：00，14：00", "１０:００", "<script>alert(1)</script>", "' OR 1=1 --", "%00",
    "\ud7ff", "\u202e", "\ufeff", "null", "None", "true", "[]", "{}",
]
OVERSIZED = ["x" * 100_000, "党" * 35_000, "\x00" * 1000]
# bytes stand for raw (possibly invalid UTF-8) percent-escapes such as %FF%FE
NASTY = st.one_of(
    st.text(max_size=40),
    st.sampled_from(SPECIAL),
    st.integers(min_value=-(10 ** 40), max_value=10 ** 40).map(str),
    st.integers(min_value=-5, max_value=10_005).map(str),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
    st.floats().map(str),
    st.binary(min_size=1, max_size=12),
    st.sampled_from(OVERSIZED),
)


def fields_of(form_class) -> list[str]:
    return [name for name in form_class(formdata=None, meta={"csrf": False})._fields if name != "csrf_token"]


def _form(feature: str, name: str):
    """A form class of a feature that may still be missing (features arrive in parallel)."""
    from importlib import import_module

    try:
        return getattr(import_module(f"blueprints.{feature}.forms"), name)
    except (ImportError, AttributeError):
        return None


@dataclass(frozen=True)
class Target:
    method: str
    path: str  # "{booking}" etc. are filled from the World
    role: str
    valid: dict[str, str]  # a valid request; hypothesis replaces any subset of its values
    form: type | None = None  # the WTForms class whose fields are fuzzed (besides ``valid``'s keys)
    extra: tuple[str, ...] = field(default=())

    @property
    def fields(self) -> list[str]:
        names = list(self.valid) + list(self.extra)
        if self.form is not None:
            names += fields_of(self.form)
        return sorted(set(names))

    def __str__(self) -> str:
        return f"{self.method} {self.path} as {self.role}"


STATS_QUERY = {"date_from": "{day_in_0}", "date_to": "{day_in_40}", "campaign": "", "station": "", "subdistrict": ""}

TARGETS = [
    # -- menu and booking -------------------------------------------------------------------
    Target("GET", "/", "anon", {"q": "党课", "category": "theory", "station": "", "subdistrict": "",
                                "campaign": "", "date_from": "{day_in_0}", "date_to": "{day_in_40}", "available": "1",
                                "page": "1"}, MenuFilterForm),
    Target("GET", "/", "sec_a", {"page": "2"}, MenuFilterForm),
    Target("GET", "/packages/{package}", "anon", {"page": "1"}),
    Target("GET", "/bookings", "sec_a", {"page": "1"}),
    Target("GET", "/notifications", "sec_a", {"page": "1"}),
    Target("POST", "/slots/{slot_y}/book", "sec_a",
           {"headcount": "5", "contact_name": "李书记", "contact_phone": "13800000000", "note": "带横幅"},
           BookingForm, ("waitlist",)),
    Target("POST", "/bookings/{booking}/headcount", "sec_a", {"headcount": "12"}, HeadcountForm),
    Target("POST", "/bookings/{booking}/cancel", "sec_a", {"reason": "时间冲突"}, CancelForm),
    # -- accounts and language --------------------------------------------------------------
    Target("POST", "/login", "anon", {"username": "matrix_sec_a", "password": "wrong"}, LoginForm,
           ("next",)),
    Target("POST", "/account/password", "sec_a",
           {"current_password": "wrong", "new_password": "a new long passphrase", "confirm_password": "x"},
           ChangePasswordForm),
    Target("POST", "/lang", "anon", {"lang": "en", "next": "/"}),
    # -- hosts ------------------------------------------------------------------------------
    Target("GET", "/host/", "host_x", {"page": "1"}),
    Target("GET", "/host/approvals", "host_x", {"page": "1"}),
    Target("POST", "/host/slots/new", "host_x",
           {"station": "{station_x}", "package": "{package}", "day": "{day_in_10}", "start": "09:00", "end": "11:00",
            "capacity": "20", "max_groups": "", "note": ""}, SlotForm),
    Target("POST", "/host/series/new", "host_x",
           {"station": "{station_x}", "package": "{package}", "kind": "weekly", "weekdays": "2", "week_of_month": "1",
            "weekday": "0", "first_day": "{day_in_10}", "last_day": "{day_in_40}", "times": "09:00",
            "duration_minutes": "120", "capacity": "20", "max_groups": "", "note": "", "action": "preview"},
           SeriesForm, ("keep_holidays",)),
    Target("POST", "/host/series/new", "host_x",
           {"station": "{station_x}", "package": "{package}", "kind": "monthly", "week_of_month": "-1",
            "weekday": "4", "first_day": "{day_in_10}", "last_day": "{day_in_40}", "times": "09:00, 14:00",
            "duration_minutes": "90", "capacity": "20", "action": "save"}, SeriesForm, ("keep_holidays",)),
    Target("POST", "/host/slots/{slot}/edit", "host_x",
           {"day": "{day_in_7}", "start": "14:00", "end": "16:00", "capacity": "25", "max_groups": "", "note": "改期"},
           EditSlotForm),
    Target("POST", "/host/slots/{slot}/capacity", "host_x", {"capacity": "40"}, CapacityForm),
    Target("POST", "/host/slots/{slot}/cancel", "host_x", {"reason": "场地临时关闭"}, ReasonForm),
    Target("POST", "/host/bookings/{booking}/decline", "host_x", {"reason": "当天场地检修"}, DeclineForm),
    Target("POST", "/host/check-in/{checkin_token}", "host_x", {"attended_headcount": "8"}, CheckInForm),
    Target("GET", "/host/stats", "host_x", STATS_QUERY, StatsFilterForm),
    Target("GET", "/host/stats/stations.xlsx", "host_x", STATS_QUERY, StatsFilterForm),
    # -- feeds ------------------------------------------------------------------------------
    Target("POST", "/account/calendar/reset", "sec_a", {"feed": "organisation-{org_a}"}),
    # -- admin ------------------------------------------------------------------------------
    Target("GET", "/admin/stats", "admin", STATS_QUERY, StatsFilterForm),
    Target("GET", "/admin/stats/coverage.xlsx", "admin", STATS_QUERY, StatsFilterForm),
    Target("GET", "/admin/stats/uncovered.xlsx", "admin", STATS_QUERY, StatsFilterForm),
    # catalogue (blueprints/catalogue) and directory (blueprints/directory); forms as in the matrix
    Target("POST", "/admin/stations/new", "admin", {**STATION_FORM, "name": "新站"}, _form("catalogue", "StationForm")),
    Target("POST", "/admin/stations/{station_x}", "admin", STATION_FORM, _form("catalogue", "StationForm")),
    Target("POST", "/admin/stations/{station_x}/active", "admin", {"active": "0"}, extra=("next",)),
    Target("POST", "/admin/campaigns/new", "admin", {**CAMPAIGN_FORM, "name": "新主题活动"},
           _form("catalogue", "CampaignForm")),
    Target("POST", "/admin/packages/new", "admin", PACKAGE_FORM, _form("catalogue", "PackageForm")),
    Target("POST", "/admin/packages/{package}", "admin", PACKAGE_FORM, _form("catalogue", "PackageForm")),
    Target("POST", "/admin/quotas/new", "admin", QUOTA_FORM, _form("catalogue", "QuotaForm")),
    Target("POST", "/admin/quotas/{quota}", "admin", {**QUOTA_FORM, "organisation": "矩阵测试A支部"},
           _form("catalogue", "QuotaForm")),
    Target("GET", "/admin/stations", "admin", {"q": "站", "status": "active", "page": "1"}),
    Target("GET", "/admin/packages", "admin", {"q": "包", "category": "theory", "campaign": "", "status": "",
                                                "page": "1"}),
    Target("GET", "/admin/quotas", "admin", {"q": "支部", "category": "", "page": "1"}),
    Target("GET", "/admin/quotas/organisations", "admin", {"organisation": "矩阵"}),
    Target("GET", "/admin/audit", "admin", {"page": "1"}, _form("catalogue", "AuditFilterForm")),
    Target("POST", "/admin/organisations/new", "admin", ORGANISATION_FORM, _form("directory", "OrganisationForm")),
    Target("POST", "/admin/organisations/{org_a}/edit", "admin", {**ORGANISATION_FORM, "name": "矩阵测试A支部"},
           _form("directory", "OrganisationForm")),
    Target("GET", "/admin/organisations", "admin", {"q": "支部", "kind": "", "subdistrict": "", "parent": "",
                                                     "status": "active", "page": "1"}),
    Target("GET", "/admin/organisations/suggest", "admin", {"q": "矩阵"}, extra=("parent", "organisation")),
    Target("GET", "/admin/organisations/export.csv", "admin", {"q": "支部", "status": "all"}),
    Target("POST", "/admin/organisations/import/confirm", "admin", {"rows": "x", "invite_secretaries": "y"}),
    Target("POST", "/admin/accounts/new", "admin", {**ACCOUNT_FORM, "username": "fuzz_new"},
           _form("directory", "AccountForm"), ("stations",)),
    Target("POST", "/admin/accounts/{sec_a}/edit", "admin", {**ACCOUNT_FORM, "organisation": "矩阵测试A支部"},
           _form("directory", "AccountForm"), ("stations",)),
    Target("GET", "/admin/accounts", "admin", {"q": "matrix", "role": "", "status": "all", "page": "1"}),
]


# Targets whose starting point is a refusal: a wrong password, an unsigned import preview.
REFUSED_ON_PURPOSE = {"/login", "/account/password", "/admin/organisations/import/confirm"}


class Scene:
    """The World, rebuilt lazily after a request that changed something."""

    def __init__(self):
        self.world: World | None = None

    def get(self) -> World:
        if self.world is None:
            self.world = fresh_world()
        return self.world

    def changed(self) -> None:
        self.world = None


@pytest.fixture
def scene(app, frozen_now, fast_passwords):  # noqa: F811
    return Scene()


def encode(pairs: dict[str, str | bytes]) -> str:
    """application/x-www-form-urlencoded; bytes values become raw percent-escapes (%FF …)."""
    return urlencode(list(pairs.items()))


def send(app, world: World, target: Target, values: dict[str, str | bytes]):
    client = client_as(app, world.user(target.role))
    path = fill(target.path, world)
    body = encode(values)
    if target.method == "GET":
        return client.get(f"{path}?{body}")
    return client.post(path, data=body, content_type="application/x-www-form-urlencoded")


def check(scene: Scene, app, target: Target, values: dict, htmx: bool = False):
    world = scene.get()
    filled = {k: fill(v, world) if isinstance(v, str) else v for k, v in values.items()}
    before = snapshot()
    response = send(app, world, target, filled)
    shown = {k: (v[:40] + f"… ({len(v)} chars)" if len(v) > 60 else v) for k, v in filled.items()}
    assert response.status_code < 500, f"{target} with {shown!r} answered {response.status_code}"
    after = snapshot()
    if after != before:
        scene.changed()
        assert classify(response) in SUCCESS, (
            f"{target} with {shown!r} was refused ({response.status_code}) but changed the database")
    return response


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_valid_request_of_each_target_is_not_refused(scene, app, target):
    """The starting point of the fuzzing is valid, so that mutations near it reach deep code."""
    response = check(scene, app, target, dict(target.valid))
    assert classify(response) in SUCCESS or target.path in REFUSED_ON_PURPOSE, (target, response.status_code)


@pytest.mark.parametrize("target", TARGETS, ids=str)
@FUZZ_SETTINGS
@given(data=st.data())
def test_forms_and_queries_survive_bad_input(scene, app, target, data):
    fields = target.fields
    bad = data.draw(st.dictionaries(st.sampled_from(fields), NASTY, min_size=1, max_size=len(fields)),
                    label="bad values")
    values = {**target.valid, **bad}
    check(scene, app, target, values)


# -- URL parameters ------------------------------------------------------------------------------

def _allowed_role(entry) -> str:
    for role in ("sec_a", "host_x", "admin", "anon"):
        if entry.expected[role] in SUCCESS:
            return role
    return "admin"


PATH_VALUES = {
    "int": st.one_of(st.integers(min_value=0, max_value=10 ** 40).map(str), st.sampled_from(
        ["0", "2147483647", "2147483648", "9223372036854775807", "9223372036854775808", "9" * 100])),
    "default": st.one_of(
        st.text(min_size=1, max_size=80).filter(lambda s: "/" not in s),
        st.sampled_from(["\x00", "a\x00b", "%00", "..", "x" * 10_000, "categories\x00", "eyJiIjoxfQ"]),
        st.binary(min_size=1, max_size=12),
    ),
}


def _with_arguments():
    return sorted((m, p) for m, p in ROUTES if "<" in p)


@pytest.mark.parametrize(("method", "rule_text"), _with_arguments(), ids=[f"{m} {p}" for m, p in _with_arguments()])
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_url_parameters_survive_bad_values(scene, app, method, rule_text, data):
    from urllib.parse import quote

    rule = routes_in_url_map(app).get((method, rule_text))
    if rule is None:
        return
    entry = ROUTES[(method, rule_text)]
    role = _allowed_role(entry)
    path = rule_text
    for name in sorted(rule.arguments):
        converter = type(rule._converters[name]).__name__
        strategy = PATH_VALUES["int"] if converter == "IntegerConverter" else PATH_VALUES["default"]
        value = data.draw(strategy, label=name)
        raw = quote(value if isinstance(value, bytes) else value.encode(), safe="")
        path = re.sub(r"<(?:[^:<>]+:)?" + name + r">", raw, path)
    world = scene.get()
    before = snapshot()
    client = client_as(app, world.user(role))
    response = client.open(path, method=method, data={k: fill(v, world) for k, v in entry.data.items()})
    assert response.status_code < 500, f"{method} {path} as {role} answered {response.status_code}"
    if snapshot() != before:
        scene.changed()
        assert classify(response) in SUCCESS, f"{method} {path} as {role} was refused but changed the database"


# -- what the fuzzing found (blueprints/core/input_guard.py) -----------------------------------

def test_nul_character_is_refused_with_a_chinese_message_and_nothing_changes(scene, app):
    world = scene.get()
    before = snapshot()
    client = client_as(app, world.user("sec_a"))
    response = client.post(f"/bookings/{world.ids['booking']}/cancel", data={"reason": "有事\x00"})
    assert response.status_code == 400
    assert "空字符" in response.get_data(as_text=True)
    fragment = client.post(f"/bookings/{world.ids['booking']}/headcount", data={"headcount": "5\x00"},
                           headers={"HX-Request": "true"})
    assert fragment.status_code == 400 and "<html" not in fragment.get_data(as_text=True)
    assert client.get("/?q=%00").status_code == 400
    assert snapshot() == before


def test_ids_beyond_the_database_integer_are_not_found(scene, app):
    world = scene.get()
    client = client_as(app, world.user("admin"))
    for value in ("2147483647", "2147483648", "9223372036854775808", "9" * 5000):
        assert client.get(f"/bookings/{value}").status_code == 404
        assert client.get(f"/packages/{value}").status_code == 404


def test_absurd_page_numbers_are_not_found(scene, app):
    package = scene.get().ids["package"]
    client = app.test_client()
    assert client.get("/?page=100000").status_code == 200
    assert client.get(f"/packages/{package}?page=100000").status_code == 200
    assert client.get("/?page=461168604419719168").status_code == 404
    assert client.get(f"/packages/{package}?page=" + "9" * 5000).status_code == 404


# -- query strings: Unicode digits and dates the app cannot represent (issue 12, item 6) -------

# str.isdigit() and int() accept all of these; only ASCII digits are numbers in a URL.
UNICODE_DIGITS = ["²", "٣", "１", "１２", "৩", "¹²", "٣٣٣"]
# The first and last days Python's date can hold: a day added or a timezone shift overflows.
EXTREME_DATES = ["0001-01-01", "9999-12-31", "9999-12-30", "0001-01-02"]
QUERY_VALUES = UNICODE_DIGITS + EXTREME_DATES
GET_TARGETS = [target for target in TARGETS if target.method == "GET"]


@pytest.mark.parametrize("target", GET_TARGETS, ids=str)
def test_query_parameters_with_unicode_digits_and_extreme_dates_are_never_a_500(scene, app, target):
    """Each query parameter of each GET route, one at a time, with each value (e.g. ``/?date_to=
    9999-12-31`` was an OverflowError, ``/host/stats?station=²`` a ValueError)."""
    for name in target.fields:
        for value in QUERY_VALUES:
            response = check(scene, app, target, {**target.valid, name: value})
            assert response.status_code in (200, 400, 404, 422), (target, name, value, response.status_code)


@pytest.mark.parametrize("path", ["/", "/host/stats", "/host/stats/stations.xlsx"])
@pytest.mark.parametrize("value", ["9999-12-31", "0001-01-01"])
@pytest.mark.parametrize("name", ["date_from", "date_to"])
def test_dates_the_app_cannot_represent_get_a_form_error_not_a_500(scene, app, path, name, value):
    world = scene.get()
    role = "anon" if path == "/" else "host_x"
    response = client_as(app, world.user(role)).get(f"{path}?{name}={value}")
    assert response.status_code in (400, 422), response.status_code
    if path == "/":  # the menu says which dates it accepts
        assert "2000-01-01" in response.get_data(as_text=True)


@pytest.mark.parametrize("value", UNICODE_DIGITS)
def test_host_stats_station_with_unicode_digits_is_not_a_station(scene, app, value):
    world = scene.get()
    client = client_as(app, world.user("host_x"))
    assert client.get(f"/host/stats?station={value}").status_code == 404
    assert client.get(f"/host/stats/stations.xlsx?station={value}").status_code == 404


@pytest.mark.parametrize("value", UNICODE_DIGITS)
def test_unicode_digits_are_not_numbers_anywhere(scene, app, value):
    """One parser for every number in a URL: ``?page=１`` is not page 1, ``?station=１`` no station."""
    from blueprints.core.params import parse_int

    assert parse_int(value) is None
    assert parse_int("12") == 12 and parse_int("0012") == 12
    for text in ("+5", "-1", " 5", "5 ", "1_000", "", "9" * 11, "2147483648"):
        assert parse_int(text) is None, text
    world = scene.get()
    anon = client_as(app, None)
    page = anon.get(f"/?station={value}")
    assert page.status_code == 422  # not a station of the list: the form says so


# -- JSON bodies on every POST ------------------------------------------------------------------

WRONG_JSON = [b"[]", b'"text"', b"null", b"42", b"{", b'{"a": {"b": [1, 2]}}', b"[1, [2, 3]]"]


def _json_shaped_like(data: dict) -> list[bytes]:
    """The route's own field names with values of every wrong JSON type."""
    import json

    names = list(data) or ["x"]
    return [json.dumps({name: value for name in names}).encode()
            for value in ([1, 2], {"x": 1}, None, 3.5, True, ["a", "b"])]


def _post_routes():
    return sorted((m, p) for m, p in ROUTES if m == "POST")


@pytest.mark.parametrize(("method", "rule_text"), _post_routes(), ids=[f"{m} {p}" for m, p in _post_routes()])
def test_json_bodies_of_the_wrong_shape_are_never_a_500(scene, app, method, rule_text):
    """Forms read HTML form fields only: a JSON body is not a form (Flask-WTF would read it as one
    and hand ints, lists and dicts to fields that expect strings)."""
    from .test_authz_matrix import build_path

    rule = routes_in_url_map(app).get((method, rule_text))
    if rule is None:
        return
    entry = ROUTES[(method, rule_text)]
    role = _allowed_role(entry)
    filled = {k: fill(v, scene.get()) for k, v in entry.data.items()}
    for body in WRONG_JSON + _json_shaped_like(filled):
        world = scene.get()
        before = snapshot()
        client = client_as(app, world.user(role))
        path = build_path(world, rule, entry.args)
        response = client.post(path, data=body, content_type="application/json")
        assert response.status_code < 500, f"{method} {path} as {role} with {body!r} answered {response.status_code}"
        if snapshot() != before:
            scene.changed()
            assert classify(response) in SUCCESS, f"{method} {path} with {body!r} was refused but changed the database"


DATE_TARGETS = [target for target in TARGETS if target.method == "POST"
                and any(str(value).startswith("{day_in_") for value in target.valid.values())]


@pytest.mark.parametrize("target", DATE_TARGETS, ids=str)
def test_posted_dates_at_the_ends_of_the_calendar_are_a_form_error(scene, app, target):
    for name in [k for k, v in target.valid.items() if str(v).startswith("{day_in_")]:
        for value in EXTREME_DATES:
            response = check(scene, app, target, {**target.valid, name: value})
            assert response.status_code == 422, (target, name, value, response.status_code)
            assert "2000-01-01" in response.get_data(as_text=True)
