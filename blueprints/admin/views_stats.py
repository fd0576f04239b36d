"""Statistics pages and their spreadsheets: /admin/stats for admins, /host/stats for hosts."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from flask import abort, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.accounts.guards import admin_required, host_required
from blueprints.catalog.models import Campaign, Station
from blueprints.core import clock, spreadsheets
from blueprints.core.extensions import db
from blueprints.core.htmx import render
from blueprints.core.params import parse_int

from . import charts, stats as stats_module
from .blueprint import bp, host_stats_bp
from .forms import StatsFilterForm
from .xlsx import ratio

TABLES = ("categories", "stations", "weeks", "attendance", "coverage", "uncovered", "ratings_stations",
          "ratings_packages", "ratings")


def _options(station_ids):
    query = sa.select(Station).order_by(Station.id)
    if station_ids is not None:
        query = query.where(Station.id.in_(station_ids or {-1}))
    stations = db.session.scalars(query).all()
    campaigns = db.session.scalars(sa.select(Campaign).order_by(Campaign.starts_on.desc(), Campaign.id)).all()
    subdistricts = sorted({s.subdistrict for s in stations if s.subdistrict})
    return stations, subdistricts, campaigns


def _filters(station_ids):
    """The form and the filters it asks for; hosts asking for another station get 404."""
    if station_ids is not None:
        asked = request.args.get("station", "")
        if asked and parse_int(asked) not in station_ids:
            abort(404)
    stations, subdistricts, campaigns = _options(station_ids)
    form = StatsFilterForm(request.args, stations=stations, subdistricts=subdistricts, campaigns=campaigns)
    start, end = stats_module.default_period()
    valid = not request.args or form.validate()
    if valid:
        start = form.date_from.data or start
        end = form.date_to.data or (stats_module.quarter_of(start)[1] if form.date_from.data else end)
        if end < start:
            end = start
    if not form.date_from.data:
        form.date_from.data = start
    if not form.date_to.data:
        form.date_to.data = end
    filters = stats_module.StatsFilters(
        date_from=start,
        date_to=end,
        campaign_id=form.campaign.data if valid else None,
        station_id=form.station.data if valid else None,
        subdistrict=(form.subdistrict.data or "") if valid else "",
        station_ids=frozenset(station_ids) if station_ids is not None else None,
    )
    return form, filters, valid


def _charts(result):
    """Each chart has one unit and its own scale: booking counts and people never share one."""
    cats = result.categories
    cat_bookings = charts.hbar(
        [charts.Row(str(r.category.label), (r.bookings,), (_("%(n)s bookings", n=r.bookings),)) for r in cats],
        [charts.Series(_("Booked groups"), "a")],
        _("Bookings by category"),
    )
    cat_people = charts.hbar(
        [charts.Row(str(r.category.label), (r.participants,), (_("%(n)s people", n=r.participants),))
         for r in cats],
        [charts.Series(_("Participants"), "b")],
        _("Participants by category"),
    )
    station_chart = charts.hbar(
        [charts.Row(r.name, (r.booked, r.attended),
                    (_("booked %(n)s (%(p)s)", n=r.booked, p=charts.percent(r.booked_rate)),
                     _("attended %(n)s", n=r.attended)), track=r.capacity)
         for r in result.stations],
        [charts.Series(_("Booked people"), "a"), charts.Series(_("Attended people"), "b")],
        _("Station utilisation"),
        track_name=_("Places"),
    )
    weeks = result.weeks
    today = clock.today()
    current = next((i for i, r in enumerate(weeks) if r.week_start <= today < r.week_start + timedelta(days=7)),
                   None)
    week_chart = charts.columns(
        [f"{r.week_start.month}/{r.week_start.day}" for r in weeks],
        [charts.Band(_("Booked groups"), "a", tuple(r.bookings for r in weeks)),
         charts.Band(_("Participants"), "b", tuple(r.participants for r in weeks))],
        _("Weekly trend"),
        current=current, current_label=_("This week"), none_label=_("none for %(n)s weeks"),
    )
    coverage_chart = charts.hbar(
        [charts.Row(r.subdistrict or _("(no subdistrict)"), (r.covered,),
                    (_("%(c)s of %(n)s (%(p)s)", c=r.covered, n=r.organisations, p=charts.percent(r.rate)),),
                    track=r.organisations)
         for r in result.coverage],
        [charts.Series(_("Organisations that booked"), "b")],
        _("Coverage by subdistrict"),
        track_name=_("All organisations"),
    )
    return {"categories": cat_bookings, "category_people": cat_people, "stations": station_chart,
            "weeks": week_chart, "coverage": coverage_chart}


@dataclass(frozen=True)
class WeekLine:
    """A line of the weekly table: one week, or a run of weeks without bookings."""

    first: date
    last: date
    bookings: int
    participants: int

    @property
    def weeks(self) -> int:
        return (self.last - self.first).days // 7 + 1


def week_lines(weeks) -> list[WeekLine]:
    """The weekly table's lines: runs of ``charts.ZERO_RUN`` or more empty weeks become one line."""
    runs = {first: last for first, last in charts.zero_runs([r.bookings + r.participants for r in weeks])}
    lines, i = [], 0
    while i < len(weeks):
        if i in runs:
            lines.append(WeekLine(weeks[i].week_start, weeks[runs[i]].week_start, 0, 0))
            i = runs[i] + 1
        else:
            lines.append(WeekLine(weeks[i].week_start, weeks[i].week_start, weeks[i].bookings, weeks[i].participants))
            i += 1
    return lines


def _page(station_ids, endpoint: str, export_endpoint: str):
    form, filters, valid = _filters(station_ids)
    result = stats_module.compute(filters, with_coverage=station_ids is None)
    args = {k: v for k, v in request.args.items() if v}
    return render(
        "admin/stats.html", "results", status=200 if valid else 422, form=form, stats=result,
        charts=_charts(result), week_lines=week_lines(result.weeks), percent=charts.percent,
        export_endpoint=export_endpoint, feedback=stats_module.feedback_summary(filters),
        endpoint=endpoint, export_args=args, is_host=station_ids is not None,
        period_links=_period_links(endpoint, args),
    )


def _period_links(endpoint, args):
    today = clock.today()
    keep = {k: v for k, v in args.items() if k not in ("date_from", "date_to")}
    links = []
    for label, (start, end) in ((_("This month"), stats_module.month_of(today)),
                                (_("This quarter"), stats_module.quarter_of(today)),
                                (_("This year"), stats_module.year_of(today))):
        links.append((label, url_for(endpoint, **keep, date_from=start.isoformat(), date_to=end.isoformat())))
    return links


def _export(station_ids, table: str):
    if table not in TABLES or (station_ids is not None and table in ("coverage", "uncovered")):
        abort(404)
    form, filters, valid = _filters(station_ids)
    if not valid:  # a spreadsheet of another period than the one asked for would mislead
        from blueprints.core.errors import _error_page

        problems = "; ".join(str(error) for errors in form.errors.values() for error in errors)
        return _error_page(400, _("Invalid filter"),
                           _("The spreadsheet was not made: %(problems)s", problems=problems))
    period = f"{filters.date_from:%Y%m%d}-{filters.date_to:%Y%m%d}"
    if table == "uncovered":
        orgs = stats_module.uncovered_all(filters)
        headers = [_("Subdistrict or town"), _("Organisation"), _("Kind"), _("Members"),
                   _("Secretary"), _("Phone")]
        rows = [[o.subdistrict, o.name, str(o.kind.label), o.member_count, o.secretary_name, o.secretary_phone]
                for o in orgs]
        title = _("Not yet covered")
    elif table.startswith("ratings"):
        title, headers, rows = _ratings_table(filters, table)
    else:
        result = stats_module.compute(filters, with_coverage=table == "coverage")
        title, headers, rows = _table(result, table)
    body = spreadsheets.xlsx_bytes(title, headers, rows)
    from flask import Response

    filename = f"stats-{table}-{period}.xlsx"
    return Response(body, mimetype=spreadsheets.XLSX_MIMETYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _table(result, table: str):
    if table == "categories":
        return (_("By category"),
                [_("Category"), _("Booked groups"), _("Participants"), _("Attended people")],
                [[str(r.category.label), r.bookings, r.participants, r.attended_participants]
                 for r in result.categories])
    if table == "stations":
        return (_("Station utilisation"),
                [_("Station"), _("Slots"), _("Places"), _("Booked people"), _("Attended people"),
                 _("Booked share of places"), _("Attended share of places")],
                [[r.name, r.slots, r.capacity, r.booked, r.attended, ratio(r.booked_rate), ratio(r.attended_rate)]
                 for r in result.stations])
    if table == "weeks":
        return (_("Weekly trend"), [_("Week starting"), _("Booked groups"), _("Participants")],
                [[r.week_start.isoformat(), r.bookings, r.participants] for r in result.weeks])
    if table == "attendance":
        a = result.attendance
        return (_("Attendance"),
                [_("Attended bookings"), _("No-shows"), _("Awaiting the day"), _("Attendance rate"),
                 _("No-show rate")],
                [[a.attended, a.no_show, a.awaiting, ratio(a.attendance_rate), ratio(a.no_show_rate)]])
    return (_("Coverage"),
            [_("Subdistrict or town"), _("Organisations"), _("Booked"), _("Not yet booked"), _("Coverage rate")],
            [[r.subdistrict, r.organisations, r.covered, r.uncovered, ratio(r.rate)] for r in result.coverage])


def _average(row) -> float | None:
    return round(row.average, 2) if row.average is not None else None


def _ratings_table(filters, table: str):
    """The feedback tables (issue 15, item 5): per station, per package, every rating."""
    if table == "ratings":
        return (_("Ratings"),
                [_("Slot date"), _("Station"), _("Package"), _("Organisation"), _("Rating"), _("Comment"),
                 _("Rated on")],
                [[clock.to_local(c.slot.starts_at).date().isoformat(), c.station_name, c.package_title,
                  c.organisation_name, c.feedback.rating, c.feedback.comment,
                  clock.to_local(c.feedback.created_at).strftime("%Y-%m-%d %H:%M")]
                 for c in stats_module.feedback_all(filters)])
    summary = stats_module.feedback_summary(filters, comments=0)
    rows = summary.stations if table == "ratings_stations" else summary.packages
    first = _("Station") if table == "ratings_stations" else _("Package")
    return (_("Ratings by station") if table == "ratings_stations" else _("Ratings by package"),
            [first, _("Ratings"), _("Average rating")],
            [[r.name, r.count, _average(r)] for r in rows])


@bp.get("/stats")
@admin_required
def stats():
    return _page(None, "admin.stats", "admin.stats_export")


@bp.get("/stats/<table>.xlsx")
@admin_required
def stats_export(table):
    return _export(None, table)


@host_stats_bp.get("")
@host_required
def index():
    return _page(current_user.station_ids, "host_stats.index", "host_stats.export")


@host_stats_bp.get("/<table>.xlsx")
@host_required
def export(table):
    return _export(current_user.station_ids, table)
