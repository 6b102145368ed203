"""What ``jobsts agent check`` lists about root-equivalent groups in the node's mapping.

For every account a mapping rule (or the fallback) names, the root-equivalent groups
(``agent_client/privileged_groups.py``) it is in, and which of them
``[mapping] allow_privileged_groups`` lifts; for a privilege map, the groups of the user
whose groups are lent, against ``[mapping.privilege_map] allow_groups``. A job mapped there
is refused with ``map.privileged_group`` unless every such group is allowed; the listing
shows an administrator that before any job does.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import asdict, dataclass

from agent_client.config import MappingConfig
from agent_client.privileged_groups import ROOT_EQUIVALENT_GROUPS, group_names


@dataclass(frozen=True, slots=True)
class PrivilegedMapping:
    """One mapping target in root-equivalent groups, and which of them are allowed."""

    source: str  # "rule 2 (group ...)" or "fallback"
    account: str
    lends_groups_of: str | None
    groups: tuple[str, ...]
    allowed: tuple[str, ...]
    refused: tuple[str, ...]

    def describe(self) -> str:
        whose = f"groups of {self.lends_groups_of} lent to {self.account}" if self.lends_groups_of else self.account
        verdict = f"refused unless allowed: {', '.join(self.refused)}" if self.refused else "every one allowed"
        return f"privileged groups: {self.source}: {whose} in {', '.join(self.groups)}; {verdict}"

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def _groups_of(name: str) -> tuple[str, ...] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None  # an unknown account is refused per job with its own code
    return tuple(sorted(set(group_names(tuple(os.getgrouplist(name, entry.pw_gid))))))


def _entry(source: str, account: str, lent: str | None, allow: frozenset[str]) -> PrivilegedMapping | None:
    groups = _groups_of(lent or account)
    if groups is None:
        return None
    privileged = tuple(name for name in groups if name in ROOT_EQUIVALENT_GROUPS)
    if not privileged:
        return None
    allowed = tuple(name for name in privileged if name in allow)
    refused = tuple(name for name in privileged if name not in allow)
    return PrivilegedMapping(source, account, lent, privileged, allowed, refused)


def privileged_mappings(mapping: MappingConfig) -> list[PrivilegedMapping]:
    """Every mapping target of this configuration that is in a root-equivalent group."""
    found: list[PrivilegedMapping] = []
    lender = mapping.privilege_map.account or "(no privilege_map account)"
    for number, rule in enumerate(mapping.rules, start=1):
        source = f"rule {number} ({rule.kind} {rule.match})"
        if rule.privilege_map is not None:
            entry = _entry(source, lender, rule.privilege_map, mapping.privilege_map.allow_groups)
        else:
            entry = _entry(source, rule.account, None, mapping.allow_privileged_groups)
        if entry is not None:
            found.append(entry)
    if mapping.fallback != "deny":
        entry = _entry("fallback", mapping.fallback, None, mapping.allow_privileged_groups)
        if entry is not None:
            found.append(entry)
    return found
