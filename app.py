"""Application factory of the themed Party-day service menu booking platform."""
from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path

from flask import Flask, current_app, request

from blueprints.core import changes, render_cache
from blueprints.core import compression
from blueprints.core import config as config_module
from blueprints.core import input_guard
from blueprints.core import security
from blueprints.core.backup import cli as backup_cli
from blueprints.core.errors import register_error_handlers
from blueprints.core.extensions import babel, csrf, db, htmx, login_manager, migrate
from blueprints.core.htmx import wants_fragment
from blueprints.core.i18n import babel_locale, select_locale, select_timezone, translation_directories
from blueprints.core.logging import configure_logging

# Each feature package has a ``routes.py`` that defines ``bp`` (or a list ``blueprints``).
FEATURES = ("core", "accounts", "menu", "booking", "host", "feeds", "admin", "catalogue", "directory", "demo", "jobs")


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config_module.DEFAULTS)
    if test_config is None:
        app.config.from_mapping(config_module.from_environment(Path(app.instance_path)))
    else:
        app.config.from_mapping(test_config)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(str(d) for d in translation_directories())
    configure_logging(app)  # request ids and JSON log lines first, so every later hook has them
    compression.init_app(app)  # before the other hooks: its after_request runs after theirs, on the final body

    import blueprints.models  # noqa: F401  (every model registered before anything uses them)
    import blueprints.tracking  # noqa: F401  (what each model's changes make stale: core/changes.py)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    babel.init_app(app, locale_selector=babel_locale, timezone_selector=select_timezone)
    login_manager.init_app(app)
    changes.install(app)  # version counters every cache validates against
    render_cache.install(app)
    input_guard.init_app(app)  # before the blueprints: bounded <int:…> ids; NUL and absurd pages refused

    for feature in FEATURES:
        module = import_module(f"blueprints.{feature}.routes")
        for blueprint in getattr(module, "blueprints", [module.bp]):
            app.register_blueprint(blueprint)

    register_error_handlers(app)
    security.init_app(app)  # after the blueprints: it rate-limits the login view
    app.cli.add_command(backup_cli)  # flask backup sqlite|summary
    _register_template_helpers(app)

    @app.after_request
    def vary_on_htmx(response):
        response.vary.add("HX-Request")
        return response

    return app


def _register_template_helpers(app: Flask) -> None:
    from blueprints.core import templating, urls

    templating.register(app)
    urls.register(app)

    @app.context_processor
    def inject_globals():
        return {
            "current_locale": select_locale(),
            
            "languages": current_app.config["LANGUAGES"],
            "has_endpoint": lambda name: name in current_app.view_functions,
            # Blocks rendered alone show the flashed messages themselves; full pages show them once in base.html.
            "fragment_request": wants_fragment,
            "request_path": request.full_path.rstrip("?"),
            "cached_blocks": {},  # blocks a route hands in from the render cache (core/page_cache.py)
        }


if __name__ == "__main__":  # pragma: no cover - use `flask --app app run`
    create_app().run(port=int(os.environ.get("PORT", "5000")))
