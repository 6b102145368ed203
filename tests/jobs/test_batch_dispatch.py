"""Batched dispatch: leases of up to ``max_jobs`` in one statement, claims, result batches, late
results, and the revocation of an agent token taking effect before its next lease."""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt
import pytest

from sts.jobs import dispatch
from sts.oauth.revocation import revoke_jti
from tests.jobs.conftest import World
from tests.jobs.test_dispatch import Clock, clock, result, state_of

__all__ = ["clock"]  # the fixture

pytestmark = pytest.mark.db


def leases(world: World, max_jobs: int, token: str | None = None) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else world.as_agent()
    response = world.client.post("/api/v1/agent/leases", json={"max_jobs": max_jobs}, headers=headers)
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.get_json()
    found: list[dict[str, Any]] = response.get_json()["leases"]
    return found


def test_a_batch_lease_hands_out_at_most_max_jobs_in_queue_order(world: World) -> None:
    ids = [world.submit()["id"] for _ in range(5)]
    first = leases(world, 2)
    assert [lease["job"]["id"] for lease in first] == ids[:2]  # exactly the LIMIT, never every queued job
    assert all(lease["job_token"] and lease["job"]["attempt"] == 1 for lease in first)
    assert [lease["job"]["id"] for lease in leases(world, 10)] == ids[2:]
    assert leases(world, 10) == []


def test_concurrent_batch_lessees_never_share_a_job(world: World) -> None:
    jobs = 120
    ids = {world.submit()["id"] for _ in range(jobs)}
    seen: list[str] = []
    errors: list[BaseException] = []
    go = threading.Barrier(6)

    def lessee() -> None:
        try:
            go.wait(60)
            while True:
                found = dispatch.lease_many(world.env, "node1", 7)
                if not found:
                    return
                seen.extend(lease.job.id for lease in found)
        except BaseException as exc:  # reported below, never swallowed
            errors.append(exc)

    threads = [threading.Thread(target=lessee) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors
    assert len(seen) == len(set(seen)) == jobs and set(seen) == ids


def test_claims_start_recorded_jobs_and_refuse_the_rest(world: World) -> None:
    mine, other = world.submit()["id"], world.submit(node="trusting")["id"]
    leased = leases(world, 5)
    not_leased = world.submit()["id"]
    claims = [
        {"job_id": mine, "attempt": leased[0]["job"]["attempt"]},
        {"job_id": not_leased, "attempt": 1},
        {"job_id": other},
    ]
    outcomes = world.agent_post("claims", {"claims": claims}).get_json()["outcomes"]
    assert outcomes[0]["state"] == "running" and "code" not in outcomes[0]
    assert outcomes[1]["code"] == "job.lease_lost"
    assert outcomes[2]["code"] == "job.not_found" and outcomes[2]["state"] is None  # not probeable
    again = world.agent_post("claims", {"claims": claims[:1]}).get_json()["outcomes"]
    assert again[0]["code"] == "job.lease_lost"  # a job never starts twice
    assert state_of(world, mine) == "running"


def test_a_result_batch_answers_each_job_on_its_own(world: World) -> None:
    ran, refused, never = (world.submit()["id"] for _ in range(3))
    leases(world, 3)
    world.agent_post("claims", {"claims": [{"job_id": ran}]})
    refusal = result(outcome="refused", exit_code=None, code="authz.denied", reason="no grant")
    items = [
        {"job_id": ran, "result": result()},
        {"job_id": refused, "result": refusal},
        {"job_id": never, "result": result()},  # success without a claim
        {"job_id": "00000000-0000-4000-8000-000000000000", "result": result()},
    ]
    outcomes = world.agent_post("results", {"results": items}).get_json()["outcomes"]
    assert [outcome.get("code") for outcome in outcomes] == [None, None, "job.lease_lost", "job.not_found"]
    assert [state_of(world, job_id) for job_id in (ran, refused, never)] == ["succeeded", "refused", "leased"]
    retried = world.agent_post("results", {"results": items[:2]}).get_json()["outcomes"]
    assert [outcome["state"] for outcome in retried] == ["succeeded", "refused"]  # idempotent


def test_a_late_result_for_a_lost_job_is_recorded_and_the_job_never_reruns(world: World, clock: Clock) -> None:
    job_id = world.submit()["id"]
    leases(world, 1)
    world.agent_post("claims", {"claims": [{"job_id": job_id}]})
    clock.offset = 61  # the agent's outbox could not reach the STS: the lease ran out
    assert leases(world, 1) == [] and state_of(world, job_id) == "lost"
    late = world.agent_post("results", {"results": [{"job_id": job_id, "result": result()}]}).get_json()
    assert late["outcomes"] == [{"job_id": job_id, "state": "lost", "late": True}]
    shown = world.client.get(f"/api/v1/jobs/{job_id}", headers=world.as_user("john")).get_json()
    assert shown["state"] == "lost" and shown["attempts"] == 1
    assert shown["result"]["late"] is True and shown["result"]["stdout_tail"] == "hi\n"
    clock.offset = 200
    assert leases(world, 5) == [] and state_of(world, job_id) == "lost"


def test_a_revoked_agent_token_cannot_lease_again(world: World) -> None:
    world.submit()
    world.submit()
    token = world.agent_token()
    assert len(leases(world, 1, token)) == 1
    with world.services.db.session() as session:
        revoke_jti(
            session, jwt.decode(token, options={"verify_signature": False})["jti"], int(time.time()) + 300, "test"
        )
    response = world.client.post(
        "/api/v1/agent/leases", json={"max_jobs": 1}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401 and response.get_json()["code"] == "token.revoked"


def test_batch_bodies_are_bounded(world: World) -> None:
    too_many = world.agent_post("leases", {"max_jobs": 65})
    assert too_many.status_code == 400 and too_many.get_json()["code"] == "job.invalid_spec"
    empty = world.agent_post("claims", {"claims": []})
    assert empty.status_code == 400
    twice = world.agent_post("claims", {"claims": [{"job_id": "a"}, {"job_id": "a"}]})
    assert twice.status_code == 400
