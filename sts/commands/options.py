"""What the server's commands share: the ``--config`` option."""

from __future__ import annotations

from pathlib import Path

import click

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    required=True,
    envvar="JOBSTS_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The STS TOML file.",
)
