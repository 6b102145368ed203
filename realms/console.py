"""The ``jobsts`` console script: a click group whose subcommands load lazily.

Subcommands live in the package they belong to and are named here as strings, so an
agent host running ``jobsts agent ...`` never imports the server, and ``realms`` imports
nothing from the other packages (click's documented LazyGroup pattern).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import IO, Any

import click

from realms.errors import JobstsError

SUBCOMMANDS: dict[str, str] = {
    "realm": "realms.cli:realm",
    "authz": "agent_client.commands.authz:authz",
    "init": "sts.commands.init:init",
    "db": "sts.commands.db:db",
    "serve": "sts.commands.serve:serve",
    "keys": "sts.commands.keys:keys",
    "master-key": "sts.commands.master_key:master_key",
    "node": "agent_client.commands.admin:node",
    "access-id": "agent_client.commands.admin:access_id",
    "login": "agent_client.commands.submitter:login",
    "logout": "agent_client.commands.submitter:logout",
    "submit": "agent_client.commands.submitter:submit",
    "jobs": "agent_client.commands.submitter:jobs",
    "token": "agent_client.commands.submitter:token",
    "whoami": "agent_client.commands.submitter:whoami",
    "demo": "sts.commands.demo:demo",
    "agent": "agent_client.commands.agent:agent",
}


class CommandError(click.ClickException):
    """A command's failure as one line ``error: <code>: <message>``, exit 2 (also under click's
    test runner, which does not go through ``main``)."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


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


# Exit statuses of every command. 1 is kept for an outcome a command reports (a job that failed,
# ``authz check`` denied); 3 and 4 are ``submit --wait``'s refused and lost/expired/cancelled.
EXIT_USAGE_OR_ERROR = 2
EXIT_INTERRUPTED = 130


def _show_usage_error(exc: click.UsageError) -> None:
    """click's usage text and hint, with the one error prefix the README documents."""
    if exc.ctx is not None:
        click.echo(exc.ctx.get_usage(), err=True)
        if exc.ctx.command.get_help_option(exc.ctx) is not None:
            click.echo(f"Try '{exc.ctx.command_path} --help' for help.", err=True)
    click.echo(f"error: {exc.format_message()}", err=True)


def main() -> None:
    """Entry point: run the CLI; any error becomes one line ``error: <code>: <message>`` on
    stderr and exit 2, never a traceback (exit 1 stays free for a job's failure)."""
    try:
        exit_code = cli.main(standalone_mode=False)
    except click.UsageError as exc:
        _show_usage_error(exc)
        sys.exit(EXIT_USAGE_OR_ERROR)
    except CommandError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE_OR_ERROR)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except JobstsError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(EXIT_USAGE_OR_ERROR)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)
