"""Seed 002, "Mixed registries configuration": one topology where some targets share the job
manager's registry and some do not. All jobs are queued first, then every agent runs at
once; each target follows its own rule:

* same registry: no password needed, but the submitter must be authorized on the target;
* different registry, trusted realm and imported access ID: no password needed;
* different registry otherwise: refused (fail fast at submit when the STS knows it);
* a user name and password the target's realm recognizes always work.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import NodeFactory, allow, build_nodes, rule
from tests.e2e.harness import Accounts, AgentNode, StsServer, run_agents

pytestmark = [pytest.mark.slapd, pytest.mark.db]  # also on PostgreSQL


@pytest.fixture(scope="module")
def nodes(make_node: NodeFactory, exported: dict[str, dict[str, Any]], accounts: Accounts) -> dict[str, AgentNode]:
    john, bjohn = exported["john"]["access_id"], exported["bjohn"]["access_id"]
    mapping = [rule(john, accounts["john"]), rule(bjohn, accounts["bjohn"])]
    return build_nodes(
        make_node,
        {
            "same": {"node_id": "mx-same", "realm": "jobmgr", "rows": [allow(john, "operator")], "rules": mapping},
            "trusted": {
                "node_id": "mx-trusted",
                "realm": "cellB",
                "sts_trusts": ["jobmgr"],
                "rows": [allow(john, "operator")],
                "rules": mapping,
            },
            "untrusted": {
                "node_id": "mx-untrusted",
                "realm": "cellB",
                "rows": [allow(bjohn, "operator")],
                "rules": mapping,
            },
            "not-imported": {
                "node_id": "mx-not-imported",
                "realm": "cellB",
                "sts_trusts": ["jobmgr"],
                "rows": [allow(bjohn, "operator")],
                "rules": mapping,
            },
        },
    )


def test_each_target_follows_its_own_rule(
    sts: StsServer, nodes: dict[str, AgentNode], accounts: Accounts, exported: dict[str, dict[str, Any]]
) -> None:
    john, user2 = sts.token("john"), sts.token("user2")
    cellb = {"credentials": {"username": "john", "password": "john-password"}}
    jobmgr = {"credentials": {"username": "john", "password": "john-password"}}
    # (name, token, node, extra, expected state, expected account key or refusal code)
    plan: list[tuple[str, str, str, dict[str, Any], str, str]] = [
        ("same registry, authorized", john, "same", {}, "succeeded", "john"),
        ("same registry, not authorized", user2, "same", {}, "refused", "authz.denied"),
        ("same registry, own password", john, "same", jobmgr, "succeeded", "john"),
        ("trusted realm, imported", john, "trusted", {}, "succeeded", "john"),
        ("trusted realm, not imported", john, "not-imported", {}, "refused", "authz.denied"),
        ("untrusted realm, node-realm password", john, "untrusted", cellb, "succeeded", "bjohn"),
        ("trusted realm, node-realm password", john, "not-imported", cellb, "succeeded", "bjohn"),
    ]
    submitted = [
        (name, token, sts.submit(token, nodes[node].node_id, "run", **extra)["id"], state, what, node)
        for name, token, node, extra, state, what in plan
    ]
    # Fail fast: the STS already knows this node would refuse the job manager's realm.
    problem = sts.submit(john, "mx-untrusted", "run", expect=409)
    assert problem["code"] == "realm.untrusted"

    counts = {key: sum(1 for _, _, node, *_ in plan if node == key) for key in nodes}
    for round_number in range(max(counts.values())):
        run_agents([nodes[key] for key, count in counts.items() if count > round_number])
    for name, token, job_id, state, what, node in submitted:
        done = sts.job(token, job_id)
        assert done["state"] == state, (name, done)
        assert done["node"] == nodes[node].node_id and done["attempts"] == 1, name
        issuer = next(step["detail"] for step in done["result"]["trace"] if step["step"] == "a")
        # (a) names how the node knows the issuer: its own realm, or a realm it trusts.
        assert ("own realm" if done["realm"] == nodes[node].realm else "trusted realm") in issuer, (name, issuer)
        if state == "succeeded":
            assert done["result"]["account"] == accounts[what], name
            assert done["result"]["stdout_tail"].strip() == accounts[what], name
        else:
            assert done["code"] == what, (name, done)
            assert done["started_at"] is None, name
    by_name = {name: sts.job(token, job_id) for name, token, job_id, *_ in submitted}
    assert by_name["untrusted realm, node-realm password"]["subject"] == exported["bjohn"]["access_id"]
    assert by_name["trusted realm, imported"]["subject"] == exported["john"]["access_id"]
    assert by_name["trusted realm, imported"]["realm"] == "jobmgr"
