"""District administration (/admin/...) and the hosts' own statistics (/host/stats)."""
from . import views_stats  # noqa: F401  (registers URL rules)
from .blueprint import bp, host_stats_bp

blueprints = [bp, host_stats_bp]
