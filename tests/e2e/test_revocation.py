"""Revocation reaches the queue: a job cancelled, or whose token was revoked, before dispatch
never runs; a job whose realm key was rotated while it waited still validates when it runs.

These use realm ``cellC`` (eve submits to a ``cellC`` node), so rotating that realm's key
touches no other module's tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select

from tests.e2e.conftest import NodeFactory, allow, rule
from tests.e2e.harness import Accounts, AgentNode, StsServer, jobsts, run_agents

pytestmark = [pytest.mark.slapd, pytest.mark.db]  # also on PostgreSQL
T = TypeVar("T")


@pytest.fixture(scope="module")
def node(make_node: NodeFactory, exported: dict[str, dict[str, Any]], accounts: Accounts) -> AgentNode:
    eve = exported["eve"]["access_id"]
    return make_node("rv-node", "cellC", rows=[allow(eve, "operator")], rules=[rule(eve, accounts["eve"])])


def _eve(sts: StsServer) -> str:
    return sts.token("eve", realm="cellC")


def _kids(sts: StsServer, realm: str) -> set[str]:
    response = httpx.get(f"{sts.base_url}/realms/{realm}/jwks", timeout=10)
    return {key["kid"] for key in response.json()["keys"]}


def test_a_job_cancelled_before_dispatch_never_runs(sts: StsServer, node: AgentNode) -> None:
    token = _eve(sts)
    job = sts.submit(token, node.node_id, "run")
    cancelled = sts.cancel(token, job["id"])
    assert cancelled["state"] == "cancelled"
    run_agents([node])  # nothing to lease
    done = sts.job(token, job["id"])
    assert done["state"] == "cancelled"
    assert done["leased_at"] is None and done["started_at"] is None and done["result"] is None


def test_a_job_whose_token_was_revoked_before_dispatch_is_refused_by_the_agent(sts: StsServer, node: AgentNode) -> None:
    from sts.db import Database
    from sts.jobs.models import Job
    from sts.oauth.revocation import revoke_jti

    token = _eve(sts)
    job = sts.submit(token, node.node_id, "run")
    database = Database(sts.database_url)
    try:
        # What the STS itself does on cancel or expiry: the token's jti joins the revocation list
        # (kept until the token's exp). The job row stays queued, so only the agent can stop it.
        with database.session() as session:
            row = session.scalars(select(Job).where(Job.id == job["id"])).one()
            revoke_jti(session, row.token_jti, row.token_exp, "revoked by the e2e test")
    finally:
        database.dispose()
    run_agents([node])
    done = sts.job(token, job["id"])
    assert done["state"] == "refused", done
    assert done["code"] == "token.revoked"
    assert done["started_at"] is None and done["result"]["account"] is None


def _until(what: str, attempt: Callable[[], T | None], timeout: float = 120) -> T:
    """Call ``attempt`` until it returns something; the deadline only bounds a hang."""
    deadline = time.monotonic() + timeout
    while (found := attempt()) is None:
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)
    return found


def _binding(sts: StsServer, token: str, job: dict[str, Any], account: str) -> str:
    """The key binding step's detail of a job that succeeded as ``account`` (it names the kid)."""
    done = sts.job(token, job["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["account"] == account
    return str(next(step["detail"] for step in done["result"]["trace"] if step["step"] == "b"))


def test_a_key_rotated_while_the_job_was_queued_still_validates(
    sts: StsServer, node: AgentNode, accounts: Accounts
) -> None:
    token = _eve(sts)
    old_kids = _kids(sts, "cellC")
    queued = sts.submit(token, node.node_id, "run")
    rotated = jobsts("keys", "rotate", "--now", "--config", str(sts.config_path), "--realm", "cellC").stdout
    new_kid = rotated.partition("new key ")[2].split()[0]
    assert new_kid not in old_kids
    states = jobsts("keys", "list", "--config", str(sts.config_path), "--realm", "cellC").stdout
    assert "retiring" in states and "active" in states
    # Each serving STS process re-reads the key ring at most once a second: an answer with the
    # new key comes from one that did, and it must still publish the retiring key.
    published = _until("the new key is published", lambda: kids if new_kid in (kids := _kids(sts, "cellC")) else None)
    assert old_kids <= published
    node.forget_keys()  # the agent must find the old key in the post-rotation JWKS
    run_agents([node])
    binding = _binding(sts, token, queued, accounts["eve"])
    assert any(kid[:16] in binding for kid in old_kids), (binding, old_kids)

    def fresh_job_on_the_new_key() -> str | None:
        """A job submitted now, run; its binding once it was signed with the new key. Until every
        STS process has re-read the ring (a second at most), one that has not may still sign
        with the retiring key (valid as well), or give the agent a key set without the new key."""
        job = sts.submit(_eve(sts), node.node_id, "run")
        run_agents([node])
        done = sts.job(token, job["id"])
        if done["state"] == "refused":
            assert done["code"] == "token.unknown_key", done
            return None
        found = _binding(sts, token, job, accounts["eve"])
        assert any(kid[:16] in found for kid in old_kids | {new_kid}), (found, new_kid)
        return found if new_kid[:16] in found else None

    _until("a fresh job is signed with the new key", fresh_job_on_the_new_key)
