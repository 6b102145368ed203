"""Seed 002, "Same security domain": the job manager, base node 1, base node 2 and the
deployment manager share the ``jobmgr`` registry. A job token carries the submitter's identity;
each target's own table decides. No password travels with any job here."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import NodeFactory, allow, build_nodes, rule
from tests.e2e.harness import Accounts, AgentNode, StsServer, run_agents

pytestmark = pytest.mark.slapd


@pytest.fixture(scope="module")
def nodes(make_node: NodeFactory, exported: dict[str, dict[str, Any]], accounts: Accounts) -> dict[str, AgentNode]:
    john, user1, user2 = (exported[k]["access_id"] for k in ("john", "user1", "user2"))
    mapping = [rule(john, accounts["john"]), rule(user1, accounts["user1"]), rule(user2, accounts["user2"])]
    return build_nodes(
        make_node,
        {
            # John: operator on base node 1 only. User1: administrator on base node 1 only.
            "node1": {
                "node_id": "sr-node1",
                "rows": [allow(john, "operator"), allow(user1, "administrator")],
                "rules": mapping,
            },
            # User2: configurator on base node 2 only.
            "node2": {"node_id": "sr-node2", "rows": [allow(user2, "configurator")], "rules": mapping},
            # The deployment manager cell: nobody of these is authorized there.
            "dmgr": {"node_id": "sr-dmgr", "rules": mapping},
        },
    )


@pytest.mark.parametrize("with_password", [False, True], ids=["token", "password"])
def test_john_runs_on_base_node_1_with_or_without_a_password(
    sts: StsServer,
    nodes: dict[str, AgentNode],
    accounts: Accounts,
    exported: dict[str, dict[str, Any]],
    with_password: bool,
) -> None:
    token = sts.token("john")
    extra: dict[str, Any] = {"credentials": {"username": "john", "password": "john-password"}} if with_password else {}
    job = sts.submit(token, "sr-node1", "run", **extra)
    assert "credentials" not in job and job["realm"] == "jobmgr"
    run_agents([nodes["node1"]])
    done = sts.job(token, job["id"])
    assert done["state"] == "succeeded", done
    assert done["node"] == "sr-node1"
    assert done["subject"] == exported["john"]["access_id"]
    assert done["result"]["exit_code"] == 0
    assert done["result"]["account"] == accounts["john"]
    assert done["result"]["stdout_tail"].strip() == accounts["john"]  # what `id -un` printed


@pytest.mark.parametrize("with_password", [False, True], ids=["token", "password"])
def test_john_is_refused_on_the_deployment_manager_and_base_node_2(
    sts: StsServer, nodes: dict[str, AgentNode], exported: dict[str, dict[str, Any]], with_password: bool
) -> None:
    """Seed: with or without his user name and password, "the job fails because John is not authorized"."""
    token = sts.token("john")
    extra: dict[str, Any] = {"credentials": {"username": "john", "password": "john-password"}} if with_password else {}
    jobs = {name: sts.submit(token, nodes[name].node_id, "run", **extra) for name in ("dmgr", "node2")}
    run_agents([nodes["dmgr"], nodes["node2"]])
    for name, job in jobs.items():
        done = sts.job(token, job["id"])
        assert done["state"] == "refused", (name, done)
        assert done["code"] == "authz.denied"
        reason = done["result"]["reason"]
        assert "operator" in reason and nodes[name].node_id in reason, reason
        assert exported["john"]["access_id"] in reason
        assert done["started_at"] is None and done["result"]["account"] is None
        assert done["result"]["stdout_tail"] == ""
        steps = {step["step"]: step["verdict"] for step in done["result"]["trace"]}
        assert steps["a"] == steps["b"] == steps["d"] == "pass" and steps["e"] == "fail" and steps["f"] == "skip"


# (user, node, job type) -> expected outcome; the type's required role is honoured in both directions.
MATRIX = [
    ("user1", "node1", "install", True),
    ("user1", "node1", "configure", True),
    ("user1", "node1", "run", True),
    ("user1", "node1", "inventory", True),
    ("user1", "node2", "install", False),
    ("user1", "node2", "configure", False),
    ("user1", "node2", "inventory", False),
    ("user2", "node2", "configure", True),
    ("user2", "node2", "inventory", True),
    ("user2", "node2", "run", False),
    ("user2", "node2", "install", False),
    ("user2", "node1", "configure", False),
    ("user2", "node1", "inventory", False),
]
REQUIRED = {"run": "operator", "configure": "configurator", "inventory": "monitor", "install": "administrator"}


def test_user1_and_user2_each_job_type_in_both_directions(
    sts: StsServer, nodes: dict[str, AgentNode], accounts: Accounts
) -> None:
    tokens = {user: sts.token(user) for user in ("user1", "user2")}
    submitted = [
        (user, node, job_type, ok, sts.submit(tokens[user], nodes[node].node_id, job_type)["id"])
        for user, node, job_type, ok in MATRIX
    ]
    per_node = {name: sum(1 for _, node, *_ in MATRIX if node == name) for name in ("node1", "node2")}
    run_agents([nodes["node1"], nodes["node2"]], rounds=min(per_node.values()))
    for name in ("node1", "node2"):
        run_agents([nodes[name]], rounds=per_node[name] - min(per_node.values()))
    for user, node, job_type, ok, job_id in submitted:
        done = sts.job(tokens[user], job_id)
        where = f"{user} {job_type} on {node}"
        if ok:
            assert done["state"] == "succeeded", (where, done)
            assert done["result"]["account"] == accounts[user]
            assert done["result"]["stdout_tail"].strip() == accounts[user]
        else:
            assert done["state"] == "refused", (where, done)
            assert done["code"] == "authz.denied", where
            assert REQUIRED[job_type] in done["result"]["reason"], (where, done["result"]["reason"])
            assert done["started_at"] is None
