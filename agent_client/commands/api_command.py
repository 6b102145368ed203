"""Click commands that call the STS: a refusal or an unreachable STS is one line, never a traceback."""

from __future__ import annotations

from typing import Any

import click

from agent_client.errors import StsRefused, StsUnavailable

URL_OPTION = click.option("--url", default=None, help="STS base URL (default: the last login, or JOBSTS_URL).")


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
            raise click.ClickException(one_line(exc)) from None


class ApiGroup(click.Group):
    command_class = ApiCommand
