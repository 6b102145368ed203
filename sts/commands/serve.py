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
@LOG_LEVEL_OPTION
@LOG_FORMAT_OPTION
def serve(
    config_path: Path, host: str, port: int, production: bool, workers: int | None, log_level: str, log_format: str
) -> None:
    """Serve the STS from CONFIG (debug off)."""
    # Why the environment: gunicorn's workers configure their logging from it (sts.wsgi, load()).
    os.environ["JOBSTS_LOG_LEVEL"], os.environ["JOBSTS_LOG_FORMAT"] = log_level, log_format
    if production:
        _serve_production(config_path, host, port, workers)
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
    placement: dict[str, Any] = {"fd": int(inherited)} if inherited.isdigit() else {"host": host, "port": port}
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


def _serve_production(config_path: Path, host: str, port: int, workers: int | None) -> None:
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

        options = gunicorn_conf.settings()
        options["bind"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if workers is not None:
            options["workers"] = workers
        click.echo(
            f"jobsts STS (gunicorn + uvicorn, {options['workers']} worker(s) x {options['threads']} threads) "
            f"on http://{options['bind']}"
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
