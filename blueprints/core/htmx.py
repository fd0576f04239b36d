"""The one place that knows how htmx requests are answered (wraps htmx-flask 0.1.0).

A route renders one template: the whole page for ordinary and boosted requests, or just one
block of it (plus any out-of-band blocks) when htmx asks for a piece of the page.
"""
from __future__ import annotations

import json
from typing import Iterable

from flask import make_response, redirect, render_template, request
from jinja2_fragments.flask import render_blocks


def wants_fragment() -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render(template: str, block: str, *, status: int = 200, oob: Iterable[str] = (), **context):
    """Full page, or for htmx just ``block`` followed by the out-of-band partials ``oob``.

    ``oob`` names partial templates (each carrying ``hx-swap-oob``) rather than blocks: the
    blocks of a parent template such as base.html cannot be rendered on their own.
    """
    if wants_fragment():
        body = render_blocks(template, [block], **context)
        body += "".join(render_template(partial, **context) for partial in oob)
    else:
        body = render_template(template, **context)
    return make_response(body, status)


def trigger(response, *events: str):
    """Add client-side events to ``HX-Trigger`` (merged with any already set)."""
    existing = response.headers.get("HX-Trigger")
    names: dict = {}
    if existing:
        try:
            names = json.loads(existing)
        except ValueError:
            names = {name.strip(): None for name in existing.split(",")}
    for event in events:
        names[event] = None
    response.headers["HX-Trigger"] = json.dumps(names)
    return response


def see_other(location: str):
    """Post/redirect/get after a POST that succeeded: a 303 to ``location``, or for htmx a 204 with
    ``HX-Location`` that loads it as a boosted navigation (the whole page, the address bar
    updated), so a refresh shows the result and never posts again."""
    if getattr(request, "htmx", None):
        response = make_response("", 204)
        response.headers["HX-Location"] = json.dumps(
            {"path": location, "target": "body", "headers": {"HX-Boosted": "true"}})
        return response
    return redirect(location, 303)
