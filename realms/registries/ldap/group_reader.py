"""How the ``ldap`` registry reads a user's groups: member search, ``memberOf`` or posixGroup
``memberUid``; nested groups level by level (``realms.registries.groups``), with the closure
above the live direct groups kept in a ``ClosureCache`` for ``group_cache_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable

from realms.registries.directory import dn_key, is_under
from realms.registries.groups import resolve_nested
from realms.registries.ldap import wire
from realms.registries.ldap.config import LdapRegistryConfig
from realms.registries.ldap.group_cache import ClosureCache
from realms.registries.ldap.search import ServiceSearch
from realms.registries.ldap.values import DecodedEntry

Entry = tuple[str, dict[str, list[str]]]  # (dn as the server returned it, attrs by lower-case name)


class GroupReader:
    """A user's groups as (dn, attrs) entries, read through ``search`` (which makes the refusals)."""

    def __init__(self, realm: str, config: LdapRegistryConfig, search: ServiceSearch) -> None:
        self.realm, self.config, self.search = realm, config, search
        self.closures: ClosureCache[tuple[Entry, ...]] = ClosureCache(config.group_cache_seconds)

    def class_filter(self) -> wire.Filter:
        return wire.any_of(*(wire.equality("objectClass", c) for c in self.config.schema.group_object_classes))

    def groups(self, user: DecodedEntry, username: str) -> tuple[Entry, ...]:
        """The user's groups: direct ones read live, their closure from the cache when fresh."""
        schema = self.config.schema
        wanted = [] if schema.uses_dn else [schema.unique_id]
        found: dict[str, Entry] = {}

        def record(entries: list[DecodedEntry]) -> set[str]:
            keys = set()
            for entry in entries:
                # Why: a group whose name is not text cannot be put in a token, and dropping it
                # could drop a group that a node's table denies: refuse the login instead.
                if problem := entry.problem():
                    raise self.search.value_invalid(f"group {entry.dn!r}", problem)
                # is_under() is False for a DN that does not parse, so dn_key() below is safe.
                if is_under(entry.dn, schema.group_base):
                    found.setdefault(dn_key(entry.dn), (entry.dn, entry.attrs))
                    keys.add(dn_key(entry.dn))
            return keys

        def search_groups(filter_: wire.Filter) -> list[DecodedEntry]:
            return self.search(schema.group_base, filter_, "SUBTREE", wanted, 0, complete=True)

        parents_of: Callable[[frozenset[str]], set[str]]
        if schema.group_mode == "posix":
            return tuple(
                found[k]
                for k in sorted(
                    record(search_groups(wire.all_of(self.class_filter(), wire.equality("memberUid", username))))
                )
            )
        if schema.group_mode == "member":

            def members_of(dns: list[str]) -> list[DecodedEntry]:
                terms = [t for d in dns for t in (wire.equality("member", d), wire.equality("uniqueMember", d))]
                return search_groups(wire.all_of(self.class_filter(), wire.any_of(*terms)))

            direct = record(members_of([user.dn]))
            cache_key: frozenset[str] = frozenset(direct)

            def parents_member(level: frozenset[str]) -> set[str]:
                return record(members_of([found[k][0] for k in sorted(level)]))

            parents_of = parents_member
        else:
            member_of: dict[str, list[str]] = {}
            direct_dns = [dn for dn in user.attrs.get("memberof", []) if is_under(dn, schema.group_base)]
            if len(direct_dns) > self.config.max_groups:
                raise self.search.too_many("memberOf")
            cache_key = frozenset(_dn_key_or_self(dn) for dn in direct_dns)
            cached = self.closures.get(cache_key)
            if cached is not None:
                return cached

            def read_groups(dns: list[str]) -> set[str]:
                keys = set()
                for dn in dns:
                    if not is_under(dn, schema.group_base):
                        continue
                    entries = self.search(dn, self.class_filter(), "BASE", [*wanted, "memberOf"], 1, missing_ok=True)
                    for key in record(entries):
                        member_of[key] = found[key][1].get("memberof", [])
                        keys.add(key)
                return keys

            direct = read_groups(direct_dns)

            def parents_memberof(level: frozenset[str]) -> set[str]:
                return read_groups([p for k in sorted(level) for p in member_of.get(k, [])])

            parents_of = parents_memberof
        cached = self.closures.get(("member", cache_key)) if schema.group_mode == "member" else None
        if cached is not None:
            return (*[found[k] for k in sorted(direct)], *cached)
        keys = resolve_nested(direct, parents_of, nested=schema.nested, max_depth=schema.max_depth, realm=self.realm)
        if len(keys) > self.config.max_groups:
            raise self.search.too_many(schema.group_base)
        groups = tuple(found[k] for k in sorted(keys))
        if schema.group_mode == "member":
            # The direct groups are read live on every login; only their ancestors are cached.
            self.closures.put(("member", cache_key), tuple(found[k] for k in sorted(keys - direct)))
        else:
            self.closures.put(cache_key, groups)
        return groups


def _dn_key_or_self(dn: str) -> str:
    try:
        return dn_key(dn)
    except ValueError:
        return dn
