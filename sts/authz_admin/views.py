"""``/api/v1/me`` (any signed-in user) and ``/api/v1/authz/...``: the job manager's own table,
administered over HTTP by its administrators (as ``kcadm`` administers Keycloak).

Every change is written by ``authz_tables.store`` with ``changed_by`` = the calling access ID, so
the table's history and the ``authz.changed`` audit lines name the person, not ``local:root``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from authz_tables.entries import parse_entry, parse_scope
from authz_tables.errors import BadFile
from authz_tables.roles import Role, parse_role
from authz_tables.transfer import FORMATS, Format, decode, detect_format, export_entries, parse_text
from authz_tables.wire import audited_json, diff_json, record_json
from realms.identity.access_id import AccessId
from sts.http.auth import authenticated_caller, caller_has, require_role
from sts.services import current_services

bp = Blueprint("authz_admin", __name__, url_prefix="/api/v1")
MAX_HISTORY = 1000


@bp.get("/me")
def me() -> Response:
    """Who the bearer token says the caller is, and the job manager's roles the caller holds."""
    caller = authenticated_caller()
    roles = [role.value for role in Role if caller_has(role)]
    return jsonify({"realm": caller.realm, "access_id": str(caller.access_id), "username": caller.username,
                    "groups": sorted(str(g) for g in caller.groups), "roles": roles,
                    "token_expires_at": caller.token_exp})  # fmt: skip


def _actor() -> str:
    return str(authenticated_caller().access_id)


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadFile("the body must be a JSON object", file="<request>")
    return body


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")


@bp.get("/authz/entries")
@require_role(Role.ADMINISTRATOR)
def list_entries() -> Response:
    principal, role = request.args.get("access_id"), request.args.get("role")
    found = current_services().authz.list_entries(
        AccessId.parse(principal) if principal else None, parse_role(role) if role else None
    )
    return jsonify({"entries": [audited_json(a) for a in found]})


@bp.put("/authz/entries")
@require_role(Role.ADMINISTRATOR)
def put_entry() -> Response:
    """Grant (``effect`` allow) or deny a role; replaces the entry of the same key."""
    body = _json_object()
    entry = parse_entry(*(str(body.get(k, d)) for k, d in (("access_id", ""), ("role", ""), ("effect", "allow"),
                                                            ("scope", "*"))))  # fmt: skip
    table = current_services().authz
    change = table.grant if entry.effect.value == "allow" else table.deny
    return jsonify(diff_json(change(entry.principal, entry.role, entry.scope, changed_by=_actor())))


@bp.delete("/authz/entries")
@require_role(Role.ADMINISTRATOR)
def revoke_entry() -> Response:
    args = request.args
    principal, role = AccessId.parse(args.get("access_id", "")), parse_role(args.get("role", ""))
    diff = current_services().authz.revoke(principal, role, parse_scope(args.get("scope", "*")), changed_by=_actor())
    return jsonify(diff_json(diff))


@bp.get("/authz/export")
@require_role(Role.ADMINISTRATOR)
def export() -> Response:
    fmt = request.args.get("format", "csv")
    if fmt not in FORMATS:
        raise BadFile(f"format must be one of {', '.join(FORMATS)}", file="<request>")
    table = current_services().authz
    text = export_entries(table.list_entries() if _flag("audit") else table.export_entries(), fmt)
    return Response(text, mimetype="text/csv" if fmt == "csv" else "application/json")


@bp.post("/authz/import")
@require_role(Role.ADMINISTRATOR)
def import_entries() -> Response:
    """The body is the CSV or JSON file itself; ``replace`` and ``dry_run`` as for ``jobsts authz import``."""
    name = request.args.get("name", "<request>")[:200]
    text = decode(request.get_data(cache=False), name)
    wanted = request.args.get("format")
    fmt: Format = wanted if wanted in FORMATS else detect_format(name, text)
    located = parse_text(text, fmt, name)
    diff = current_services().authz.import_entries(
        [item.entry for item in located], changed_by=_actor(), replace=_flag("replace"), dry_run=_flag("dry_run")
    )
    return jsonify(diff_json(diff))


@bp.get("/authz/history")
@require_role(Role.ADMINISTRATOR)
def history() -> Response:
    principal = request.args.get("access_id")
    try:
        limit = max(1, min(int(request.args.get("limit", "50")), MAX_HISTORY))
    except ValueError:
        limit = 50
    records = current_services().authz.history(AccessId.parse(principal) if principal else None, limit)
    return jsonify({"changes": [record_json(r) for r in records]})
