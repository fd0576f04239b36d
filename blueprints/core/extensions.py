"""Extension singletons, initialised in ``app.create_app``."""
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SessionLoginManager(LoginManager):
    """Flask-Login's strong session protection rewrites every session that lacks its identifier:
    for an anonymous visitor, whose session holds only a CSRF token or the language, that meant
    a new session cookie and a remember-cookie deletion on every request, for nothing — there is
    no user to protect. Sessions with a user (or a remember cookie) are checked as before."""

    def _session_protection_failed(self) -> bool:
        from flask import current_app, request, session

        remember = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
        if "_user_id" not in session and remember not in request.cookies:
            return False
        return super()._session_protection_failed()


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = SessionLoginManager()
csrf = CSRFProtect()
babel = Babel()
htmx = Htmx()
