"""Durable background jobs (the outbox in ``queue.py``, the huey consumer in ``consumer.py``)."""
