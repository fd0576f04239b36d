"""The blueprints of district administration (URL rules live in the views_* modules)."""
from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
host_stats_bp = Blueprint("host_stats", __name__, url_prefix="/host/stats")
