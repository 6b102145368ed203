"""Settings and entry rules shared by the ``ldap`` and ``ldif`` backends.

Both backends read users and groups the same way (same bases, object classes, unique id and
group semantics), so that one realm gives the same principal whichever backend holds it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from realms.errors import AccessIdInvalid, ConfigError
from realms.identity.access_id import AccessId
from realms.registries.groups import DEFAULT_MAX_DEPTH, MAX_MAX_DEPTH

GROUP_MODES = ("member", "memberOf", "posix")
MEMBER_GROUP_CLASSES = ("groupOfNames", "groupOfUniqueNames")
LOCKED_FOREVER = "000001010000Z"  # ppolicy: administratively locked until an admin unlocks


@functools.lru_cache(maxsize=4096)
def canonical_dn(dn: str) -> str:
    """The canonical spelling of a DN used in access IDs: lower-case types, no spaces around separators.

    Raises ``ValueError`` for a DN that does not parse (RFC 4514). Memoised: a pure function of
    the text, and the same few DNs (users, their groups, the bases) come back on every login.
    """
    try:
        parts = parse_dn(dn, strip=True)
    except LDAPInvalidDnError as exc:
        raise ValueError(str(exc)) from None
    return "".join(f"{attr.lower()}={value}{sep}" for attr, value, sep in parts)


def dn_key(dn: str) -> str:
    """A comparison key for DNs (distinguishedNameMatch, approximated case-insensitively)."""
    return canonical_dn(dn).lower()


def is_under(dn: str, base: str) -> bool:
    """True when ``dn`` is ``base`` or below it; ``base`` empty means everything."""
    if not base:
        return True
    try:
        key, base_key = dn_key(dn), dn_key(base)
    except ValueError:
        return False
    return key == base_key or key.endswith("," + base_key)


class TableReader:
    """Typed getters over one ``[realms.registry]`` table; errors name the realm and the field."""

    def __init__(self, realm: str, table: dict[str, Any]) -> None:
        self.realm = realm
        self.table = table
        self.used: set[str] = set()

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"realm {self.realm!r}: registry.{field}: {problem}", realm=self.realm, field=field)

    def _get(self, name: str, default: Any) -> Any:
        self.used.add(name)
        return self.table.get(name, default)

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self._get(name, default)
        if value is None and required:
            raise self.fail(name, "is required")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(name, "must be a string")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise self.fail(name, f"must be a number from {low} to {high}")
        return int(value)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise self.fail(name, f"must be a number from {low} to {high}")
        return float(value)

    def strings(self, name: str, default: Sequence[str]) -> tuple[str, ...]:
        value = self._get(name, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(name, "must be a non-empty list of strings")
        return tuple(value)

    def dn(self, name: str, default: str = "") -> str:
        value = self.string(name, default)
        if value:
            try:
                canonical_dn(value)
            except ValueError as exc:
                raise self.fail(name, f"not a DN: {exc}") from None
        return value

    def path(self, name: str, base_dir: Path, *, required: bool = True) -> Path | None:
        value = self.string(name, required=required)
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else base_dir / path

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown setting")


@dataclass(frozen=True, slots=True)
class DirectorySchema:
    """Where users and groups live and how they are read (both backends)."""

    user_base: str = ""
    user_object_class: str = "inetOrgPerson"
    user_attribute: str = "uid"
    unique_id: str = "dn"
    display_name_attribute: str = "displayName"
    group_base: str = ""
    group_mode: str = "member"
    group_object_classes: tuple[str, ...] = MEMBER_GROUP_CLASSES
    nested: bool = True
    max_depth: int = DEFAULT_MAX_DEPTH

    @classmethod
    def read(cls, reader: TableReader, *, require_bases: bool) -> DirectorySchema:
        user_base = reader.dn("user_base")
        if require_bases and not user_base:
            raise reader.fail("user_base", "is required")
        group_base = reader.dn("group_base")
        if require_bases and not group_base:
            raise reader.fail("group_base", "is required")
        group_mode = reader.string("group_mode", "member")
        if group_mode not in GROUP_MODES:
            raise reader.fail("group_mode", f"must be one of {', '.join(GROUP_MODES)}")
        posix = group_mode == "posix"
        default_classes = ("posixGroup",) if posix else MEMBER_GROUP_CLASSES
        nested = reader.boolean("nested", not posix)
        if nested and posix:
            raise reader.fail("nested", "posixGroup memberUid holds user names, so posix groups cannot nest")
        names = {}
        for name, default in (
            ("user_object_class", "inetOrgPerson"),
            ("user_attribute", "uid"),
            ("unique_id", "dn"),
            ("display_name_attribute", "displayName"),
        ):
            names[name] = reader.string(name, default)
            if not names[name].replace("-", "").replace(";", "").isalnum():
                raise reader.fail(name, "must be an attribute or object class name")
        return cls(
            user_base=user_base,
            group_base=group_base,
            group_mode=group_mode,
            group_object_classes=reader.strings("group_object_classes", default_classes),
            nested=nested,
            max_depth=reader.integer("max_depth", DEFAULT_MAX_DEPTH, 0, MAX_MAX_DEPTH),
            **names,
        )

    @property
    def uses_dn(self) -> bool:
        return self.unique_id.lower() == "dn"

    def unique_value(self, dn: str, attrs: dict[str, list[str]]) -> str | None:
        """The unique id of an entry: its canonical DN, or the first value of ``unique_id``."""
        if self.uses_dn:
            try:
                return canonical_dn(dn)
            except ValueError:
                return None
        values = attrs.get(self.unique_id.lower(), [])
        return values[0] if values else None

    def user_id(self, realm: str, dn: str, attrs: dict[str, list[str]]) -> AccessId | None:
        value = self.unique_value(dn, attrs)
        try:
            return AccessId.user(realm, value) if value else None
        except AccessIdInvalid:
            return None

    def group_id(self, realm: str, dn: str, attrs: dict[str, list[str]]) -> AccessId | None:
        value = self.unique_value(dn, attrs)
        try:
            return AccessId.group(realm, value) if value else None
        except AccessIdInvalid:
            return None


def is_locked(attrs: dict[str, list[str]], *, any_value: bool) -> bool:
    """An entry locked by ppolicy's ``pwdAccountLockedTime``.

    The permanent marker ``000001010000Z`` always locks. With ``any_value`` (a file has no
    lockout clock to expire a timed lock) any value locks.
    """
    values = attrs.get("pwdaccountlockedtime", [])
    return bool(values) and (any_value or LOCKED_FOREVER in values)
