"""What the agent's hot path reuses never changes a decision: the journal's in-memory mirror,
group commit, memoised principals, table decisions and mappings, lazy trace texts; and the
trace names the groups a job gets, or would have got when a privileged group refused it."""

from __future__ import annotations

import grp
import os
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent_client.config import MappingConfig, MappingRule
from agent_client.decision import NodeDecider
from agent_client.journal import StartedJournal
from agent_client.trust_store import TrustStore
from authz_tables.entries import Scope
from authz_tables.roles import Role
from realms.wire.trace import STEP_NAMES, TraceStep
from tests.agent_client.conftest import DEFAULT_TABLE, OPS_JM, TRUSTED, make_job, mint, policy, table
from tests.os_accounts import account_tool


def test_group_commit_records_each_jti_once_and_durably(tmp_path: Path) -> None:
    path = tmp_path / "started.sqlite"
    with StartedJournal(path) as journal:
        assert journal.record("one", "job-1", 2_000_000_000)
        fresh = journal.record_many(
            [("two", "job-2", 2_000_000_000), ("one", "job-1b", 2_000_000_000), ("two", "job-2b", 2_000_000_000)]
        )
        # A jti already recorded, or twice in one batch, is a replay: only the first one counts.
        assert fresh == [True, False, False]
        assert journal.seen("one") and journal.seen("two") and not journal.seen("three")
    # Durable: a new process (a reopened file) still refuses both.
    with StartedJournal(path) as reopened:
        assert reopened.seen("one") and reopened.seen("two")
        assert reopened.record_many([("two", "x", 2_000_000_000), ("three", "y", 2_000_000_000)]) == [False, True]


def test_the_jti_mirror_follows_prune(tmp_path: Path) -> None:
    with StartedJournal(tmp_path / "started.sqlite") as journal:
        assert journal.record("old", "job-1", 1_000)
        assert journal.record("new", "job-2", 2_000_000_000)
        assert journal.prune(now=2_000_000) == 1
        assert not journal.seen("old") and journal.seen("new")


def test_a_recorded_token_is_refused_as_replayed_by_the_mirror(trust: TrustStore, journal: StartedJournal) -> None:
    decider = NodeDecider(policy(), trust, table(*DEFAULT_TABLE), journal=journal)
    job = make_job()
    token = mint(job)
    first = decider.decide(job, token)
    assert first.allowed, first.explain()
    assert journal.record_many([(first.jti or "", job["id"], first.exp or 0)]) == [True]
    again = decider.decide(job, token)
    assert (again.allowed, again.code) == (False, "token.replayed")


def test_memoised_steps_follow_the_table_and_the_configuration(trust: TrustStore) -> None:
    job = make_job()
    allowed = NodeDecider(policy(), trust, table(*DEFAULT_TABLE)).decide(job, mint(job))
    assert allowed.allowed, allowed.explain()
    # The same principals against another snapshot (a deny added) and another mapping: each
    # decision is its own, never the one remembered for the first table or configuration.
    denied = NodeDecider(policy(), trust, table(*DEFAULT_TABLE, (OPS_JM, "monitor", "deny")))
    refused = denied.decide(job, mint(job))
    assert (refused.allowed, refused.code) == (False, "authz.denied")
    no_rule = policy(mapping=MappingConfig(rules=(MappingRule("realm", "elsewhere", "daemon"),)))
    unmapped = NodeDecider(no_rule, trust, table(*DEFAULT_TABLE)).decide(job, mint(job))
    assert (unmapped.allowed, unmapped.code) == (False, "map.no_account")
    other = replace(policy().mapping, rules=(MappingRule("realm", TRUSTED, "nobody"),))
    remapped = NodeDecider(policy(mapping=other), trust, table(*DEFAULT_TABLE)).decide(job, mint(job))
    assert remapped.allowed and remapped.account is not None and remapped.account.name == "nobody"


def test_snapshot_decisions_are_remembered_per_principals_role_and_scope() -> None:
    snapshot = table((OPS_JM, "operator"), (OPS_JM, "operator", "deny", "authgroup:payroll"))
    keys = (OPS_JM,)
    node_wide = snapshot.decide(keys, Role.OPERATOR)
    assert node_wide.allowed and snapshot.decide(keys, Role.OPERATOR) is node_wide
    assert not snapshot.decide(keys, Role.OPERATOR, (Scope("payroll"),)).allowed
    assert not snapshot.decide(keys, Role.ADMINISTRATOR).allowed
    assert snapshot.decide(list(keys), Role.OPERATOR).allowed  # not a tuple: decided afresh


def test_a_lazy_trace_text_is_built_once_and_compares_by_value() -> None:
    calls: list[int] = []

    def detail() -> str:
        calls.append(1)
        return "built"

    lazy = TraceStep("a", "issuer trust", "pass", detail)
    assert calls == []
    assert lazy == TraceStep("a", "issuer trust", "pass", "built")
    assert lazy.as_document()["detail"] == "built" and lazy.detail == "built"
    assert calls == [1]


def test_the_trace_names_every_group_the_job_gets(trust: TrustStore) -> None:
    job = make_job()
    decision = NodeDecider(policy(), trust, table(*DEFAULT_TABLE)).decide(job, mint(job))
    assert decision.allowed and decision.account is not None, decision.explain()
    step_f = decision.trace[-1].detail
    for gid in {decision.account.gid, *decision.account.groups}:
        assert f"({gid})" in step_f and grp.getgrgid(gid).gr_name in step_f


@pytest.fixture
def privileged_member() -> Iterator[tuple[str, str]]:
    """A fresh account (a unique name: suites running at once share the machine's accounts) in a
    root-equivalent group; yields (account, group)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create accounts")
    group = next((g for g in ("disk", "adm", "shadow", "sudo") if _group_exists(g)), None)
    if group is None:
        pytest.skip("no root-equivalent group exists on this host")
    account = f"jshp{secrets.token_hex(4)}"
    account_tool(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", group, account])
    try:
        yield account, group
    finally:
        account_tool(["userdel", account], check=False)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_a_privileged_group_refusal_names_the_jobs_groups_in_the_trace(
    trust: TrustStore, privileged_member: tuple[str, str]
) -> None:
    account, group = privileged_member
    mapping = MappingConfig(rules=(MappingRule("realm", TRUSTED, account),))
    job = make_job()
    decision = NodeDecider(policy(mapping=mapping), trust, table(*DEFAULT_TABLE)).decide(job, mint(job))
    assert (decision.allowed, decision.code) == (False, "map.privileged_group")
    step_f = decision.trace[-1]
    assert (step_f.step, step_f.verdict) == ("f", "fail")
    assert "the job's groups would be:" in step_f.detail
    assert group in step_f.detail.split("the job's groups would be:")[1]


def test_the_trace_is_built_from_the_recorded_steps_in_order_and_once(trust: TrustStore) -> None:
    job = make_job()
    allowed = NodeDecider(policy(), trust, table(*DEFAULT_TABLE)).decide(job, mint(job))
    assert allowed.allowed and [s[:2] for s in allowed.steps] == [(step, "pass") for step in "abcdef"]
    first = allowed.trace
    assert [(s.step, s.name, s.verdict) for s in first] == [(step, STEP_NAMES[step], "pass") for step in "abcdef"]
    assert allowed.trace is first and all(a is b for a, b in zip(allowed.trace, first, strict=True))
    # A refusal: the steps before it pass, it fails, the rest are skipped, in that order.
    denied = NodeDecider(policy(), trust, table(*DEFAULT_TABLE, (OPS_JM, "monitor", "deny")))
    refused = denied.decide(job, mint(job))
    assert [(s.step, s.verdict) for s in refused.trace] == [
        ("a", "pass"), ("b", "pass"), ("c", "pass"), ("d", "pass"), ("e", "fail"), ("f", "skip")
    ]  # fmt: skip
    assert refused.trace[4].detail.startswith("authz.denied: ")
