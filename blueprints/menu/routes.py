"""The themed Party-day service menu."""
from __future__ import annotations

import json
from collections import namedtuple
from datetime import date, timedelta
from urllib.parse import urlencode

from flask import Blueprint, current_app, render_template, request, url_for
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from blueprints.catalog.models import Category
from blueprints.core import changes, clock, render_cache
from blueprints.core.i18n import select_locale
from blueprints.core.page_cache import cached_block, render_public
from blueprints.core.params import parse_int

from . import calendar
from .forms import MenuFilterForm
from .queries import (CardData, FilterOptions, MenuFilters, MenuPage, card_data, filter_options, menu_page,
                      menu_page_from_json, menu_page_json, next_matching_start)

bp = Blueprint("menu", __name__)
STATION_FIELD = "menu/_station_field.html"  # its choices follow the subdistrict, so htmx refreshes it
FILTER_COUNT = "menu/_filter_count.html"  # the 筛选 control's count of filters set, refreshed likewise
CARD = "menu/_card.html"
Choice = namedtuple("Choice", "id name")
# The menu's arguments; the page is a function of these alone (anything else is ignored).
ARGS = ("q", "category", "subdistrict", "station", "campaign", "date_from", "date_to", "available", "page")


NUMBERS = ("station", "campaign", "page")
DATES = ("date_from", "date_to")


def _canonical(name: str, value: str) -> str | None:
    """One spelling per value (the cache keys are made of them): numbers and dates written one way,
    the checkbox as "y", page 1 left out. What does not parse is kept as given: the filter form
    refuses it (422), and refused pages are not kept."""
    if name in NUMBERS:
        number = parse_int(value)
        if number is not None:
            value = str(number)
        if name == "page" and number == 1:
            return None
    elif name in DATES:
        try:
            value = date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    elif name == "available":
        value = "y"
    return value


def _args() -> MultiDict:
    """The menu's arguments: the first value of each, in one spelling (see ``_canonical``)."""
    pairs = []
    for name in ARGS:
        value = request.args.get(name, "")
        if value and (value := _canonical(name, value)) is not None:
            pairs.append((name, value))
    return MultiDict(pairs)


def _int_arg(args: MultiDict, name: str) -> int | None:
    return parse_int(args.get(name, ""))


def _filters_from(form: MenuFilterForm) -> MenuFilters:
    return MenuFilters(
        q=(form.q.data or "").strip(),
        category=Category(form.category.data) if form.category.data else None,
        station_id=form.station.data,
        subdistrict=form.subdistrict.data or "",
        campaign_id=form.campaign.data,
        date_from=form.date_from.data,
        date_to=form.date_to.data,
        available_only=bool(form.available.data),
    )


def _filter_options(subdistrict: str, station_id: int | None) -> FilterOptions:
    """The filter form's choices, kept under the global version (stations and campaigns)."""

    def build(recording):
        options = filter_options(subdistrict, station_id)
        return json.dumps([[list(s) for s in options.stations], options.subdistricts,
                           [list(c) for c in options.campaigns], options.stations_need_subdistrict]).encode(), {}

    body, _ = render_cache.cached(("menu-filter-options", subdistrict, station_id), [], build)
    stations, subdistricts, campaigns, need_subdistrict = json.loads(body)
    return FilterOptions([Choice(*s) for s in stations], subdistricts, [Choice(*c) for c in campaigns],
                         need_subdistrict)


def _cards(result, recording) -> dict[int, Markup]:
    """Each package's card, kept until its package (global version) or one of its slots changes:
    after a booking only the card showing that slot is built again, and only the cards built
    again load their packages and slots."""
    locale = select_locale()
    packages = list(result.pagination.items)
    loaded: list[CardData] = []

    def load(indexes: list[int]) -> None:  # the cards the cache does not hold, in three statements
        missing = [packages[i].id for i in indexes]
        loaded.append(card_data(missing, [slot_id for pid in missing for slot_id, _ in result.listed[pid]]))

    items = []
    for package in packages:
        listed = result.listed.get(package.id, [])

        more = package.id in result.more  # in the key: a card links to more slots or does not

        def build(recording, package_id=package.id, listed=listed, more=more):
            if recording is not None:
                recording.changes_at(*(starts_at for _, starts_at in listed))
            found = loaded[0]
            slots = [found.slots[slot_id] for slot_id, _ in listed]
            return render_template(CARD, package=found.packages[package_id], slots=slots, more_slots=more,
                                   availability=found.availability).encode(), {}

        items.append((("menu-card", locale, package.id, tuple(slot_id for slot_id, _ in listed), more),
                      [changes.slot(slot_id) for slot_id, _ in listed], build))
    bodies = render_cache.cached_many(items, recording, before_building=load)
    return {package.id: Markup(body.decode()) for package, (body, _) in zip(packages, bodies)}


def _menu_page(filters: MenuFilters, page: int, query: str | None) -> MenuPage:
    """Which packages and slots a page lists, kept while no slot is written (and, for "only with
    places left", no booking): after a booking only the card of its slot is built again."""

    def build(recording):
        result = menu_page(filters, page, current_app.config["PAGE_SIZE"])
        if recording is not None:
            recording.changes_at(*(starts_at for group in result.listed.values() for _, starts_at in group))
            if filters.narrows_slots:
                recording.changes_at(next_matching_start(filters))
        return json.dumps(menu_page_json(result)).encode(), {}

    deps = [changes.SLOTS] + ([changes.PLACES] if filters.available_only else [])
    body, _ = render_cache.cached(None if query is None else ("menu-page", query), deps, build)
    return menu_page_from_json(json.loads(body))


def _filter_form(args: MultiDict) -> tuple[MenuFilterForm, bool]:
    """The filter form for these arguments, and whether they are valid."""
    form = MenuFilterForm(args, options=_filter_options(args.get("subdistrict", ""), _int_arg(args, "station")))
    return form, not args or form.validate()


def _active_filters(args: MultiDict) -> int:
    """How many filters the arguments set (the page number is none): the folded filter panel
    opens when there is any, and its 筛选 control says how many."""
    return len({name for name in args if name != "page"})


def _filters_block(args: MultiDict, keep: bool = True) -> Markup:
    """The filter panel as these arguments fill it in, kept under the global version (its
    choices are stations, subdistricts and campaigns): built with its own form, from options
    read after the versions it is kept under."""
    shown = MultiDict([(k, v) for k, v in args.items(multi=True) if k != "page"])

    def build(recording):
        form, _ = _filter_form(shown)
        return {"form": form, "active_filters": _active_filters(shown)}

    parts = ("menu-filters", urlencode(list(shown.items(multi=True)))) if keep else None  # refused: not kept
    return cached_block("menu/index.html", "filters", parts=parts, deps=[], build=build)


def _menu_context(recording, args: MultiDict) -> dict:
    form, valid = _filter_form(args)
    status = 200
    if not valid:
        filters = MenuFilters()
        status = 422
    else:
        filters = _filters_from(form)
    page = max(_int_arg(args, "page") or 1, 1)
    result = _menu_page(filters, page, query=None if filters.q or not valid else urlencode(list(args.items(multi=True))))
    if recording is not None:
        listed = [slot for group in result.listed.values() for slot in group]
        recording.depend_on(*(changes.slot(slot_id) for slot_id, _ in listed))  # their places left
        recording.changes_at(*(starts_at for _, starts_at in listed))  # a slot that starts leaves the menu
        if filters.narrows_slots:  # and packages of other pages may leave, changing the count
            recording.changes_at(next_matching_start(filters))
    page_args = {k: v for k, v in args.items() if k != "page"}
    return {"status": status, "form": form, "result": result, "cards": _cards(result, recording), "page_args": page_args,
            "oob_station": True, "oob_count": True, "active_filters": _active_filters(args), "cached_blocks": {"filters": _filters_block(args, keep=valid)}}


@bp.get("/")
def index():
    # Which packages and slots are listed changes with any slot, and with any booking where only
    # slots with places left are listed; the places shown follow each listed slot.
    args = _args()
    deps = [changes.SLOTS] + ([changes.PLACES] if args.get("available") else [])
    query = urlencode(list(args.items(multi=True)))
    # Free-text searches are a long tail: each would be kept once and rarely asked again.
    parts = None if args.get("q") else ("menu", query)
    return render_public("menu/index.html", parts=parts, deps=deps, build=lambda r: _menu_context(r, args),
                         fragment="results", oob=[STATION_FIELD, FILTER_COUNT],
                         path=url_for("menu.index") + (f"?{query}" if query else ""))


# -- the date-first calendar (/calendar) ----------------------------------------------------------

CALENDAR_ARGS = ("category", "subdistrict", "station", "campaign")  # the menu's filters it takes


def _calendar_args() -> MultiDict:
    """The calendar's filters in the menu's spelling (``_canonical``); anything else is ignored."""
    pairs = []
    for name in CALENDAR_ARGS:
        value = request.args.get(name, "")
        if value and (value := _canonical(name, value)) is not None:
            pairs.append((name, value))
    return MultiDict(pairs)


def _calendar_context(recording, args: MultiDict, period, period_error, today: date) -> dict:
    form, valid = _filter_form(args)
    filters = _filters_from(form) if valid else MenuFilters()
    view = calendar.open_slots(period, filters)
    if recording is not None:
        recording.changes_at(*view.shown_starts)  # a slot that starts leaves the calendar
        recording.changes_at(clock.local_datetime(today + timedelta(days=1), 0))  # "today" moves
    return {"status": 422 if period_error or not valid else 200, "form": form, "view": view,
            "period_error": period_error, "filter_args": dict(args.items()), "today": today,
            "this_week": calendar.week_of(today), "oob_station": True, "oob_count": True,
            "active_filters": _active_filters(args),
            "day_limit_hit": any(day.hidden for day in view.days)}


@bp.get("/calendar")
def calendar_page():
    """Open slots of one ISO week (``week=2026-W51``, default this week) or month (``month=2026-12``)
    by day, with the menu's filters; htmx gets the ``calendar`` block (and the station field)."""
    args = _calendar_args()
    today = clock.today()
    try:
        period, period_error = calendar.parse_period(request.args.get("week", ""), request.args.get("month", ""),
                                                     today), None
    except calendar.PeriodError as error:
        period, period_error = calendar.week_of(today), error
    query = urlencode([*period.arg.items(), *args.items(multi=True)])
    # Kept per period, filters and day ("today" is marked, and the default week follows it);
    # a bad period is answered, not kept.
    parts = None if period_error else ("calendar", period.value, today.isoformat(), urlencode(list(args.items(multi=True))))
    return render_public("menu/calendar.html", parts=parts, deps=[changes.SLOTS, changes.PLACES],
                         build=lambda r: _calendar_context(r, args, period, period_error, today),
                         fragment="calendar", oob=[STATION_FIELD, FILTER_COUNT], path=url_for("menu.calendar_page") + f"?{query}")
