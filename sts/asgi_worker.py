"""The gunicorn worker class of the STS: uvicorn's, with the STS's event loop and HTTP settings
(``sts.asgi.uvicorn_settings``). ``worker_class = "sts.asgi_worker.Worker"`` in ``sts.gunicorn_conf``."""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from sts.asgi import uvicorn_settings


class Worker(UvicornWorker):  # type: ignore[misc]
    """One event loop per worker process; Flask on its thread pool, agents waiting on the loop."""

    CONFIG_KWARGS: dict[str, Any] = uvicorn_settings()
