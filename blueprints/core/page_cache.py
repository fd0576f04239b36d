"""Pages and fragments that many people see alike, served from the render cache.

A route names the public blocks of its template and how to build their context; this module
decides what is cached and what is rendered per request:

* an htmx request for a public block: the block (and its out-of-band partials) from the cache;
* an anonymous visitor without flashed messages: the whole page from the cache, with this
  session's CSRF token put in place of a placeholder, and a weak ETag for conditional requests;
* a logged-in user: the public blocks from the cache, the page around them (header, unread
  badge) and the route's personal blocks rendered for them.

Templates show a cached block with ``{% if "name" in cached_blocks %}{{ cached_blocks.name }}
{% else %}{% block name %}…{% endblock %}{% endif %}``: rendering the page with the block handed
in skips its body, and with it every query the body would have made.
"""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Iterable

from flask import g, make_response, render_template, request, session
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from jinja2_fragments.flask import render_block
from markupsafe import Markup

from . import render_cache
from .htmx import wants_fragment
from .i18n import select_locale

CSRF_PLACEHOLDER = "csrf-placeholder-5d0c1f"  # survives HTML escaping unchanged


def _placeholder() -> str:
    return CSRF_PLACEHOLDER


def _tokenless(html: str) -> str:
    """What is kept: the placeholder where this request's token was rendered, also by a form's
    own CSRF field (``form.csrf_token`` asks Flask-WTF directly, not the template's function)."""
    token = g.get("csrf_token")
    return html.replace(token, CSRF_PLACEHOLDER) if token else html


def _with_token(html: str) -> str:
    return html.replace(CSRF_PLACEHOLDER, generate_csrf()) if CSRF_PLACEHOLDER in html else html


def _page_etag(body: bytes) -> str:
    """Per content and per session: the page carries this session's CSRF token."""
    secret = str(session.get("csrf_token", ""))
    return hashlib.sha256(body + secret.encode()).hexdigest()[:32]


def render_public(template: str, *, parts: tuple | None, deps: Iterable[str], build: Callable,
                  blocks: Iterable[str] = ("title", "content"), fragment: str | None = None,
                  oob: Iterable[str] = (), personal: Callable[[], dict] | None = None,
                  path: str | None = None, status: int | None = None):
    """Answer the request from the cache where its public parts allow it.

    ``parts`` name what the public parts show: the route's canonical arguments, never the raw
    query string (unknown arguments must not make new entries); None: build without keeping.
    ``path`` is the page's canonical address (the language switch returns to it).

    ``build(recording)`` runs the queries of the public parts and returns their template context
    (it may add scopes and an expiry to ``recording``, which is None when nothing is cached);
    ``personal()`` returns the context of the parts rendered per user. ``status`` may be put in
    the built context. ``fragment`` is the block an htmx request gets. ``status`` answers a
    logged-in user's page with another status than the built one (a refused form: 422).
    """
    deps, blocks, oob = list(deps), list(blocks), list(oob)
    base_parts = None if parts is None else (template, select_locale(), *parts)
    path = path or request.path

    def keyed(*more):
        return None if base_parts is None else (*base_parts, *more)

    def context_of(recording) -> dict:
        context = build(recording)
        context.setdefault("status", 200)
        return context

    if wants_fragment() and fragment is not None:
        def fragment_body(recording):
            context = context_of(recording)
            html = render_block(template, fragment, csrf_token=_placeholder, **context)
            html += "".join(render_template(partial, csrf_token=_placeholder, **context) for partial in oob)
            return _tokenless(html).encode(), {"status": context["status"]}

        body, meta = render_cache.cached(keyed("fragment", fragment), deps, fragment_body)
        return make_response(_with_token(body.decode()), meta["status"])

    if not current_user.is_authenticated and not session.get("_flashes"):
        def page_body(recording):
            context = context_of(recording)
            html = render_template(template, csrf_token=_placeholder, request_path=path, **context)
            return _tokenless(html).encode(), {"status": context["status"]}

        body, meta = render_cache.cached(keyed("page", path), deps, page_body)
        generate_csrf()  # the session's token exists before the ETag names it
        etag = _page_etag(body)
        if meta["status"] == 200 and request.if_none_match.contains_weak(etag):
            response = make_response("", 304)
        else:
            response = make_response(_with_token(body.decode()), meta["status"])
        response.set_etag(etag, weak=True)
        response.headers["Cache-Control"] = "private, no-cache"
        return response

    def blocks_body(recording):
        context = context_of(recording)
        rendered = [_tokenless(render_block(template, name, csrf_token=_placeholder, **context)) for name in blocks]
        return json.dumps(rendered, ensure_ascii=False).encode(), {"status": context["status"], "blocks": blocks}

    body, meta = render_cache.cached(keyed("blocks", *blocks), deps, blocks_body)
    cached_blocks = {name: Markup(_with_token(html)) for name, html in zip(meta["blocks"], json.loads(body))}
    context = personal() if personal is not None else {}
    cached_blocks.update(context.pop("cached_blocks", {}))
    return make_response(render_template(template, cached_blocks=cached_blocks, **context), status or meta["status"])


def cached_block(template: str, block: str, *, parts: tuple | None, deps: Iterable[str], build: Callable) -> Markup:
    """One block built by ``build(recording) -> context`` and kept under ``deps``, for a part of
    a page that is one user's but the same on every view until something it shows changes (the
    booking panel of a slot). ``parts`` must name everything of the user the block shows; None:
    built, not kept."""

    def body(recording):
        return _tokenless(render_block(template, block, csrf_token=_placeholder, **build(recording))).encode(), {}

    html, _ = render_cache.cached(None if parts is None else (template, block, select_locale(), *parts), deps, body)
    return Markup(_with_token(html.decode()))
