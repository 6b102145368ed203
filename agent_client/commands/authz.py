"""``jobsts authz``: the table commands of ``authz_tables.cli``, with ``--url`` served by the STS
API (``agent_client.api.authz.RemoteTable``, the stored login of ``jobsts login``)."""

from __future__ import annotations

from agent_client.api.authz import RemoteTable
from agent_client.api.user import user_api
from authz_tables.cli import authz, register_remote_opener


def open_remote(url: str) -> RemoteTable:
    return RemoteTable(user_api(url))


register_remote_opener(open_remote)

__all__ = ["authz"]
