"""Chinese (and English) error pages; htmx gets the same text as a fragment."""
from __future__ import annotations

from flask import jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from .db import Busy
from .extensions import db
from .htmx import wants_fragment


def _error_page(status: int, title: str, message: str):
    if request.path.startswith("/feeds/") or request.accept_mimetypes.best == "application/json":
        return jsonify(error=title), status
    template = "core/error.html"
    if wants_fragment():
        return render_template("core/error_fragment.html", title=title, message=message), status
    return render_template(template, title=title, message=message, status=status), status


def register_error_handlers(app) -> None:
    @app.errorhandler(400)
    def bad_request(error):
        return _error_page(400, _("Bad request"), _("The request could not be understood."))

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _error_page(
            400, _("Page expired"), _("This page has expired. Please reload it and try again.")
        )

    @app.errorhandler(403)
    def forbidden(error):
        return _error_page(403, _("Not allowed"), _("You do not have permission to see this page."))

    @app.errorhandler(404)
    def not_found(error):
        return _error_page(404, _("Not found"), _("The page you asked for does not exist."))

    @app.errorhandler(405)
    def method_not_allowed(error):
        return _error_page(405, _("Not allowed"), _("This action is not available here."))

    @app.errorhandler(413)
    def too_large(error):
        return _error_page(413, _("File too large"), _("The uploaded file is too large."))

    @app.errorhandler(Busy)
    def busy(error):
        db.session.rollback()
        return _error_page(
            503, _("Busy"), _("The server is busy with other bookings of this slot. Please try again.")
        )

    @app.errorhandler(500)
    def server_error(error):
        db.session.rollback()
        return _error_page(
            500, _("Something went wrong"), _("An unexpected error occurred. Please try again later.")
        )
