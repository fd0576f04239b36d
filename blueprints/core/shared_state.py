"""The Redis client of an app: state shared between app instances (health check, feed validators)."""
from __future__ import annotations

from flask import Flask, current_app


def redis_client(app: Flask | None = None):
    """One client (and connection pool) per app and process. Short timeouts: every caller treats
    Redis as optional and carries on without it when it is slow or down."""
    app = app or current_app
    client = app.extensions.get("redis_client")
    if client is None:
        import redis

        client = redis.Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=0.5, socket_timeout=0.5)
        app.extensions["redis_client"] = client
    return client
