"""Access checks used by every feature's routes."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from .models import Role


def role_required(*roles: Role):
    """Logged in (else redirect to login) and holding one of ``roles`` (else 403)."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


secretary_required = role_required(Role.SECRETARY)
host_required = role_required(Role.HOST)
admin_required = role_required(Role.ADMIN)
