"""The ``jobsts`` console script: a click group whose subcommands load lazily.

Subcommands live in the package they belong to and are named here as strings, so an
agent host running ``jobsts agent ...`` never imports the server, and ``realms`` imports
nothing from the other packages (click's documented LazyGroup pattern).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from realms.errors import JobstsError

SUBCOMMANDS: dict[str, str] = {
    "realm": "realms.cli:realm",
    "authz": "authz_tables.cli:authz",
    "init": "sts.commands.init:init",
    "serve": "sts.commands.serve:serve",
    "keys": "sts.commands.keys:keys",
    "node": "agent_client.commands.admin:node",
    "access-id": "agent_client.commands.admin:access_id",
    "login": "agent_client.commands.submitter:login",
    "logout": "agent_client.commands.submitter:logout",
    "submit": "agent_client.commands.submitter:submit",
    "jobs": "agent_client.commands.submitter:jobs",
    "demo": "sts.commands.demo:demo",
    "agent": "agent_client.commands.agent:agent",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in SUBCOMMANDS if self._target(name) is not None)

    @staticmethod
    def _target(name: str) -> str | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        try:
            found = importlib.util.find_spec(target.partition(":")[0])
        except ModuleNotFoundError:
            found = None
        return target if found is not None else None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # not built yet
            raise
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="jobsts")
def cli() -> None:
    """jobsts: a multi-realm security token service for job submission."""


def main() -> None:
    """Entry point: run the CLI; a jobsts error becomes one line on stderr, never a traceback."""
    try:
        exit_code = cli.main(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except JobstsError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(2)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)
