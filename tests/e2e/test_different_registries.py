"""Seed 002, "Different security domains": the nodes live in realm ``cellB``, whose directory
is not the job manager's. A ``cellB`` john exists too, but he is another person (another
access ID). A token of the job manager's realm counts on a node only after the node trusts
that realm AND its table holds the imported access ID; otherwise the submitter passes
credentials for the node's realm, and the job runs as that realm's identity."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import NodeFactory, allow, build_nodes, rule
from tests.e2e.harness import Accounts, AgentNode, StsServer, jobsts, run_agents, write_csv

pytestmark = pytest.mark.slapd
CELLB_JOHN = {"username": "john", "password": "john-password"}


@pytest.fixture(scope="module")
def nodes(make_node: NodeFactory, exported: dict[str, dict[str, Any]], accounts: Accounts) -> dict[str, AgentNode]:
    john, bjohn = exported["john"]["access_id"], exported["bjohn"]["access_id"]
    mapping = [rule(john, accounts["john"]), rule(bjohn, accounts["bjohn"])]
    cellb = {"realm": "cellB", "rules": mapping}
    return build_nodes(
        make_node,
        {
            # The deployment manager cell: trusts no other realm; cellB's john is a monitor there.
            "dmgr": {"node_id": "dr-dmgr", "rows": [allow(bjohn, "monitor")], **cellb},
            # Registered at the STS as trusting jobmgr, but the agent itself does not: forced through.
            "forced": {
                "node_id": "dr-forced",
                "sts_trusts": ["jobmgr"],
                "agent_trusts": [],
                "rows": [allow(john, "administrator")],
                **cellb,
            },
            # Base node 1: starts untrusting; the test establishes the trust and imports John.
            "node1": {"node_id": "dr-node1", **cellb},
            # A third node: trusts jobmgr but never imported John.
            "node3": {"node_id": "dr-node3", "sts_trusts": ["jobmgr"], "rows": [allow(bjohn, "monitor")], **cellb},
        },
    )


def test_untrusted_realm_fails_fast_at_submit(sts: StsServer, nodes: dict[str, AgentNode]) -> None:
    token = sts.token("john")
    with sts.http() as http:
        response = http.post(
            "/api/v1/jobs",
            headers={"Authorization": f"Bearer {token}"},
            json={"node": "dr-dmgr", "type": "inventory", "spec": {"argv": ["/bin/true"]}},
        )
    assert response.status_code == 409
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "realm.untrusted"
    assert "dr-dmgr" in problem["detail"] and "jobmgr" in problem["detail"]


def test_the_agent_refuses_the_untrusted_realm_when_forced(sts: StsServer, nodes: dict[str, AgentNode]) -> None:
    token = sts.token("john")
    job = sts.submit(token, "dr-forced", "run")  # the STS's view of the node trusts jobmgr ...
    run_agents([nodes["forced"]])  # ... the agent's own trusted list decides
    done = sts.job(token, job["id"])
    assert done["state"] == "refused", done
    assert done["code"] == "realm.untrusted"
    assert "jobmgr" in done["result"]["reason"]
    trace = done["result"]["trace"]
    assert trace[0]["step"] == "a" and trace[0]["verdict"] == "fail"
    assert done["started_at"] is None


def test_credentials_for_the_node_realm_run_as_the_node_realm_identity(
    sts: StsServer, nodes: dict[str, AgentNode], accounts: Accounts, exported: dict[str, dict[str, Any]]
) -> None:
    token = sts.token("john")  # logged in to the job manager's realm
    inventory = sts.submit(token, "dr-dmgr", "inventory", credentials=CELLB_JOHN)
    run = sts.submit(token, "dr-dmgr", "run", credentials=CELLB_JOHN)
    assert inventory["realm"] == "cellB" and inventory["subject"] == exported["bjohn"]["access_id"]
    assert inventory["submitter"] == exported["john"]["access_id"]
    assert "password" not in str(inventory)
    run_agents([nodes["dmgr"]], rounds=2)
    done = sts.job(token, inventory["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["account"] == accounts["bjohn"]
    assert done["result"]["stdout_tail"].strip() == accounts["bjohn"]
    # cellB's john is a monitor there, so an operator job is still refused (seed: "monitor role").
    refused = sts.job(token, run["id"])
    assert refused["state"] == "refused" and refused["code"] == "authz.denied"
    assert "operator" in refused["result"]["reason"]


def test_wrong_credentials_for_the_node_realm_are_refused_at_submit(
    sts: StsServer, nodes: dict[str, AgentNode]
) -> None:
    token = sts.token("john")
    with sts.http() as http:
        response = http.post(
            "/api/v1/jobs",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "node": "dr-dmgr",
                "type": "inventory",
                "spec": {"argv": ["/bin/true"]},
                "credentials": {"username": "john", "password": "not-his-password"},
            },
        )
    assert response.status_code in (400, 401), response.text
    assert response.json()["code"] == "login.failed"


def test_trusting_the_realm_and_importing_johns_access_id_lets_him_run_without_credentials(
    sts: StsServer, nodes: dict[str, AgentNode], accounts: Accounts, tmp_path: Any
) -> None:
    node = nodes["node1"]
    token = sts.token("john")
    before = sts.submit(token, "dr-node1", "install", expect=409)
    assert before["code"] == "realm.untrusted"

    # The admin's steps, with the CLI: trust jobmgr at the STS and on the node ...
    admin_home = tmp_path / "admin"
    jobsts(
        "login",
        "--url",
        sts.base_url,
        "--realm",
        "jobmgr",
        "--username",
        "admin",
        home=admin_home,
        stdin="admin-password\n",
    )
    jobsts("node", "update", "dr-node1", "--trusted-realm", "jobmgr", home=admin_home)
    node.trusted = ["jobmgr"]
    node.write_config()
    # ... export John's access ID from the job manager and import it as administrator.
    exported = jobsts("access-id", "--config", str(sts.config_path), "jobmgr", "john").stdout.splitlines()[0]
    assert exported.startswith("user:jobmgr/")
    node.import_table([(exported, "administrator", "allow", "*")])
    # John does not exist in cellB's registry: cellB's "john" is someone else.
    cellb_john = jobsts("access-id", "--config", str(sts.config_path), "cellB", "john").stdout.splitlines()[0]
    assert cellb_john != exported

    job = sts.submit(token, "dr-node1", "install")
    assert job["realm"] == "jobmgr" and job["subject"] == exported
    run_agents([node])
    done = sts.job(token, job["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["account"] == accounts["john"]
    assert done["result"]["stdout_tail"].strip() == accounts["john"]
    assert any("trusted realm" in step["detail"] for step in done["result"]["trace"] if step["step"] == "a")


def test_a_node_that_trusts_the_realm_but_never_imported_john_refuses(
    sts: StsServer, nodes: dict[str, AgentNode], exported: dict[str, dict[str, Any]]
) -> None:
    token = sts.token("john")
    job = sts.submit(token, "dr-node3", "inventory")
    run_agents([nodes["node3"]])
    done = sts.job(token, job["id"])
    assert done["state"] == "refused", done
    assert done["code"] == "authz.denied"
    assert "monitor" in done["result"]["reason"] and exported["john"]["access_id"] in done["result"]["reason"]


def test_an_import_file_round_trips_through_the_cli(tmp_path: Any, exported: dict[str, dict[str, Any]]) -> None:
    """The bulk path an admin uses: export a user's groups, import them, export the table again."""
    table = f"sqlite:///{tmp_path / 'node.sqlite'}"
    rows = [(group, "operator", "allow", "*") for group in exported["john"]["groups"]]
    write_csv(tmp_path / "in.csv", rows)
    dry = jobsts("authz", "--table", table, "import", str(tmp_path / "in.csv"), "--dry-run").stdout
    assert all(group in dry for group, *_ in rows)
    jobsts("authz", "--table", table, "import", str(tmp_path / "in.csv"))
    again = jobsts("authz", "--table", table, "export", "--format", "json").stdout
    assert all(group in again for group, *_ in rows)
