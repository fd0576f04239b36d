"""District administration (/admin/...) and the hosts' own statistics (/host/stats)."""
from . import views_stats  # noqa: F401  (registers URL rules)
from .blueprint import bp, host_stats_bp

# The administration index /admin/ (endpoint admin.index) is the catalogue feature's page.
from blueprints.catalogue.routes import admin_index  # noqa: E402

bp.add_url_rule("/", "index", admin_index)

blueprints = [bp, host_stats_bp]
