"""Seed 002, groups and "fine grained security": a node of realm ``cellB`` that trusts the job
manager's realm holds EXTERNAL access IDs in its table: the job manager's ``operators`` group
(imported from ``jobsts access-id`` output), a deny for user2, and a grant to admin that is
scoped to the authorization group ``payroll`` only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import NodeFactory, allow, deny, rule
from tests.e2e.harness import Accounts, AgentNode, StsServer, run_agents

pytestmark = pytest.mark.slapd
OPERATORS = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"


@pytest.fixture(scope="module")
def node(make_node: NodeFactory, exported: dict[str, dict[str, Any]], accounts: Accounts) -> AgentNode:
    john, user1, user2, admin = (exported[k]["access_id"] for k in ("john", "user1", "user2", "admin"))
    assert OPERATORS in exported["john"]["groups"]  # the group ID comes from the export
    return make_node(
        "gs-node",
        "cellB",
        sts_trusts=["jobmgr"],
        authgroups=["payroll", "hr"],
        rows=[allow(OPERATORS, "operator"), deny(user2, "operator"), allow(admin, "operator", "authgroup:payroll")],
        rules=[
            rule(john, accounts["john"]),
            rule(user1, accounts["user1"]),
            rule(user2, accounts["user2"]),
            rule(admin, accounts["admin"]),
        ],
    )


def _run(sts: StsServer, node: AgentNode, jobs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Submit each (user, extra) as a ``run`` job, let the agent handle them all, return the final views."""
    tokens = {user: sts.token(user) for user, _ in jobs}
    ids = [(user, sts.submit(tokens[user], node.node_id, "run", **extra)["id"]) for user, extra in jobs]
    run_agents([node], rounds=len(ids))
    return [sts.job(tokens[user], job_id) for user, job_id in ids]


def test_importing_a_groups_access_id_grants_its_members(sts: StsServer, node: AgentNode, accounts: Accounts) -> None:
    for user, done in zip(("john", "user1"), _run(sts, node, [("john", {}), ("user1", {})]), strict=True):
        assert done["state"] == "succeeded", (user, done)
        assert done["result"]["account"] == accounts[user]
        assert done["result"]["stdout_tail"].strip() == accounts[user]
        authorization = next(step for step in done["result"]["trace"] if step["step"] == "e")
        assert "cn=operators" in authorization["detail"], authorization


def test_a_deny_entry_wins_over_a_group_grant(
    sts: StsServer, node: AgentNode, exported: dict[str, dict[str, Any]]
) -> None:
    [done] = _run(sts, node, [("user2", {})])  # user2 is in operators, but denied by name
    assert done["state"] == "refused", done
    assert done["code"] == "authz.denied"
    assert exported["user2"]["access_id"] in done["result"]["reason"]
    assert "operator" in done["result"]["reason"]
    assert done["started_at"] is None


def test_an_authorization_group_scope_covers_only_jobs_that_name_it(
    sts: StsServer, node: AgentNode, accounts: Accounts
) -> None:
    payroll, unscoped, other, john_payroll = _run(
        sts,
        node,
        [
            ("admin", {"authgroup": "payroll"}),
            ("admin", {}),
            ("admin", {"authgroup": "hr"}),
            ("john", {"authgroup": "payroll"}),
        ],
    )
    assert payroll["state"] == "succeeded", payroll
    assert payroll["result"]["account"] == accounts["admin"]
    assert payroll["result"]["stdout_tail"].strip() == accounts["admin"]
    for refused in (unscoped, other):
        assert refused["state"] == "refused", refused
        assert refused["code"] == "authz.denied"
        assert "operator" in refused["result"]["reason"]
    # A node-wide (*) grant also covers every authorization group.
    assert john_payroll["state"] == "succeeded", john_payroll


def test_an_authorization_group_the_node_does_not_have_is_refused_at_submit(sts: StsServer, node: AgentNode) -> None:
    problem = sts.submit(sts.token("admin"), node.node_id, "run", authgroup="finance", expect=400)
    assert problem["code"] == "job.invalid_spec"
    assert "finance" in problem["detail"]
