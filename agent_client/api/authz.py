"""The job manager's own authorization table over HTTP (``/api/v1/authz``, administrators only):
the same methods as ``authz_tables.store.AuthzTable`` that ``jobsts authz`` uses, so the CLI is one
code path for a local table file and for the STS. ``changed_by`` is ignored: the STS records the
caller's access ID from the bearer token, never a name the client sends."""

from __future__ import annotations

from typing import Any

from agent_client.api.client import StsApi
from authz_tables.diff import ChangeRecord, Diff
from authz_tables.entries import NODE_SCOPE, AuditedEntry, Entry, Scope
from authz_tables.errors import AuthzError
from authz_tables.roles import Role
from authz_tables.wire import audited_from, diff_from, record_from
from realms.identity.access_id import AccessId


class RemoteTable:
    """One STS's table, through ``api`` (a user session: ``agent_client.api.user_api``)."""

    def __init__(self, api: StsApi) -> None:
        self.api = api

    def close(self) -> None:
        self.api.close()

    def list_entries(self, principal: AccessId | None = None, role: Role | None = None) -> list[AuditedEntry]:
        params = {name: str(value) for name, value in (("access_id", principal), ("role", role and role.value))
                  if value}  # fmt: skip
        body = self.api.call_json("GET", "/api/v1/authz/entries", "the table's entries", params=params)
        return [audited_from(item) for item in _list(body, "entries")]

    def export_entries(self) -> list[Entry]:
        return [audited.entry for audited in self.list_entries()]

    def history(self, principal: AccessId | None = None, limit: int = 100) -> list[ChangeRecord]:
        params: dict[str, Any] = {"limit": limit}
        if principal is not None:
            params["access_id"] = str(principal)
        body = self.api.call_json("GET", "/api/v1/authz/history", "the table's history", params=params)
        return [record_from(item) for item in _list(body, "changes")]

    def _put(self, principal: AccessId, role: Role, effect: str, scope: Scope) -> Diff:
        entry = {"access_id": str(principal), "role": role.value, "effect": effect, "scope": str(scope)}
        return diff_from(self.api.call_json("PUT", "/api/v1/authz/entries", f"the {effect} of {role}", json=entry))

    def grant(self, principal: AccessId, role: Role, scope: Scope = NODE_SCOPE, *, changed_by: str = "") -> Diff:
        return self._put(principal, role, "allow", scope)

    def deny(self, principal: AccessId, role: Role, scope: Scope = NODE_SCOPE, *, changed_by: str = "") -> Diff:
        return self._put(principal, role, "deny", scope)

    def revoke(self, principal: AccessId, role: Role, scope: Scope = NODE_SCOPE, *, changed_by: str = "") -> Diff:
        params = {"access_id": str(principal), "role": role.value, "scope": str(scope)}
        return diff_from(self.api.call_json("DELETE", "/api/v1/authz/entries", f"the revoke of {role}", params=params))

    def import_entries(
        self, entries: list[Entry], *, changed_by: str = "", replace: bool = False, dry_run: bool = False
    ) -> Diff:
        from authz_tables.transfer import export_entries

        params = {"format": "json", "replace": str(replace).lower(), "dry_run": str(dry_run).lower()}
        text = export_entries(entries, "json")
        body = self.api.call_json("POST", "/api/v1/authz/import", "the import", params=params, content=text,
                                  headers={"Content-Type": "application/json"})  # fmt: skip
        return diff_from(body)


def _list(body: dict[str, Any], name: str) -> list[Any]:
    items = body.get(name)
    if not isinstance(items, list):
        raise AuthzError(f"the STS answered without a list of {name}")
    return items
