"""A private PostgreSQL schema for one benchmark run, dropped afterwards (``tests/pg_schema.py``)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from tests.pg_schema import postgres_schema as _schema


def postgres_schema(base_url: str) -> AbstractContextManager[str]:
    """A fresh ``bench_`` schema on ``base_url``; yields the URL whose connections use it."""
    return _schema(base_url, prefix="bench")
