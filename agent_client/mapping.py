"""Decision step (f): which local account runs the job (BMC's exports/users/users.local).

Rules are tried by kind: exact access ID, then group, then role, then realm (file order
within a kind). Then user equivalency, where enabled for the token's realm. Then the
fallback policy: ``deny`` (default), ``nobody`` or a named account, always recorded in
the result. Names are resolved by name only (``pwd.getpwnam``), never as numbers.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from dataclasses import dataclass

from agent_client.authorization import Decider, Principals
from agent_client.config import MappingConfig, MappingRule
from agent_client.config_reader import check_account_name
from agent_client.errors import MapNoAccount, MapRootRefused
from agent_client.privilege_map import resolve_privilege_map
from agent_client.privileged_groups import MapPrivilegedGroup, group_names, privileged_groups
from authz_tables.entries import Scope
from realms.identity.access_id import AccessId

RULE_ORDER = ("access_id", "group", "role", "realm")
# Why: password/group database lookups go through NSS (files, sssd, LDAP) and cost as much as
# a signature check; like nscd, answers are reused for a few seconds only, so a removed or
# changed account is noticed almost at once, and a missing account is never cached.
NSS_CACHE_SECONDS = 5.0
_nss_cache: dict[tuple[str, str | None], tuple[float, pwd.struct_passwd, int, tuple[int, ...]]] = {}


def _lookup(name: str, primary_group: str | None, via: str) -> tuple[pwd.struct_passwd, int, tuple[int, ...], float]:
    """The account, its gid and groups, and when (``time.monotonic``) they were read from NSS."""
    key = (name, primary_group)
    cached = _nss_cache.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < NSS_CACHE_SECONDS:
        return cached[1], cached[2], cached[3], cached[0]
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise MapNoAccount(f"{via} names account {name!r}, which does not exist on this host", account=name) from None
    gid = entry.pw_gid
    if primary_group is not None:
        try:
            gid = grp.getgrnam(primary_group).gr_gid
        except KeyError:
            raise MapNoAccount(
                f"{via} names group {primary_group!r}, which does not exist on this host", account=name
            ) from None
    groups = tuple(sorted(set(os.getgrouplist(name, gid))))
    _nss_cache[key] = (now, entry, gid, groups)
    return entry, gid, groups, now


@dataclass(frozen=True, slots=True)
class Account:
    """A resolved local account and how it was chosen (``via`` goes into the trace and the result)."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    shell: str
    load_profile: bool
    via: str
    primary_group: str | None = None
    lent_from: str | None = None  # a privilege map: whose groups the job got (``privilege_map``)


def resolve_account(
    name: str,
    *,
    primary_group: str | None = None,
    load_profile: bool = False,
    via: str,
    allow_root: bool,
    allow_groups: frozenset[str] = frozenset(),
) -> Account:
    """Look ``name`` up by name only; refuse bad names, missing accounts and root unless allowed."""
    return _resolve(
        name, primary_group=primary_group, load_profile=load_profile, via=via,
        allow_root=allow_root, allow_groups=allow_groups,
    )[0]  # fmt: skip


def _resolve(
    name: str,
    *,
    primary_group: str | None = None,
    load_profile: bool = False,
    via: str,
    allow_root: bool,
    allow_groups: frozenset[str] = frozenset(),
) -> tuple[Account, float]:
    """``resolve_account``, and when the NSS answers it rests on were read (``time.monotonic``)."""
    check_account_name(name)
    if primary_group is not None:
        check_account_name(primary_group, "group")
    entry, gid, groups, read_at = _lookup(name, primary_group, via)
    # Why: uid 0, gid 0 or membership of group 0 all give root's powers (or root-owned files);
    # such an account must be an explicit decision of the node's admin, never a side effect.
    if (entry.pw_uid == 0 or gid == 0 or 0 in groups) and not allow_root:
        raise MapRootRefused(
            f"{via} maps to {name!r} (uid {entry.pw_uid}, gid {gid}), which has root powers; "
            "set [mapping] allow_root = true to allow it",
            account=name,
        )
    # Why: sudo, docker, disk, shadow, ... give root's powers as surely as uid 0 does; a job
    # must never get them as a side effect of a mapping, only by the admin's explicit allow.
    # (Group 0 is root's own: allow_root, checked above, is the decision for it.)
    privileged = privileged_groups((gid, *groups), allow_groups | ({"root"} if allow_root else set()))
    if privileged:
        raise MapPrivilegedGroup(
            f"{via} maps to {name!r}, a member of root-equivalent group {privileged[0]!r}; "
            f"set [mapping] allow_privileged_groups = [{privileged[0]!r}] to allow it",
            account=name,
            group=privileged[0],
            account_groups=group_names(tuple(dict.fromkeys((gid, *groups)))),
        )
    account = Account(name, entry.pw_uid, gid, groups, entry.pw_dir, entry.pw_shell, load_profile, via, primary_group)
    return account, read_at


_group_texts: dict[tuple[int, ...], tuple[float, str]] = {}


def groups_text(account: Account) -> str:
    """The account's primary and supplementary groups as ``name(gid)``, for the decision trace.

    Names come from NSS, reused within the same cache window as the accounts themselves.
    """
    gids = tuple(dict.fromkeys((account.gid, *account.groups)))
    cached = _group_texts.get(gids)
    now = time.monotonic()
    if cached is not None and now - cached[0] < NSS_CACHE_SECONDS:
        return cached[1]
    text = ", ".join(f"{name}({gid})" for gid, name in zip(gids, group_names(gids), strict=True))
    if len(_group_texts) >= MAX_REMEMBERED_MAPPINGS:
        _group_texts.clear()
    _group_texts[gids] = (now, text)
    return text


def privilege_mapped_account(account: str, lent_from: str, config: MappingConfig, via: str) -> Account:
    """The dedicated account with ``lent_from``'s supplementary groups (``privilege_map``)."""
    lent = resolve_privilege_map(account, lent_from, config.privilege_map.allow_groups, via)
    return Account(
        lent.account, lent.uid, lent.gid, lent.groups, lent.home, lent.shell, False,
        f"privilege map: {lent.describe()}, via {via}", None, lent.lent_from,
    )  # fmt: skip


def _equivalent_name(subject: AccessId) -> str | None:
    """``uid=<name>,...`` → ``<name>`` (the first RDN only); ``None`` for any other unique id."""
    first, _, _ = subject.name.partition(",")
    attribute, sep, value = first.partition("=")
    if not sep or attribute.strip().lower() != "uid":
        return None
    return value


def _matches(rule: MappingRule, principals: Principals, table: Decider, scopes: tuple[Scope, ...]) -> bool:
    if rule.kind == "access_id":
        return rule.access_id == principals.subject
    if rule.kind == "group":
        return rule.access_id in principals.access_ids
    if rule.kind == "role":
        assert rule.role is not None
        return table.decide(principals.keys, rule.role, scopes).allowed
    return rule.match == principals.realm


# map_account's answers: (config id, principal keys, realm, scope texts, role-rule verdicts) ->
# (the config, the account, until when it may be reused).
_MappingKey = tuple[int, tuple[str, ...], str, tuple[str, ...], tuple[bool, ...]]
_mapped: dict[_MappingKey, tuple[MappingConfig, Account, float]] = {}
MAX_REMEMBERED_MAPPINGS = 4096


def map_account(
    principals: Principals, config: MappingConfig, table: Decider, scopes: tuple[Scope, ...] = ()
) -> Account:
    """Choose the local account for ``principals``; raise a ``map.*`` refusal if none may be used."""
    # Why a memo is safe: the choice depends only on the principals, the configuration, the
    # table's verdicts for the role rules (all in the key) and NSS answers, and it is reused only
    # while those answers are inside the NSS cache window. Refusals, privilege maps (read live)
    # and choices made because an account was missing are never remembered.
    verdicts = tuple(
        [
            table.decide(principals.keys, rule.role, scopes).allowed
            for rule in config.rules
            if rule.kind == "role" and rule.role is not None
        ]
    )
    key = (id(config), principals.keys, principals.realm, tuple([str(s) for s in scopes]) if scopes else (), verdicts)
    found = _mapped.get(key)
    now = time.monotonic()
    if found is not None and found[0] is config and now < found[2]:
        return found[1]
    account, read_at = _choose(principals, config, table, scopes)
    if read_at > 0:
        if len(_mapped) >= MAX_REMEMBERED_MAPPINGS:
            _mapped.clear()
        _mapped[key] = (config, account, read_at + NSS_CACHE_SECONDS)
    return account


def _choose(
    principals: Principals, config: MappingConfig, table: Decider, scopes: tuple[Scope, ...]
) -> tuple[Account, float]:
    """The account, and when its NSS answers were read (0: not to be remembered)."""
    for kind in RULE_ORDER:
        for index, rule in enumerate(config.rules):
            if rule.kind == kind and _matches(rule, principals, table, scopes):
                via = f"mapping rule {index} ({kind} {rule.match})"
                if rule.privilege_map is not None:
                    return privilege_mapped_account(rule.account, rule.privilege_map, config, via), 0.0
                return _resolve(
                    rule.account,
                    primary_group=rule.primary_group,
                    load_profile=rule.load_profile,
                    via=via,
                    allow_root=config.allow_root,
                    allow_groups=config.allow_privileged_groups,
                )
    missing = False
    if principals.realm in config.equivalency:
        name = _equivalent_name(principals.subject)
        if name is not None:
            via = f"user equivalency in realm {principals.realm}"
            # Why: the name comes from a token, so it must pass the same strict pattern as a
            # configured name; a bad one is refused, not skipped, so an odd uid is noticed.
            check_account_name(name)
            try:
                account, read_at = _resolve(
                    name, via=via, allow_root=config.allow_root, allow_groups=config.allow_privileged_groups
                )
            except MapNoAccount:
                account, missing = None, True  # no such local account: equivalency does not apply
            # Why: a remote user called "bin" or "daemon" must not become the system account of
            # that name; equivalency covers ordinary login accounts only (uid >= min uid).
            if account is not None and account.uid >= config.equivalency_min_uid:
                return account, read_at
    if config.fallback == "deny":
        raise MapNoAccount(
            f"no mapping rule or user equivalency gives an account for {principals.subject}, and the fallback is deny",
            access_id=str(principals.subject),
        )
    account, read_at = _resolve(
        config.fallback,
        via=f"fallback {config.fallback}",
        allow_root=config.allow_root,
        allow_groups=config.allow_privileged_groups,
    )
    # A missing account is never cached: once it is created, equivalency must apply at once.
    return account, 0.0 if missing else read_at
