"""WSGI entry point for gunicorn: ``gunicorn -c python:sts.gunicorn_conf 'sts.wsgi:app'`` with
``JOBSTS_CONFIG`` set (and ``PROMETHEUS_MULTIPROC_DIR`` for metrics merged across workers)."""

from __future__ import annotations

from sts.app import create_app
from sts.observability.audit import configure_logging

configure_logging()
app = create_app()
