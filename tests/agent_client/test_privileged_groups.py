"""Root-equivalent groups (agent_client/privileged_groups.py): a job mapped to an account in sudo,
disk, docker, ... is refused with ``map.privileged_group`` naming the group, unless the node's
configuration allows that group by name. Real accounts in real groups (root only)."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
from collections.abc import Iterator

import pytest

from agent_client.mapping import resolve_account
from agent_client.privileged_groups import ROOT_EQUIVALENT_GROUPS, MapPrivilegedGroup
from tests.os_accounts import account_tool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create accounts")


def _existing_group() -> str:
    for name in ("disk", "adm", "shadow", "sudo"):
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        return name
    pytest.skip("no root-equivalent group exists on this host")


@pytest.fixture
def member() -> Iterator[tuple[str, str]]:
    """A fresh account (a unique name: suites running at once share the machine's accounts) in a
    root-equivalent group; yields (account, group)."""
    group = _existing_group()
    account = f"jspg{secrets.token_hex(4)}"
    account_tool(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", group, account])
    try:
        yield account, group
    finally:
        account_tool(["userdel", account], check=False)


def test_an_account_in_a_root_equivalent_group_is_refused_by_name(member: tuple[str, str]) -> None:
    account, group = member
    assert group in ROOT_EQUIVALENT_GROUPS
    assert pwd.getpwnam(account).pw_uid != 0
    with pytest.raises(MapPrivilegedGroup) as caught:
        resolve_account(account, via="test rule", allow_root=False)
    assert caught.value.code == "map.privileged_group"
    assert caught.value.data["group"] == group and repr(group) in caught.value.message


def test_an_explicit_per_group_allow_lifts_the_refusal(member: tuple[str, str]) -> None:
    name, group = member
    account = resolve_account(name, via="test rule", allow_root=False, allow_groups=frozenset({group}))
    assert grp.getgrnam(group).gr_gid in account.groups
    other = next(iter(ROOT_EQUIVALENT_GROUPS - {group}))
    with pytest.raises(MapPrivilegedGroup):
        resolve_account(name, via="test rule", allow_root=False, allow_groups=frozenset({other}))
