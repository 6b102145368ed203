"""The gunicorn worker class of the STS: uvicorn's, with the STS's event loop and HTTP settings
(``sts.asgi.uvicorn_settings``). ``worker_class = "sts.asgi_worker.Worker"`` in ``sts.gunicorn_conf``."""

from __future__ import annotations

import os
from typing import Any

from uvicorn_worker import UvicornWorker

from sts.asgi import uvicorn_settings
from sts.wait_listener import API_ROLE, WAIT_ROLE, listeners_for, wait_niceness, wait_port


class Worker(UvicornWorker):  # type: ignore[misc]
    """One event loop per worker process; Flask on its thread pool, agents waiting on the loop.

    ``role`` is set by the master before the fork (``sts.gunicorn_conf.pre_fork``): an agent-wait
    worker accepts on the wait listener only, an API worker on every other one, and an agent-wait
    worker runs at a lower CPU priority (``sts.wait_listener.wait_niceness``)."""

    CONFIG_KWARGS: dict[str, Any] = uvicorn_settings()
    role: str = API_ROLE
    sockets: list[Any]  # gunicorn's listeners, set by its Worker

    def init_process(self) -> None:
        self.sockets = listeners_for(self.role, self.sockets, wait_port())
        if self.role == WAIT_ROLE:
            # Why: a re-wait answered some milliseconds late costs an idle agent nothing, while a
            # login or a health check behind it is a person or a load balancer waiting; when both
            # are runnable, the kernel runs the API workers first.
            os.nice(wait_niceness())
        super().init_process()
