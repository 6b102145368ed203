"""The plain WSGI entry point, for a WSGI server of your own (``gunicorn --worker-class gthread
'sts.wsgi:app'`` with ``JOBSTS_CONFIG`` set). Here an agent's ``GET /api/v1/agent/wait`` holds a
thread while it waits; the production entry is ``sts.asgi``, where it holds none."""

from __future__ import annotations

from sts.app import create_app
from sts.observability.audit import configure_logging

configure_logging()
app = create_app()
