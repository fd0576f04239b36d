"""``url_for`` once per endpoint and request for pages and feeds that link hundreds of rows."""
from __future__ import annotations

from typing import Callable

from flask import g, url_for

_MARKER = 918273645


def id_urls(endpoint: str, parameter: str, *, external: bool = False) -> Callable[[object], str]:
    """``value -> url_for(endpoint, **{parameter: value})`` built from one url_for call (kept in
    ``g`` for the request); the endpoint must take ``parameter`` as its only variable part."""
    patterns = g.setdefault("_id_url_patterns", {})
    key = (endpoint, parameter, external)
    if key not in patterns:
        head, tail = url_for(endpoint, _external=external, **{parameter: _MARKER}).split(str(_MARKER))
        patterns[key] = head, tail
    head, tail = patterns[key]
    return lambda value: f"{head}{value}{tail}"


def id_url(endpoint: str, parameter: str, value) -> str:
    """The template global: ``{{ id_url('booking.slot', 'slot_id', slot.id) }}``."""
    return id_urls(endpoint, parameter)(value)


def register(app) -> None:
    app.add_template_global(id_url)
