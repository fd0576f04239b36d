"""Shared infrastructure: extension singletons, database helpers, htmx helper, clock, errors."""
