"""Jinja filters for dates, times and numbers, in the reader's language and Shanghai time."""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from babel.dates import format_skeleton
from flask import current_app
from flask_babel import get_locale, gettext
from markupsafe import Markup, escape

from .clock import to_local


def local_date(moment: datetime) -> str:
    """e.g. 11月25日周二 / Tue, Nov 25."""
    return _date_label(to_local(moment).date(), str(get_locale()))


@lru_cache(maxsize=4096)
def _date_label(day: date, locale: str) -> str:
    # Babel's skeleton matching costs more than the rest of a slot's line; a page shows few dates.
    return format_skeleton("MMMEd", day, locale=locale)


def local_time(moment: datetime) -> str:
    return to_local(moment).strftime("%H:%M")


def local_datetime(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return f"{local_date(moment)} {local_time(moment)}"


def time_range(starts_at: datetime, ends_at: datetime) -> str:
    """e.g. 11月25日周二 14:00–16:00."""
    start, end = to_local(starts_at), to_local(ends_at)
    if start.date() == end.date():
        return f"{local_date(start)} {start:%H:%M}–{end:%H:%M}"
    return f"{local_datetime(start)} – {local_datetime(end)}"


def iso_local(moment: datetime) -> str:
    return to_local(moment).isoformat()


def places_badge(remaining: int, capacity: int, slot_id: int | None = None, live_url: str | None = None,
                 *, bookable: bool | None = None, min_group: int = 1) -> Markup:
    """The places-left badge (``data-remaining``: places left; ``data-bookable``: whether a group
    still fits); with ``live_url`` it refreshes itself.

    ``bookable`` comes from ``Availability.fits_group(package.min_group_size)`` (the rule lives in
    ``blueprints/booking/capacity.py``); a slot with places left but fewer than the smallest group
    ``min_group`` reads as full."""
    if bookable is None:
        bookable = remaining > 0
    if slot_id is None and live_url is None:
        return _static_badge(remaining, capacity, bookable, min_group, str(get_locale()))
    poll = current_app.config.get("PLACES_POLL_SECONDS", 15)
    live = (f' hx-get="{escape(live_url)}" hx-trigger="every {poll}s, booking-changed from:body"'
            ' hx-swap="outerHTML" data-poll-visible') if live_url else ""
    ident = f' id="places-{slot_id}"' if slot_id else ""
    return _badge(remaining, capacity, bookable, min_group, ident, live)


@lru_cache(maxsize=8192)
def _static_badge(remaining: int, capacity: int, bookable: bool, min_group: int, locale: str) -> Markup:
    # A menu page shows 80 of these; the same few figures recur on every page.
    return _badge(remaining, capacity, bookable, min_group, "", "")


def _badge(remaining: int, capacity: int, bookable: bool, min_group: int, ident: str, live: str) -> Markup:
    if remaining <= 0:
        level, text = "full", gettext("Full")
    elif not bookable:
        level, text = "full", gettext("Full: %(remaining)s left, fewer than a group of %(min)s",
                                      remaining=remaining, min=min_group)
    else:
        level = "low" if remaining * 5 <= capacity else "ok"
        text = gettext("%(remaining)s of %(capacity)s places left", remaining=remaining, capacity=capacity)
    return Markup(f'<span class="places places-{level}"{ident} data-remaining="{remaining}"'
                  f' data-bookable="{"true" if bookable and remaining > 0 else "false"}"{live}>'
                  f'{escape(text)}</span>')


def register(app) -> None:
    app.add_template_global(places_badge)
    app.add_template_filter(local_date)
    app.add_template_filter(local_time)
    app.add_template_filter(local_datetime)
    app.add_template_filter(iso_local)
    app.add_template_global(time_range)
