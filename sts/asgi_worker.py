"""The gunicorn worker class of the STS: uvicorn's, with the STS's event loop and HTTP settings
(``sts.asgi.uvicorn_settings``). ``worker_class = "sts.asgi_worker.Worker"`` in ``sts.gunicorn_conf``."""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from sts.asgi import uvicorn_settings
from sts.wait_listener import API_ROLE, listeners_for, wait_port


class Worker(UvicornWorker):  # type: ignore[misc]
    """One event loop per worker process; Flask on its thread pool, agents waiting on the loop.

    ``role`` is set by the master before the fork (``sts.gunicorn_conf.pre_fork``): an agent-wait
    worker accepts on the wait listener only, an API worker on every other one."""

    CONFIG_KWARGS: dict[str, Any] = uvicorn_settings()
    role: str = API_ROLE
    sockets: list[Any]  # gunicorn's listeners, set by its Worker

    def init_process(self) -> None:
        self.sockets = listeners_for(self.role, self.sockets, wait_port())
        super().init_process()
