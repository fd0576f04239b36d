"""The themed Party-day service menu."""
from __future__ import annotations

import json
from collections import namedtuple
from urllib.parse import urlencode

from flask import Blueprint, current_app, render_template, request, url_for
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from blueprints.catalog.models import Category
from blueprints.core import changes, render_cache
from blueprints.core.i18n import select_locale
from blueprints.core.page_cache import render_public

from .forms import MenuFilterForm
from .queries import FilterOptions, MenuFilters, filter_options, menu_page

bp = Blueprint("menu", __name__)
STATION_FIELD = "menu/_station_field.html"  # its choices follow the subdistrict, so htmx refreshes it
CARD = "menu/_card.html"
Choice = namedtuple("Choice", "id name")
# The menu's arguments; the page is a function of these alone (anything else is ignored).
ARGS = ("q", "category", "subdistrict", "station", "campaign", "date_from", "date_to", "available", "page")


def _args() -> MultiDict:
    return MultiDict([(name, value) for name in ARGS for value in request.args.getlist(name) if value])


def _int_arg(args: MultiDict, name: str) -> int | None:
    value = args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


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
    after a booking only the card showing that slot is rendered again."""
    locale = select_locale()
    items = []
    for package in result.pagination.items:
        slots = result.slots_by_package.get(package.id, [])

        def build(recording, package=package, slots=slots):
            if recording is not None:
                recording.changes_at(*(slot.starts_at for slot in slots))
            return render_template(CARD, package=package, slots=slots,
                                   availability=result.availability).encode(), {}

        items.append((("menu-card", locale, package.id, tuple(slot.id for slot in slots)),
                      [changes.slot(slot.id) for slot in slots], build))
    bodies = render_cache.cached_many(items, recording)
    return {package.id: Markup(body.decode()) for package, (body, _) in zip(result.pagination.items, bodies)}


def _menu_context(recording, args: MultiDict) -> dict:
    options = _filter_options(args.get("subdistrict", ""), _int_arg(args, "station"))
    form = MenuFilterForm(args, options=options)
    status = 200
    if args and not form.validate():
        filters = MenuFilters()
        status = 422
    else:
        filters = _filters_from(form)
    page = args.get("page", 1, type=int) or 1
    result = menu_page(filters, max(page, 1), current_app.config["PAGE_SIZE"])
    if recording is not None:
        slots = [slot for group in result.slots_by_package.values() for slot in group]
        recording.depend_on(*(changes.slot(slot.id) for slot in slots))  # their places left
        recording.changes_at(*(slot.starts_at for slot in slots))  # a slot that starts leaves the menu
    page_args = {k: v for k, v in args.items() if k != "page"}
    return {"status": status, "form": form, "result": result, "cards": _cards(result, recording), "page_args": page_args,
            "oob_station": True}


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
                         fragment="results", oob=[STATION_FIELD],
                         path=url_for("menu.index") + (f"?{query}" if query else ""))
