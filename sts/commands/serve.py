"""``jobsts serve``: the STS's ASGI app (``sts.asgi``) on one uvicorn process, or with
``--production`` under gunicorn with uvicorn workers (settings in ``sts.gunicorn_conf``) as one
master and its workers."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click
from gunicorn.app.base import BaseApplication

from realms.logs import LOG_FORMAT_OPTION, LOG_LEVEL_OPTION
from realms.text import is_ascii_number
from sts.commands.options import CONFIG_OPTION

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
INHERITED_FD_ENV = "WERKZEUG_SERVER_FD"


@click.command()
@CONFIG_OPTION
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--production",
    is_flag=True,
    help="Serve with gunicorn (sts/gunicorn_conf.py): workers, threads, timeouts, multiprocess metrics.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="With --production: worker processes (default: one per CPU).",
)
@click.option(
    "--wait-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="With --production: a second port, on HOST, for agent waits only (GET /api/v1/agent/wait), "
    "served by worker processes of its own, so waiting agents never slow logins.",
)
@click.option(
    "--wait-workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="With --wait-port: worker processes for the agent waits (one holds 10,000 agents).",
)
@LOG_LEVEL_OPTION
@LOG_FORMAT_OPTION
def serve(
    config_path: Path,
    host: str,
    port: int,
    production: bool,
    workers: int | None,
    wait_port: int | None,
    wait_workers: int,
    log_level: str,
    log_format: str,
) -> None:
    """Serve the STS from CONFIG (debug off)."""
    if wait_port is not None and not production:
        raise click.UsageError("--wait-port needs --production (a process of its own for agent waits)")
    if wait_port == port:
        raise click.UsageError("--wait-port must differ from --port")
    if wait_port is not None:
        from sts.wait_listener import wait_niceness

        try:
            wait_niceness()
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    # Why the environment: gunicorn's workers configure their logging from it (sts.wsgi, load()).
    os.environ["JOBSTS_LOG_LEVEL"], os.environ["JOBSTS_LOG_FORMAT"] = log_level, log_format
    if production:
        _serve_production(
            config_path, _bind(host, port), workers, _bind(host, wait_port) if wait_port else None, wait_workers
        )
        return
    import uvicorn

    from sts.asgi import StsAsgi, uvicorn_settings
    from sts.observability.audit import configure_logging

    configure_logging(log_level, log_format)
    from sts.app import create_app

    app = create_app(config_path)
    click.echo(f"jobsts STS on http://{host}:{port} (issuer base {app.extensions['jobsts'].config.base_url})")
    # A listening socket handed over by the parent (tests, socket activation) is served as is.
    inherited = os.environ.get(INHERITED_FD_ENV, "")
    placement: dict[str, Any] = {"fd": int(inherited)} if is_ascii_number(inherited) else {"host": host, "port": port}
    uvicorn.run(StsAsgi(app), log_config=None, log_level=log_level.lower(), **placement, **uvicorn_settings())


def _prepare_metrics_dir() -> str | None:
    """Point prometheus-client at a multiprocess directory before anything imports it (the
    value class is chosen at import, and workers inherit the master's modules). Returns a
    directory this run created, to remove on exit."""
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        # Files of an earlier run would be added to this one's counters.
        for stale in Path(existing).glob("*.db"):
            stale.unlink()
        return None
    created = tempfile.mkdtemp(prefix="jobsts-metrics-")
    os.environ[MULTIPROC_ENV] = created
    return created


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _serve_production(
    config_path: Path, bind: str, workers: int | None, wait_bind: str | None, wait_workers: int
) -> None:
    created = _prepare_metrics_dir()
    try:
        from sts.config import load_sts_config
        from sts.observability.audit import configure_logging

        configure_logging()
        from sts.services import build_services

        # Validate, migrate and open the keys once in the master: a bad configuration or an
        # unready database is one clear line here, not a traceback from every worker.
        build_services(load_sts_config(config_path)).close()
        os.environ["JOBSTS_CONFIG"] = str(config_path.resolve())
        from sts import gunicorn_conf
        from sts.wait_listener import WAIT_BIND_ENV, WAIT_WORKERS_ENV

        # The workers' roles and the wait listener's port are read from here (gunicorn_conf.pre_fork, Worker).
        os.environ.pop(WAIT_BIND_ENV, None)
        if wait_bind is not None:
            os.environ[WAIT_BIND_ENV], os.environ[WAIT_WORKERS_ENV] = wait_bind, str(wait_workers)
        options = gunicorn_conf.settings()
        api_workers = workers if workers is not None else gunicorn_conf.api_workers
        options["bind"], options["workers"] = gunicorn_conf.with_wait_listener(bind, api_workers)
        waits = f"; agent waits on http://{wait_bind}, {wait_workers} worker(s)" if wait_bind is not None else ""
        click.echo(
            f"jobsts STS (gunicorn + uvicorn, {api_workers} worker(s) x {options['threads']} threads) "
            f"on http://{bind}{waits}"
        )
        _GunicornApplication(options).run()
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


class _GunicornApplication(BaseApplication):  # type: ignore[misc]
    """Gunicorn's documented custom-application hook: our settings, our app factory."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from sts.app import create_app
        from sts.asgi import StsAsgi
        from sts.observability.audit import configure_logging

        configure_logging()
        return StsAsgi(create_app(os.environ["JOBSTS_CONFIG"]), threads=self.options.get("threads"))
