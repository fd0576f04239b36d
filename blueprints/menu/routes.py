"""The themed Party-day service menu."""
from __future__ import annotations

from flask import Blueprint, current_app, request

from blueprints.catalog.models import Category
from blueprints.core.htmx import render

from .forms import MenuFilterForm
from .queries import MenuFilters, filter_options, menu_page

bp = Blueprint("menu", __name__)
STATION_FIELD = "menu/_station_field.html"  # its choices follow the subdistrict, so htmx refreshes it


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
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


@bp.get("/")
def index():
    options = filter_options(request.args.get("subdistrict", ""), _int_arg("station"))
    form = MenuFilterForm(request.args, options=options)
    status = 200
    if request.args and not form.validate():
        filters = MenuFilters()
        status = 422
    else:
        filters = _filters_from(form)
    page = request.args.get("page", 1, type=int) or 1
    result = menu_page(filters, max(page, 1), current_app.config["PAGE_SIZE"])
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render(
        "menu/index.html", "results", status=status, oob=[STATION_FIELD], form=form, result=result,
        page_args=args, oob_station=True,
    )
