"""``jobsts authz``: administer an authorization table from the command line.

The table is named by ``--table URL`` (a SQLAlchemy URL, or a plain path to a SQLite file;
env ``JOBSTS_AUTHZ_TABLE``) or by ``--config FILE`` (TOML, key ``[authz] table``; relative
paths are resolved from the file's directory: the agent configuration uses the same key).
The schema is created on first use. Changes are audited as ``local:<os user>``.

``--url STS`` administers the job manager's own table through the STS's REST endpoints instead,
with the stored login of ``jobsts login`` (an administrator); the STS records the caller's access
ID. That backend is registered by the client package (``register_remote_opener``), as this
package imports nothing above ``realms``.

Exit codes: 0 success (``check``: allowed; ``audit``: no decision changed), 1 ``check`` denied
(``audit``: some decision changed), 2 an error (one line ``error: <code>: <message>`` on stderr).
"""

from __future__ import annotations

import json
import os
import pwd
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from authz_tables.deny_audit import deny_changes
from authz_tables.entries import AuditedEntry, Effect, parse_scope
from authz_tables.errors import AuthzConfigError, BadFile
from authz_tables.roles import parse_role
from authz_tables.store import AuthzTable, Diff
from authz_tables.transfer import FORMATS, Format, decode, detect_format, export_entries, parse_text
from authz_tables.wire import audited_json
from realms.errors import JobstsError
from realms.identity.access_id import AccessId

TABLE_ENV = "JOBSTS_AUTHZ_TABLE"
_remote_openers: list[Callable[[str], Any]] = []


def register_remote_opener(opener: Callable[[str], Any]) -> None:
    """Set how ``--url URL`` opens a remote table (an object with ``AuthzTable``'s change and list
    methods, and ``close``). Registered once by the client package."""
    _remote_openers[:] = [opener]


def resolve_table_url(value: str, base_dir: Path) -> str:
    """Turn a configured table into a SQLAlchemy URL; relative SQLite paths resolve from ``base_dir``.

    ``value`` is a SQLAlchemy URL (``sqlite:///authz.db``, ``postgresql+psycopg://...``) or a
    plain file path (taken as a SQLite file).
    """
    if not isinstance(value, str) or not value.strip():
        raise AuthzConfigError("authz table must be a non-empty SQLAlchemy URL or file path")
    if "://" not in value:
        return f"sqlite:///{(base_dir / value).resolve()}"
    try:
        url = make_url(value)
    except ArgumentError:
        raise AuthzConfigError(f"authz table {value[:80]!r} is not a SQLAlchemy URL") from None
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if not path.is_absolute():
            return url.set(database=str((base_dir / path).resolve())).render_as_string(hide_password=False)
    return value


def table_url_from_config(path: str | Path) -> str:
    """The ``[authz] table`` URL of a TOML configuration file (the STS's or an agent's)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            doc: dict[str, Any] = tomllib.load(fh)
    except OSError as exc:
        raise AuthzConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AuthzConfigError(f"{path}: not valid TOML: {exc}") from None
    section = doc.get("authz")
    if not isinstance(section, dict) or "table" not in section:
        raise AuthzConfigError(f'{path}: [authz] table is missing: set table = "sqlite:///authz.db"')
    table = section["table"]
    if not isinstance(table, str):
        raise AuthzConfigError(f"{path}: [authz] table must be a string")
    return resolve_table_url(table, path.resolve().parent)


def local_actor() -> str:
    """``local:<os user>`` of the effective uid, for the audit trail."""
    # Why: the uid's account name, not $USER/$LOGNAME, which anyone can set to another name.
    uid = os.geteuid()
    try:
        return f"local:{pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"local:uid={uid}"


class _AuthzGroup(click.Group):
    """Turns a jobsts error into one line on stderr and exit 2, however the group is invoked."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JobstsError as exc:
            click.echo(f"error: {exc.code}: {exc.message}", err=True)
            ctx.exit(2)


def _table_url(table: str | None, config: str | None) -> str:
    if table and config:
        raise AuthzConfigError("give --table or --config, not both")
    if config:
        return table_url_from_config(config)
    if table:
        return resolve_table_url(table, Path.cwd())
    raise AuthzConfigError(f"no authorization table: give --table URL, --config FILE or set {TABLE_ENV}")


def _open(ctx: click.Context, *, local_only: str = "") -> AuthzTable:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    table: AuthzTable | None = obj.get("opened")
    if table is None and obj.get("url"):
        if local_only:
            raise AuthzConfigError(f"{local_only} works on a table file (--table or --config), not with --url")
        if obj.get("table") or obj.get("config") or not _remote_openers:
            raise AuthzConfigError("give --url, --table or --config: one of them")
        table = _remote_openers[0](obj["url"])
        obj["opened"] = table
        ctx.call_on_close(table.close)
    if table is None:
        table = AuthzTable(_table_url(obj.get("table"), obj.get("config")), upgrade=True, refresh_interval=0)
        obj["opened"] = table
        ctx.call_on_close(table.close)
    return table


@click.group(cls=_AuthzGroup)
@click.option("--table", "table", envvar=TABLE_ENV, help="SQLAlchemy URL (or SQLite file path) of the table.")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="TOML file with [authz] table = ...")
@click.option("--url", "url", help="The STS: administer the job manager's own table over its API (as your login).")
@click.pass_context
def authz(ctx: click.Context, table: str | None, config: str | None, url: str | None) -> None:
    """Administer an authorization table: grant, deny, revoke, list, check, audit, export, import."""
    # Why resolved later, in _open: a subcommand's --help must work with nothing configured.
    ctx.ensure_object(dict).update(table=table, config=config, url=url)


def _access_id(text: str) -> AccessId:
    return AccessId.parse(text)


def _report(diff: Diff, unchanged_text: str) -> None:
    for change in diff.changes:
        click.echo(change.line())
    if not diff.changes:
        click.echo(unchanged_text)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
_scope_option = click.option(
    "--scope", default="*", show_default=True, help="'*', authgroup:<name>, remote:<host> or credential:<key>."
)


@authz.command()
@click.argument("access_id")
@click.argument("role")
@_scope_option
@click.pass_context
def grant(ctx: click.Context, access_id: str, role: str, scope: str) -> None:
    """Allow ROLE (and every role it implies) to ACCESS_ID."""
    principal, parsed_role, parsed_scope = _access_id(access_id), parse_role(role), parse_scope(scope)
    diff = _open(ctx).grant(principal, parsed_role, parsed_scope, changed_by=local_actor())
    _report(diff, f"unchanged: allow {parsed_role} {parsed_scope} {principal}")


@authz.command()
@click.argument("access_id")
@click.argument("role")
@_scope_option
@click.pass_context
def deny(ctx: click.Context, access_id: str, role: str, scope: str) -> None:
    """Deny ROLE, and every role that implies it, to ACCESS_ID (a deny wins over any grant).

    deny monitor refuses every role; deny administrator refuses administrator only.
    """
    principal, parsed_role, parsed_scope = _access_id(access_id), parse_role(role), parse_scope(scope)
    diff = _open(ctx).deny(principal, parsed_role, parsed_scope, changed_by=local_actor())
    _report(diff, f"unchanged: deny {parsed_role} {parsed_scope} {principal}")


@authz.command()
@click.argument("access_id")
@click.argument("role")
@_scope_option
@click.pass_context
def revoke(ctx: click.Context, access_id: str, role: str, scope: str) -> None:
    """Remove the entry (allow or deny) for ACCESS_ID, ROLE and scope."""
    principal, parsed_role, parsed_scope = _access_id(access_id), parse_role(role), parse_scope(scope)
    diff = _open(ctx).revoke(principal, parsed_role, parsed_scope, changed_by=local_actor())
    _report(diff, f"no entry for {principal} {parsed_role} on {parsed_scope}: nothing revoked")


@authz.command(name="list")
@click.option("--principal", help="Only entries naming exactly this access ID.")
@click.option("--role", help="Only entries of exactly this role.")
@_json_option
@click.pass_context
def list_command(ctx: click.Context, principal: str | None, role: str | None, as_json: bool) -> None:
    """List entries with who changed each last and when."""
    found = _open(ctx).list_entries(_access_id(principal) if principal else None, parse_role(role) if role else None)
    if as_json:
        click.echo(json.dumps([audited_json(a) for a in found], indent=2))
        return
    _print_entries(found)


def _print_entries(found: list[AuditedEntry]) -> None:
    rows = [("EFFECT", "ROLE", "SCOPE", "ACCESS_ID", "CHANGED_BY", "CHANGED_AT")]
    for a in found:
        e = a.entry
        when = a.changed_at.isoformat(timespec="seconds")
        rows.append((e.effect.value, e.role.value, str(e.scope), str(e.principal), a.changed_by, when))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    click.echo(f"{len(found)} entries")


@authz.command()
@click.argument("access_ids", nargs=-1, required=True)
@click.option("--role", "role", required=True, help="The role required.")
@click.option(
    "--scope", "scopes", multiple=True, help="authgroup:/remote:/credential:<name> covering the resource (repeatable)."
)
@_json_option
@click.pass_context
def check(ctx: click.Context, access_ids: tuple[str, ...], role: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Decide for the principal made of ACCESS_IDS (user, groups, specials): exit 0 allowed, 1 denied.

    List the special subjects that apply (special:EVERYONE, ...) yourself: matching is exact.
    """
    principals = [_access_id(a) for a in access_ids]
    required = parse_role(role)
    covering = [parse_scope(s) for s in scopes]
    decision = _open(ctx, local_only="authz check").snapshot().decide(principals, required, covering)
    if as_json:
        click.echo(json.dumps({"allowed": decision.allowed, "role": required.value, "reason": decision.reason}))
    else:
        click.echo(("allowed: " if decision.allowed else "denied: ") + decision.reason)
    ctx.exit(0 if decision.allowed else 1)


@authz.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
@click.pass_context
def audit(ctx: click.Context, as_json: bool) -> None:
    """List the decisions this table's denies answer differently since a deny of ROLE refuses
    every role that implies ROLE (it used to refuse the roles ROLE implies, and missed the
    higher ones). Exit 0 when nothing changed, 1 when something did.

    Each change is stated for a caller holding the deny's access ID and a grant's access ID.
    """
    entries = _open(ctx).export_entries()
    changes = deny_changes(entries)
    denies = sum(1 for e in entries if e.effect is Effect.DENY)
    if as_json:
        document = {"entries": len(entries), "denies": denies, "changes": [c.to_json() for c in changes]}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for change in changes:
            click.echo(change.line())
        refused = sum(1 for c in changes if c.newly_refused)
        click.echo(
            f"{len(changes)} decisions changed ({refused} refused now, {len(changes) - refused} allowed now) "
            f"by {denies} deny entries of {len(entries)} entries"
        )
    ctx.exit(1 if changes else 0)


@authz.command(name="export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option("--audit", is_flag=True, help="Include changed_by and changed_at columns (ignored on import).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.pass_context
def export_command(ctx: click.Context, fmt: Format, audit: bool, output: str | None) -> None:
    """Write the table as CSV or JSON, sorted (export then import round-trips exactly)."""
    table = _open(ctx)
    text = export_entries(table.list_entries() if audit else table.export_entries(), fmt)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@authz.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Default: by extension, else by content.")
@click.option("--dry-run", is_flag=True, help="Print the diff and change nothing.")
@click.option("--replace", is_flag=True, help="Also remove every entry the file does not list.")
@click.pass_context
def import_command(ctx: click.Context, file: str, fmt: Format | None, dry_run: bool, replace: bool) -> None:
    """Import entries from FILE (CSV or JSON; '-' = stdin): all or nothing, idempotent."""
    if file == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            data, name = Path(file).read_bytes(), file
        except OSError as exc:
            raise BadFile(f"cannot read {file}: {exc.strerror or exc}", file=file) from None
    text = decode(data, name)
    located = parse_text(text, fmt or detect_format(name, text), name)
    diff = _open(ctx).import_entries(
        [item.entry for item in located], changed_by=local_actor(), replace=replace, dry_run=dry_run
    )
    for change in diff.changes:
        click.echo(change.line())
    click.echo(("dry run: " if dry_run else "import: ") + diff.summary())


@authz.command()
@click.option("--principal", help="Only changes of exactly this access ID.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@click.pass_context
def history(ctx: click.Context, principal: str | None, limit: int) -> None:
    """Show the audit log of changes, newest first."""
    for r in _open(ctx).history(_access_id(principal) if principal else None, limit):
        effect = f"{r.effect_before or '-'} -> {r.effect_after or '-'}"
        when = r.changed_at.isoformat(timespec="seconds")
        click.echo(f"{when}  {r.changed_by}  {r.action:<7}  {effect:<15}  {r.role}  {r.scope}  {r.principal}")
