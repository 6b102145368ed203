"""``jobsts serve``: the STS on Werkzeug's threaded server (gunicorn with ``sts.wsgi:app`` in production)."""

from __future__ import annotations

from pathlib import Path

import click

from sts.cli.admin import CONFIG_OPTION


@click.command()
@CONFIG_OPTION
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def serve(config_path: Path, host: str, port: int) -> None:
    """Serve the STS from CONFIG (debug off, threaded)."""
    from werkzeug.serving import run_simple

    from sts.app import create_app

    app = create_app(config_path)
    click.echo(f"jobsts STS on http://{host}:{port} (issuer base {app.extensions['jobsts'].config.base_url})")
    run_simple(host, port, app, threaded=True, use_debugger=False, use_reloader=False)
