"""Privilege mapping (BMC RSCD's "User Privilege Mapping"): lend a user's groups, not the user.

A mapping rule may name ``privilege_map = "<local user>"`` instead of an account. The job then
runs as ONE dedicated unprivileged account (``[mapping.privilege_map] account``, the
counterpart of BladeLogicRSCD) whose supplementary groups are replaced by those of the named
user. The job gets the user's group privileges, never the user's uid or credentials.

Rules, each a security decision:

* the dedicated account's uid and gid are never 0, whatever ``allow_root`` says;
* a root-equivalent group (``ROOT_EQUIVALENT_GROUPS``, or gid 0) is never lent unless named
  in ``allow_groups``; otherwise the job is refused (``map.privileged_group``), not run with
  fewer groups than the rule promised;
* lending groups needs ``setgroups(2)``, so the agent must be root (the ``setuid`` executor);
* in the child, after the drop and before exec, the uid, gid and groups the job really got are
  checked again (``verify_in_child``).
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass

from agent_client.errors import ExecUnavailable, MapNoAccount, MapRootRefused
from agent_client.privileged_groups import ROOT_EQUIVALENT_GROUPS, MapPrivilegedGroup


@dataclass(frozen=True, slots=True)
class LentGroups:
    """The result of a privilege map: the dedicated account, with the lent user's groups."""

    account: str
    uid: int
    gid: int
    home: str
    shell: str
    lent_from: str
    groups: tuple[int, ...]
    group_names: tuple[str, ...]

    def describe(self) -> str:
        return f"groups of {self.lent_from} ({', '.join(self.group_names) or 'none'}) lent to {self.account}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def is_root_equivalent(gid: int, name: str) -> bool:
    return gid == 0 or name in ROOT_EQUIVALENT_GROUPS


def resolve_privilege_map(account: str, lent_from: str, allow_groups: Iterable[str], via: str) -> LentGroups:
    """Look both accounts up by name; refuse uid/gid 0 and unlisted root-equivalent groups."""
    # Why: lending groups is a setgroups(2) call, which only root may make; without root the
    # job would silently keep the agent's own groups.
    if os.geteuid() != 0:
        raise ExecUnavailable(f"{via}: a privilege map needs the agent to run as root (executor setuid)")
    try:
        dedicated = pwd.getpwnam(account)
    except KeyError:
        raise MapNoAccount(
            f"{via} names privilege-map account {account!r}, which does not exist", account=account
        ) from None
    try:
        lent = pwd.getpwnam(lent_from)
    except KeyError:
        raise MapNoAccount(
            f"{via} lends the groups of {lent_from!r}, which does not exist", account=lent_from
        ) from None
    # Why: the point of a privilege map is an unprivileged identity; uid or gid 0 would make
    # every lent group irrelevant. Not even allow_root changes this.
    if dedicated.pw_uid == 0 or dedicated.pw_gid == 0:
        raise MapRootRefused(
            f"{via}: privilege-map account {account} has uid {dedicated.pw_uid} / gid {dedicated.pw_gid}; "
            "it must be an unprivileged account",
            account=account,
        )
    allowed = frozenset(allow_groups)
    groups = tuple(sorted(set(os.getgrouplist(lent.pw_name, lent.pw_gid))))
    names = tuple(_group_name(gid) for gid in groups)
    refused = [
        name for gid, name in zip(groups, names, strict=True) if is_root_equivalent(gid, name) and name not in allowed
    ]
    if refused:
        raise MapPrivilegedGroup(
            f"{via}: {lent_from} is in root-equivalent group(s) {', '.join(refused)}, which are never lent; "
            "name each one in [mapping.privilege_map] allow_groups to lend it",
            account=lent_from,
            groups=refused,
        )
    return LentGroups(
        dedicated.pw_name, dedicated.pw_uid, dedicated.pw_gid, dedicated.pw_dir, dedicated.pw_shell,
        lent.pw_name, groups, names,
    )  # fmt: skip


def verify_in_child(uid: int, gid: int, groups: tuple[int, ...]) -> str | None:
    """In the job's process after the drop: what is wrong with its ids, or None (never uid 0)."""
    if 0 in os.getresuid() or uid == 0:
        return "a privilege-mapped job would run with uid 0"
    if os.getresuid() != (uid,) * 3:
        return f"the job's uids are {os.getresuid()}, not {uid}"
    if os.getresgid() != (gid,) * 3:
        return f"the job's gids are {os.getresgid()}, not {gid}"
    if sorted(set(os.getgroups())) != sorted(set(groups)):
        return f"the job's groups are {sorted(os.getgroups())}, not the lent {sorted(groups)}"
    return None
