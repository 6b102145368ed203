"""WSGI entry point for gunicorn: ``gunicorn 'sts.wsgi:app'`` with ``JOBSTS_CONFIG`` set."""

from __future__ import annotations

from sts.app import create_app

app = create_app()
