"""Privilege mapping with REAL accounts and groups (root only): what the job really gets.

The job runs as the dedicated account (never uid 0) with exactly the lent user's groups;
root-equivalent groups are refused unless allowed one by one; the trace and the result say
that a privilege map was used and whose groups were lent.
"""

from __future__ import annotations

import grp
import pwd
from pathlib import Path
from typing import cast

import pytest

from agent_client.config import Limits, MappingConfig, MappingRule, PrivilegeMapConfig, config_from_mapping
from agent_client.decision import NodeDecider
from agent_client.errors import AgentConfigInvalid, MapRootRefused
from agent_client.executors import executor_for, run_job
from agent_client.journal import StartedJournal
from agent_client.loop import executed_result
from agent_client.mapping import privilege_mapped_account
from agent_client.privilege_map import verify_in_child
from agent_client.privileged_groups import MapPrivilegedGroup
from agent_client.trust_store import TrustStore
from tests.agent_client.conftest import DEFAULT_TABLE, TRUSTED, make_job, mint, policy, table
from tests.agent_client.test_executors import PROBE, PYTHON, Accounts, _probe, _spec, accounts, root_only

pytestmark = root_only
__all__ = ["accounts"]


def mapping(dedicated: str, lent: str, allow: tuple[str, ...] = ()) -> MappingConfig:
    return MappingConfig(
        rules=(MappingRule("realm", TRUSTED, dedicated, privilege_map=lent),),
        privilege_map=PrivilegeMapConfig(dedicated, frozenset(allow)),
    )


def test_job_runs_as_the_dedicated_account_with_the_lent_groups(accounts: Accounts) -> None:
    lent_a, lent_b, own_extra = accounts.group(), accounts.group(), accounts.group()
    dedicated = accounts.user(groups=(own_extra,), login_shell="/usr/sbin/nologin")
    lent = accounts.user(groups=(lent_a, lent_b))
    account = privilege_mapped_account(dedicated, lent, mapping(dedicated, lent), "test rule")
    assert executor_for("sudo", account).name == "setuid"  # only setgroups can lend groups
    result = run_job(executor_for("setuid", account), account, _spec([PYTHON, "-c", PROBE]), Limits())
    assert (result.code, result.exit_code) == (None, 0), result.stderr_tail
    probe = _probe(result.stdout_tail)
    me, them = pwd.getpwnam(dedicated), pwd.getpwnam(lent)
    assert probe["uid"] == [me.pw_uid] * 3 and me.pw_uid != 0
    assert probe["gid"] == [me.pw_gid] * 3
    expected = sorted({them.pw_gid, grp.getgrnam(lent_a).gr_gid, grp.getgrnam(lent_b).gr_gid})
    assert probe["groups"] == expected  # the lent user's groups, exactly...
    assert grp.getgrnam(own_extra).gr_gid not in probe["groups"]  # ...not the account's own
    assert account.via.startswith(f"privilege map: groups of {lent} ") and f"lent to {dedicated}" in account.via


@pytest.mark.parametrize("privileged", ["adm", "disk"])
def test_root_equivalent_groups_are_refused_unless_allowed_one_by_one(accounts: Accounts, privileged: str) -> None:
    dedicated = accounts.user(login_shell="/usr/sbin/nologin")
    lent = accounts.user(groups=(privileged,))
    with pytest.raises(MapPrivilegedGroup, match=f"root-equivalent group\\(s\\) {privileged}"):
        privilege_mapped_account(dedicated, lent, mapping(dedicated, lent), "rule")
    other = "disk" if privileged == "adm" else "adm"
    with pytest.raises(MapPrivilegedGroup):
        privilege_mapped_account(dedicated, lent, mapping(dedicated, lent, allow=(other,)), "rule")
    account = privilege_mapped_account(dedicated, lent, mapping(dedicated, lent, allow=(privileged,)), "rule")
    result = run_job(executor_for("setuid", account), account, _spec([PYTHON, "-c", PROBE]), Limits())
    assert grp.getgrnam(privileged).gr_gid in cast(list[int], _probe(result.stdout_tail)["groups"])


def test_group_zero_is_never_lent_by_default(accounts: Accounts) -> None:
    dedicated = accounts.user(login_shell="/usr/sbin/nologin")
    lent = accounts.user(groups=("root",))
    with pytest.raises(MapPrivilegedGroup, match="root"):
        privilege_mapped_account(dedicated, lent, mapping(dedicated, lent), "rule")


def test_the_dedicated_account_is_never_root(accounts: Accounts) -> None:
    lent = accounts.user()
    config = mapping("root", lent)
    with pytest.raises(MapRootRefused, match="must be an unprivileged account"):
        privilege_mapped_account("root", lent, config, "rule")
    # allow_root (for ordinary rules) does not change it.
    with pytest.raises(MapRootRefused):
        privilege_mapped_account(
            "root", lent, MappingConfig(config.rules, allow_root=True, privilege_map=config.privilege_map), "rule"
        )


def test_the_child_check_refuses_uid_zero() -> None:
    # In this (root) process the ids are 0: the check that runs in every privilege-mapped child says so.
    assert verify_in_child(0, 0, ()) == "a privilege-mapped job would run with uid 0"


def test_trace_and_result_name_the_privilege_map(
    accounts: Accounts, trust: TrustStore, journal: StartedJournal
) -> None:
    group = accounts.group()
    dedicated = accounts.user(login_shell="/usr/sbin/nologin")
    lent = accounts.user(groups=(group,))
    decider = NodeDecider(policy(mapping=mapping(dedicated, lent)), trust, table(*DEFAULT_TABLE), journal=journal)
    job = make_job({"argv": ["/usr/bin/id", "-Gn"]})
    decision = decider.decide(job, mint(job))
    assert decision.allowed, decision.explain()
    assert decision.account is not None and decision.account.lent_from == lent
    step_f = decision.trace[-1]
    assert (
        step_f.step == "f"
        and f"privilege map: groups of {lent}" in step_f.detail
        and f"lent to {dedicated}" in step_f.detail
    )
    assert decision.job is not None
    result = run_job(executor_for("setuid", decision.account), decision.account, decision.job.spec, Limits())
    # id -Gn: the dedicated account's own primary group, then the lent ones.
    assert sorted(result.stdout_tail.split()) == sorted({dedicated, lent, group})
    report = executed_result(decision, result, "setuid")
    assert report.account == dedicated
    assert f"privilege map: groups of {lent}" in (report.reason or "")


def test_privilege_map_config(tmp_path: Path) -> None:
    base = {
        "agent": {"node_id": "n", "realm": "cellB", "sts_url": "https://sts.test"},
        "job_types": {"run": "operator"},
    }
    rule = {"realm": "cellB", "privilege_map": "alice"}
    with pytest.raises(AgentConfigInvalid, match=r"needs \[mapping.privilege_map\] account"):
        config_from_mapping({**base, "mapping": {"rules": [rule]}}, tmp_path / "a.toml", {})
    with pytest.raises(AgentConfigInvalid, match="cannot be combined"):
        both = {"privilege_map": {"account": "rscd"}, "rules": [{**rule, "account": "bob"}]}
        config_from_mapping({**base, "mapping": both}, tmp_path / "a.toml", {})
    config = config_from_mapping(
        {**base, "mapping": {"privilege_map": {"account": "rscd", "allow_groups": ["adm"]}, "rules": [rule]}},
        tmp_path / "a.toml", {},
    )  # fmt: skip
    assert config.mapping.rules[0] == MappingRule("realm", "cellB", "rscd", privilege_map="alice")
    assert config.mapping.privilege_map == PrivilegeMapConfig("rscd", frozenset({"adm"}))
