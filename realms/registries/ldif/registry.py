"""The ``ldif`` registry backend: users and groups from an LDIF file (the embedded default).

It answers exactly as the ``ldap`` backend does for the same entries: the same bases and
object classes, the same access IDs, the same group semantics (``member``/``uniqueMember``,
or posixGroup ``memberUid``) with the same nesting rules. ``userPassword`` values are
verified in the schemes slapd writes (see ``realms.registries.ldif.password_hashes``). The file is read once
at ``open``; the registry holds only immutable indexes afterwards, so it is thread-safe.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from realms.errors import ConfigError
from realms.identity.access_id import AccessId
from realms.identity.credentials import usable_password, usable_username
from realms.identity.principal import Principal
from realms.registries.directory import dn_key, is_locked, is_under
from realms.registries.groups import resolve_nested
from realms.registries.ldif.config import LdifRegistryConfig
from realms.registries.ldif.format import LdifEntry, read_ldif
from realms.registries.ldif.password_hashes import hash_password, verify_password

log = logging.getLogger(__name__)

# Verified when the user is unknown, so that an unknown name costs as much as a wrong password.
_DUMMY_HASH = hash_password("jobsts-dummy-password", "SSHA256")


def match_key(value: str) -> str:
    """caseIgnoreMatch as slapd applies it to ``uid``: case-folded, insignificant spaces removed (RFC 4518)."""
    return " ".join(value.split()).casefold()


@dataclass(frozen=True, slots=True)
class _Group:
    access_id: AccessId | None
    parents: frozenset[str]  # dn keys of the groups this group is a member of


class LdifRegistry:
    """A read-only registry over one LDIF file (see the module docstring)."""

    def __init__(self, realm: str, config: LdifRegistryConfig) -> None:
        self.realm = realm
        self.config = config
        schema = config.schema
        entries = read_ldif(config.path)
        for entry in entries:
            try:
                dn_key(entry.dn)
            except ValueError as exc:
                raise ConfigError(
                    f"realm {realm!r}: {config.path}:{entry.line}: bad dn {entry.dn[:80]!r}: {exc}",
                    realm=realm,
                    field="path",
                ) from None
        user_class = schema.user_object_class.lower()
        self._users: dict[str, list[LdifEntry]] = defaultdict(list)
        for entry in entries:
            if user_class in entry.object_classes and is_under(entry.dn, schema.user_base):
                for value in entry.get(schema.user_attribute):
                    self._users[match_key(value)].append(entry)
        self._member_of: dict[str, set[str]] = defaultdict(set)  # member key -> group dn keys
        group_classes = {c.lower() for c in schema.group_object_classes}
        groups: dict[str, AccessId | None] = {}
        for entry in entries:
            if not entry.object_classes & group_classes or not is_under(entry.dn, schema.group_base):
                continue
            key = dn_key(entry.dn)
            groups[key] = schema.group_id(realm, entry.dn, entry.attrs)
            if schema.group_mode == "posix":
                for uid in entry.get("memberUid"):
                    self._member_of["uid:" + match_key(uid)].add(key)
                continue
            for value in (*entry.get("member"), *entry.get("uniqueMember")):
                # uniqueMember may carry an optional "#'...'B" UID suffix (RFC 4517 NameAndOptionalUID).
                member = value.split("#", 1)[0] if "#'" in value else value
                try:
                    self._member_of[dn_key(member)].add(key)
                except ValueError:
                    log.warning("realm %s: group %s has a member that is not a DN", realm, entry.dn)
        self._groups = {key: _Group(aid, frozenset(self._member_of.get(key, ()))) for key, aid in groups.items()}

    def _find(self, username: str) -> LdifEntry | None:
        if not usable_username(username):
            return None
        found = self._users.get(match_key(username), [])
        # Why: exactly one entry may match; two entries sharing a name must not let the
        # password of either one log in as "the" user.
        return found[0] if len(found) == 1 else None

    def _principal(self, entry: LdifEntry, username: str) -> Principal | None:
        schema = self.config.schema
        access_id = schema.user_id(self.realm, entry.dn, entry.attrs)
        if access_id is None:
            log.warning("realm %s: user %s has no usable %s", self.realm, entry.dn, schema.unique_id)
            return None
        names = entry.get(schema.user_attribute)
        name = next((n for n in names if match_key(n) == match_key(username)), names[0])
        if schema.group_mode == "posix":
            direct = self._member_of.get("uid:" + match_key(name), set())
        else:
            direct = self._member_of.get(dn_key(entry.dn), set())

        def parents_of(level: frozenset[str]) -> set[str]:
            return {p for key in level if key in self._groups for p in self._groups[key].parents}

        keys = resolve_nested(
            (k for k in direct if k in self._groups),
            parents_of,
            nested=schema.nested,
            max_depth=schema.max_depth,
            realm=self.realm,
        )
        groups = frozenset(aid for k in keys if k in self._groups and (aid := self._groups[k].access_id))
        display = entry.first(schema.display_name_attribute) or name
        return Principal(self.realm, name, access_id, display, groups)

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The principal when ``password`` matches one of the entry's ``userPassword`` values, else None."""
        if not usable_password(password):
            return None
        entry = self._find(username)
        if entry is None:
            verify_password(_DUMMY_HASH, password)
            return None
        allow = self.config.allow_plaintext
        if not any(verify_password(v, password, allow_plaintext=allow) for v in entry.get("userPassword")):
            return None
        # Why: a locked account gets the same answer as a wrong password (no account probing).
        if is_locked(entry.attrs, any_value=True):
            return None
        return self._principal(entry, username)

    def lookup(self, username: str) -> Principal | None:
        """The principal for ``username`` without a password (None when unknown, ambiguous or locked)."""
        entry = self._find(username)
        if entry is None or is_locked(entry.attrs, any_value=True):
            return None
        return self._principal(entry, username)

    def close(self) -> None:
        """Nothing to release: the file was read at open."""
