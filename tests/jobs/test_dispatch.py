"""The agent side of the contract: lease, start, heartbeat, result, revocations, and the reaper."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

from realms.tokens import JOB_TOKEN, verify
from realms.wire.digest import job_digest
from tests.jobs.conftest import World

pytestmark = pytest.mark.db


class Clock:
    """The job manager's clock, moved by hand (tokens still use real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(world: World) -> Clock:
    fake = Clock()
    env = world.env
    env.clock = fake
    assert env.lease_seconds == 60
    return fake


def result(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "outcome": "succeeded",
        "exit_code": 0,
        "stdout_tail": "hi\n",
        "stderr_tail": "",
        "code": None,
        "reason": None,
        "account": "batch",
        "trace": [{"step": "e", "name": "authorize", "verdict": "pass", "detail": "ok"}],
    }
    document.update(changes)
    return document


def state_of(world: World, job_id: str) -> str:
    response = world.client.get(f"/api/v1/jobs/{job_id}", headers=world.as_user("john"))
    value: str = response.get_json()["state"]
    return value


def test_lease_follows_the_contract(world: World) -> None:
    job = world.submit(spec={"argv": ["/bin/echo", "hi"], "env": {"X": "1"}, "cwd": "/tmp", "timeout": 60})
    leased = world.lease()
    assert leased is not None
    assert set(leased) == {"job", "job_token", "lease_expires_at"}
    document = leased["job"]
    assert set(document) == {"id", "node", "type", "spec", "submitter", "realm", "not_before", "deadline", "attempt"}
    assert set(document["spec"]) == {"argv", "env", "cwd", "timeout", "authgroup"}
    assert document["id"] == job["id"] and document["attempt"] == 1 and document["realm"] == "jobmgr"
    claims = verify(leased["job_token"], JOB_TOKEN, world.services.keys.trust_resolver(), audience="node1").claims
    # The agent recomputes the digest from what it received.
    assert job_digest(document["id"], document["node"], document["type"], document["spec"]) == claims["job_digest"]
    assert leased["lease_expires_at"] > time.time()
    assert world.lease() is None  # one job, leased once


def test_one_job_per_lease_in_submission_order(world: World) -> None:
    ids = [world.submit()["id"] for _ in range(3)]
    leased = [world.lease() for _ in range(4)]
    assert [item["job"]["id"] if item else None for item in leased] == [*ids, None]


def test_a_node_only_leases_its_own_jobs(world: World) -> None:
    world.submit(node="trusting")
    assert world.lease("node1") is None
    response = world.client.post("/api/v1/agent/lease", json={}, headers=world.as_agent("trusting", "cellB"))
    assert response.status_code == 200


def test_not_before_holds_the_job_back(world: World, clock: Clock) -> None:
    job = world.submit(not_before=int(time.time()) + 100)
    assert world.lease() is None
    clock.offset = 101
    leased = world.lease()
    assert leased is not None and leased["job"]["id"] == job["id"]


def test_long_poll_returns_as_soon_as_a_job_arrives(world: World) -> None:
    got: list[dict[str, Any] | None] = []
    # The longest wait the API allows (30 s): a poll that did not wake on the submit would still be
    # waiting when the join gives up, so "got a job" proves the wake-up without timing anything.
    waiter = threading.Thread(target=lambda: got.append(world.lease(wait=30)), daemon=True)
    waiter.start()
    world.submit()
    waiter.join(25)
    assert got and got[0] is not None


def test_long_poll_is_bounded(world: World) -> None:
    assert world.lease(wait=0.5) is None  # the wait ends, empty
    bad = world.client.post("/api/v1/agent/lease", json={"wait": 31}, headers=world.as_agent())
    assert bad.status_code == 400 and bad.get_json()["code"] == "job.invalid_spec"


def test_agent_endpoints_need_an_agent_token(world: World) -> None:
    response = world.client.post("/api/v1/agent/lease", json={}, headers=world.as_user("admin"))
    assert response.status_code == 401
    assert world.client.get("/api/v1/agent/revocations").status_code == 401


def test_full_run_start_heartbeat_result(world: World, clock: Clock) -> None:
    job = world.submit()
    leased = world.lease()
    assert leased is not None
    assert world.agent_post(f"jobs/{job['id']}/start").get_json() == {"state": "running"}
    assert state_of(world, job["id"]) == "running"
    clock.offset = 30
    beat = world.agent_post(f"jobs/{job['id']}/heartbeat").get_json()
    assert beat["lease_expires_at"] >= int(time.time()) + 30 + 59
    done = world.agent_post(f"jobs/{job['id']}/result", result())
    assert done.status_code == 200 and done.get_json() == {"state": "succeeded"}
    shown = world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("john")).get_json()
    assert shown["state"] == "succeeded" and shown["result"]["stdout_tail"] == "hi\n"
    assert shown["result"]["account"] == "batch" and shown["result"]["trace"][0]["step"] == "e"


def test_start_needs_the_lease(world: World, clock: Clock) -> None:
    job = world.submit()
    assert world.agent_post(f"jobs/{job['id']}/start").status_code == 409  # not leased yet
    world.lease()
    wrong_attempt = world.agent_post(f"jobs/{job['id']}/start", {"attempt": 2})
    assert wrong_attempt.status_code == 409 and wrong_attempt.get_json()["code"] == "job.lease_lost"
    assert world.agent_post(f"jobs/{job['id']}/start", {"attempt": 1}).status_code == 200
    again = world.agent_post(f"jobs/{job['id']}/start")
    assert again.status_code == 409 and again.get_json()["code"] == "job.lease_lost"


def test_start_after_the_lease_expired_is_refused_and_the_job_requeued(world: World, clock: Clock) -> None:
    job = world.submit()
    world.lease()
    clock.offset = 61
    late = world.agent_post(f"jobs/{job['id']}/start")
    assert late.status_code == 409 and late.get_json()["code"] == "job.lease_lost"
    again = world.lease()
    assert again is not None and again["job"]["id"] == job["id"] and again["job"]["attempt"] == 2


def test_another_nodes_job_is_not_found(world: World) -> None:
    job = world.submit(node="trusting")
    world.client.post("/api/v1/agent/lease", json={}, headers=world.as_agent("trusting", "cellB"))
    for path in ("start", "heartbeat", "result"):
        response = world.agent_post(f"jobs/{job['id']}/{path}", result())
        assert response.status_code == 404 and response.get_json()["code"] == "job.not_found"


def test_results_are_idempotent_and_conflicts_refused(world: World) -> None:
    job = world.submit()
    world.lease()
    world.agent_post(f"jobs/{job['id']}/start")
    assert world.agent_post(f"jobs/{job['id']}/result", result()).status_code == 200
    assert world.agent_post(f"jobs/{job['id']}/result", result()).status_code == 200
    conflict = world.agent_post(f"jobs/{job['id']}/result", result(outcome="failed", exit_code=1))
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "job.result_conflict"
    assert state_of(world, job["id"]) == "succeeded"


def test_a_refusal_comes_from_leased_without_start(world: World) -> None:
    job = world.submit()
    world.lease()
    refused = world.agent_post(
        f"jobs/{job['id']}/result",
        result(
            outcome="refused",
            exit_code=None,
            code="authz.denied",
            reason="no operator grant",
            trace=[{"step": "e", "name": "authorize", "verdict": "fail", "detail": "denied"}],
        ),
    )
    assert refused.get_json() == {"state": "refused"}
    shown = world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("john")).get_json()
    assert shown["code"] == "authz.denied" and shown["result"]["trace"][0]["verdict"] == "fail"


def test_success_without_start_is_refused(world: World) -> None:
    job = world.submit()
    world.lease()
    response = world.agent_post(f"jobs/{job['id']}/result", result())
    assert response.status_code == 409 and response.get_json()["code"] == "job.lease_lost"


def test_large_output_is_capped_to_its_tail(world: World) -> None:
    job = world.submit()
    world.lease()
    world.agent_post(f"jobs/{job['id']}/start")
    big = "x" * 100_000 + "END"
    assert world.agent_post(f"jobs/{job['id']}/result", result(stdout_tail=big, stderr_tail=big)).status_code == 200
    shown = world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("john")).get_json()
    assert len(shown["result"]["stdout_tail"]) == 64 * 1024 and shown["result"]["stdout_tail"].endswith("END")


def test_a_started_job_whose_agent_vanished_is_lost_never_rerun(world: World, clock: Clock) -> None:
    job = world.submit()
    world.lease()
    world.agent_post(f"jobs/{job['id']}/start")
    clock.offset = 61
    assert world.lease() is None  # the reaper runs on lease: lost, not requeued
    assert state_of(world, job["id"]) == "lost"
    assert world.agent_post(f"jobs/{job['id']}/heartbeat").status_code == 409
    # The result arrives late (it sat in the agent's outbox): recorded, marked late, still lost.
    late = world.agent_post(f"jobs/{job['id']}/result", result())
    assert late.status_code == 200 and late.get_json() == {"state": "lost", "late": True}
    assert world.agent_post(f"jobs/{job['id']}/result", result()).get_json() == {"state": "lost", "late": True}
    conflict = world.agent_post(f"jobs/{job['id']}/result", result(outcome="failed", exit_code=1))
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "job.result_conflict"
    shown = world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("john")).get_json()
    assert shown["state"] == "lost" and shown["result"]["exit_code"] == 0 and shown["result"]["late"] is True
    assert world.lease() is None and state_of(world, job["id"]) == "lost"


def test_jobs_past_their_deadline_expire_and_their_tokens_are_revoked(world: World, clock: Clock) -> None:
    job = world.submit(deadline=int(time.time()) + 120)
    leased_then_dropped = world.submit(deadline=int(time.time()) + 120)
    world.lease()  # leases the first one only
    clock.offset = 130  # past the deadline, within the verifiers' leeway
    world.env.last_reap = 0.0
    revoked = world.client.get("/api/v1/agent/revocations", headers=world.as_agent()).get_json()["revoked"]
    assert state_of(world, job["id"]) == "expired"
    assert state_of(world, leased_then_dropped["id"]) == "expired"
    with world.services.db.engine.connect() as conn:
        jtis = set(conn.execute(text("SELECT token_jti FROM sts_jobs")).scalars())
    assert {item["jti"] for item in revoked} == jtis
    assert world.lease() is None


def test_the_lease_query_uses_its_index(world: World) -> None:
    world.submit()
    sql = (
        "SELECT id FROM sts_jobs WHERE node_id = 'node1' AND state = 'queued' AND not_before <= 0 "
        "AND deadline > 0 ORDER BY not_before, created_at LIMIT 1"
    )
    with world.services.db.engine.connect() as conn:
        if world.services.db.is_sqlite:
            plan = " ".join(str(row) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "USING INDEX ix_sts_jobs_lease" in plan and "TEMP B-TREE" not in plan
        else:
            conn.execute(text("SET enable_seqscan = off"))
            plan = " ".join(str(row) for row in conn.execute(text(f"EXPLAIN {sql}")))
            assert "ix_sts_jobs_lease" in plan and "Sort" not in plan
