"""Jinja filters for dates, times and numbers, in the reader's language and Shanghai time."""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from babel.dates import format_skeleton
from flask_babel import get_locale

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


def register(app) -> None:
    app.add_template_filter(local_date)
    app.add_template_filter(local_time)
    app.add_template_filter(local_datetime)
    app.add_template_filter(iso_local)
    app.add_template_global(time_range)
