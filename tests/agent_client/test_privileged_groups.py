"""Root-equivalent groups (agent_client/privileged_groups.py): a job mapped to an account in sudo,
disk, docker, ... is refused with ``map.privileged_group`` naming the group, unless the node's
configuration allows that group by name. Real accounts in real groups (root only)."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Iterator

import pytest

from agent_client.mapping import resolve_account
from agent_client.privileged_groups import ROOT_EQUIVALENT_GROUPS, MapPrivilegedGroup

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create accounts")
ACCOUNT = "jobsts-privgrp"


def _existing_group() -> str:
    for name in ("disk", "adm", "shadow", "sudo"):
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        return name
    pytest.skip("no root-equivalent group exists on this host")


@pytest.fixture
def member() -> Iterator[str]:
    group = _existing_group()
    subprocess.run(["userdel", ACCOUNT], capture_output=True, check=False)
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", group, ACCOUNT],
        check=True,
        capture_output=True,
    )
    try:
        yield group
    finally:
        subprocess.run(["userdel", ACCOUNT], capture_output=True, check=False)


def test_an_account_in_a_root_equivalent_group_is_refused_by_name(member: str) -> None:
    assert member in ROOT_EQUIVALENT_GROUPS
    assert pwd.getpwnam(ACCOUNT).pw_uid != 0
    with pytest.raises(MapPrivilegedGroup) as caught:
        resolve_account(ACCOUNT, via="test rule", allow_root=False)
    assert caught.value.code == "map.privileged_group"
    assert caught.value.data["group"] == member and repr(member) in caught.value.message


def test_an_explicit_per_group_allow_lifts_the_refusal(member: str) -> None:
    account = resolve_account(ACCOUNT, via="test rule", allow_root=False, allow_groups=frozenset({member}))
    assert grp.getgrnam(member).gr_gid in account.groups
    other = next(iter(ROOT_EQUIVALENT_GROUPS - {member}))
    with pytest.raises(MapPrivilegedGroup):
        resolve_account(ACCOUNT, via="test rule", allow_root=False, allow_groups=frozenset({other}))
