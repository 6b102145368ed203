"""Click commands that call the STS: a refusal or an unreachable STS is one line, never a traceback.

Every failure prints ``error: <code>: <message>`` and exits 2 (``realms.console.CommandError``), so
a script can tell a CLI or transport failure (2) from a job's own failure (1, ``submit --wait``).
"""

from __future__ import annotations

from typing import Any

import click

from agent_client.errors import StsRefused, StsUnavailable
from realms.console import CommandError
from realms.errors import JobstsError

URL_OPTION = click.option("--url", default=None, help="STS base URL (default: the last login, or JOBSTS_URL).")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")


def one_line(error: StsRefused | StsUnavailable) -> str:
    """``<the STS's code>: <its detail>``, or ``sts.unreachable: ...`` when it did not answer."""
    data = error.data
    if isinstance(error, StsUnavailable) and data.get("http_status") is None:
        return f"sts.unreachable: cannot reach {data.get('url')}: {data.get('detail')}"
    code = data.get("problem_code") or f"http.{data.get('http_status')}"
    return f"{code}: {data.get('detail') or error.message}"


class ApiCommand(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (StsRefused, StsUnavailable) as exc:
            raise CommandError(one_line(exc)) from None
        except JobstsError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None


class ApiGroup(click.Group):
    command_class = ApiCommand
