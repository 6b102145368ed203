"""Reading one table of the agent's TOML: every error names the file and the field.

Also the account-name rule that every reader of account names (mapping rules, remote hosts'
``sudo_users``) applies.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from agent_client.errors import AgentConfigInvalid, MapBadAccount

# Why: account and group names reach pwd/grp, sudo's argv and log lines. A strict POSIX-ish
# pattern (no leading digit, "-" or "#", no whitespace or shell characters) means a name can
# never be read as a uid ("0"), a sudo "#uid" spec ("#-1"), an option ("-u") or shell syntax.
ACCOUNT_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def check_account_name(name: object, what: str = "account") -> str:
    """Return ``name`` if it matches the strict account pattern, else raise ``map.bad_account``."""
    if not isinstance(name, str) or ACCOUNT_NAME.fullmatch(name) is None:
        shown = repr(name)[:40]
        raise MapBadAccount(
            f"{what} name {shown} is not a valid local name (expected [a-z_][a-z0-9_-]{{0,31}})", account=shown
        )
    return name


class TableReader:
    """Reads one TOML table and names the file and field in every error."""

    def __init__(self, path: Path, table: Any, prefix: str) -> None:
        if not isinstance(table, dict):
            raise AgentConfigInvalid(f"{path}: [{prefix}] must be a table", field=prefix)
        self.path, self.table, self.prefix, self.used = path, table, prefix, set[str]()

    def fail(self, name: str, problem: str) -> AgentConfigInvalid:
        where = f"{self.prefix}.{name}" if self.prefix else name
        return AgentConfigInvalid(f"{self.path}: {where}: {problem}", field=where)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., problem: str = "") -> Any:
        self.used.add(name)
        if name not in self.table:
            if default is ...:
                raise self.fail(name, "is required")
            return default
        value = self.table[name]
        if isinstance(value, bool) and kind is int:
            raise self.fail(name, problem or "must be a whole number")
        if not isinstance(value, kind):
            raise self.fail(name, problem or f"must be a {getattr(kind, '__name__', 'value')}")
        return value

    def number(self, name: str, default: int, low: int, high: int) -> int:
        value: int = self.get(name, int, default, f"must be a whole number from {low} to {high}")
        if not low <= value <= high:
            raise self.fail(name, f"must be a whole number from {low} to {high}")
        return value

    def done(self) -> None:
        unknown = set(self.table) - self.used
        if unknown:
            raise self.fail(sorted(unknown)[0], "unknown setting")


def config_path(base: Path, text: str) -> Path:
    # Why: normalised but NOT resolved, so a symlink anywhere in the path stays visible to the
    # strict file-mode check instead of being silently followed.
    return Path(os.path.normpath(os.path.join(base, text)))
