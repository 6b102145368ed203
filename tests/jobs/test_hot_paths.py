"""The two hot paths, by statement count and by what they refuse.

Submit: the caller's revocation check rides on the node read, then one write (on PostgreSQL two
statements and no BEGIN/COMMIT, on SQLite one transaction), and a revoked token is refused there
before anything is written or told. Dispatch:
results carried by ``POST /api/v1/agent/leases`` are recorded once, in the lease's transaction,
each answered on its own, and a repeat is an idempotent answer, never a second record."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import event, func, select

from sts.config import JobSettings
from sts.jobs.models import Job
from tests.jobs.conftest import World, build_world
from tests.jobs.test_dispatch import result, state_of

pytestmark = pytest.mark.db


@pytest.fixture
def quiet_world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """A world whose requests never run the periodic reaper pass nor re-check the key ring (at
    most once a second otherwise: a slow machine hits it anywhere), so counts are the path's own."""
    built = build_world(tmp_path, database_url, JobSettings(poll_interval=0.05, reap_interval=3600))
    built.services.last_reap = time.monotonic()
    built.services.keys.check_interval = 3600
    yield built
    built.services.close()


@contextmanager
def counted(world: World) -> Iterator[Counter[str]]:
    """Statements on the STS's own tables, and transactions begun and committed, meanwhile.
    (The authorization table's version check is another component's, on its own schedule.)"""
    counts: Counter[str] = Counter()
    engine = world.services.db.engine

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if "authz" not in sql and not sql.startswith(("BEGIN", "PRAGMA")):
            counts["statements"] += 1

    def commit(_conn: Any) -> None:
        counts["commits"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


def jobs_in(world: World) -> int:
    with world.services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def revoke(world: World, token: str) -> None:
    with world.services.db.session() as session:
        claims = jwt.decode(token, options={"verify_signature": False})
        world.services.revoke(session, claims["jti"], int(claims["exp"]), "test")


def post_job(world: World, token: str, **headers: str) -> Any:
    body = {"node": "node1", "type": "shell", "spec": {"argv": ["/bin/echo", "hi"]}}
    return world.client.post("/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {token}", **headers})


def test_a_submit_is_two_statements(quiet_world: World, on_postgres: bool) -> None:
    quiet_world.submit()  # warm: the authorization snapshot is loaded
    with counted(quiet_world) as counts:
        quiet_world.submit()
    # The node read with the caller's revocation check, then the INSERT. On PostgreSQL each is
    # its own transaction (no BEGIN, no COMMIT: the INSERT, which also carries the pg_notify,
    # commits on its own); on SQLite both are one BEGIN IMMEDIATE transaction.
    assert counts == Counter(statements=2, commits=0 if on_postgres else 1)


def test_a_submit_with_an_idempotency_key_writes_job_and_key_together(quiet_world: World, on_postgres: bool) -> None:
    token = quiet_world.user_token("john")
    post_job(quiet_world, token, **{"Idempotency-Key": "warm"})
    with counted(quiet_world) as counts:
        first = post_job(quiet_world, token, **{"Idempotency-Key": "k2"})
    assert first.status_code == 201
    # The revocation check with the node read, the replay lookup, the node read, the write (on
    # PostgreSQL one statement: job, key and pg_notify; on SQLite two INSERTs of one transaction).
    assert counts["statements"] == (4 if on_postgres else 5)
    again = post_job(quiet_world, token, **{"Idempotency-Key": "k2"})
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert jobs_in(quiet_world) == 2


def test_a_revoked_token_submits_nothing(quiet_world: World) -> None:
    token = quiet_world.user_token("john")
    assert post_job(quiet_world, token).status_code == 201
    revoke(quiet_world, token)
    refused = post_job(quiet_world, token)
    assert refused.status_code == 401 and refused.get_json()["code"] == "token.revoked"
    assert jobs_in(quiet_world) == 1


def test_a_revoked_token_learns_nothing_about_nodes_roles_or_earlier_jobs(quiet_world: World) -> None:
    token = quiet_world.user_token("john")
    kept = post_job(quiet_world, token, **{"Idempotency-Key": "k1"})
    assert kept.status_code == 201
    revoke(quiet_world, token)
    body = {"node": "no-such-node", "type": "shell", "spec": {"argv": ["/bin/true"]}}
    unknown = quiet_world.client.post("/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {token}"})
    replay = post_job(quiet_world, token, **{"Idempotency-Key": "k1"})
    nobody = quiet_world.user_token("user2")  # holds no role
    revoke(quiet_world, nobody)
    no_role = post_job(quiet_world, nobody)
    for refused in (unknown, replay, no_role):
        assert refused.status_code == 401 and refused.get_json()["code"] == "token.revoked"
    assert jobs_in(quiet_world) == 1


def test_a_token_without_the_operator_role_is_refused_before_any_write(quiet_world: World) -> None:
    refused = post_job(quiet_world, quiet_world.user_token("user2"))
    assert refused.status_code == 403 and refused.get_json()["code"] == "authz.denied"
    assert jobs_in(quiet_world) == 0


def lease_carrying(world: World, items: list[dict[str, Any]], max_jobs: int = 1) -> dict[str, Any]:
    response = world.agent_post("leases", {"max_jobs": max_jobs, "results": items})
    assert response.status_code == 200, response.get_json()  # never 204: the outcomes are the answer
    answer: dict[str, Any] = response.get_json()
    return answer


def started(world: World, count: int) -> list[str]:
    leased = world.agent_post("leases", {"max_jobs": count}).get_json()["leases"]
    ids = [lease["job"]["id"] for lease in leased]
    world.agent_post("claims", {"claims": [{"job_id": job_id} for job_id in ids]})
    return ids


def audited_results(caplog: pytest.LogCaptureFixture, job_id: str) -> int:
    events = [json.loads(record.getMessage()) for record in caplog.records if record.name == "jobsts.audit"]
    return sum(1 for item in events if item["event"] == "job.result" and item["job"] == job_id)


def test_results_carried_by_a_lease_are_recorded_once_before_it(
    quiet_world: World, caplog: pytest.LogCaptureFixture, on_postgres: bool
) -> None:
    caplog.set_level(logging.INFO, logger="jobsts.audit")
    first = quiet_world.submit()["id"]
    (ran,) = started(quiet_world, 1)
    assert ran == first
    second = quiet_world.submit()["id"]
    with counted(quiet_world) as counts:
        answer = lease_carrying(quiet_world, [{"job_id": ran, "result": result()}])
    assert answer["outcomes"] == [{"job_id": ran, "state": "succeeded"}]
    assert [lease["job"]["id"] for lease in answer["leases"]] == [second]
    # The test's minting of the agent token (it reads the node's key), the agent's authentication
    # (with "anything to reap?"), then the results and the lease: on PostgreSQL one statement that
    # commits on its own; on SQLite one transaction (lock and read, record, lease).
    assert counts == (Counter(statements=3) if on_postgres else Counter(statements=5, commits=1))
    assert state_of(quiet_world, ran) == "succeeded"
    # The outbox sends it again (the answer was lost): the same answer, not a second record.
    again = lease_carrying(quiet_world, [{"job_id": ran, "result": result()}])
    assert again == {"leases": [], "outcomes": [{"job_id": ran, "state": "succeeded"}]}
    assert audited_results(caplog, ran) == 1
    changed = lease_carrying(quiet_world, [{"job_id": ran, "result": result(exit_code=3)}])
    assert changed["outcomes"][0]["code"] == "job.result_conflict"


def test_each_carried_result_is_answered_on_its_own(quiet_world: World) -> None:
    ran, never = quiet_world.submit()["id"], quiet_world.submit()["id"]
    (claimed,) = started(quiet_world, 1)
    assert claimed == ran
    other = quiet_world.submit(node="trusting")["id"]
    items = [
        {"job_id": ran, "result": result()},
        {"job_id": never, "result": result()},  # queued, never leased nor started
        {"job_id": other, "result": result()},  # another node's job: as if it did not exist
        {"job_id": "00000000-0000-4000-8000-000000000000", "result": {"outcome": "bogus"}},
    ]
    answer = lease_carrying(quiet_world, items, max_jobs=5)
    codes = [outcome.get("code") for outcome in answer["outcomes"]]
    assert codes == [None, "job.lease_lost", "job.not_found", "job.invalid_spec"]
    assert [lease["job"]["id"] for lease in answer["leases"]] == [never]  # the lease still happened
    assert state_of(quiet_world, ran) == "succeeded" and state_of(quiet_world, other) == "queued"


def test_a_malformed_carried_batch_refuses_the_whole_call(quiet_world: World) -> None:
    job_id = quiet_world.submit()["id"]
    response = quiet_world.agent_post("leases", {"max_jobs": 1, "results": [{"job_id": "a/b", "result": result()}]})
    assert response.status_code == 400
    empty = quiet_world.agent_post("leases", {"max_jobs": 1, "results": []})
    assert empty.status_code == 400
    assert state_of(quiet_world, job_id) == "queued"  # nothing was leased by a refused call


def test_a_lease_without_results_still_answers_204_when_empty(quiet_world: World) -> None:
    assert quiet_world.agent_post("leases", {"max_jobs": 3}).status_code == 204


def test_a_lease_carrying_results_checks_each_like_results_does(quiet_world: World) -> None:
    """The one-statement record-and-lease (PostgreSQL) records only what this node may record."""
    ran, refused, never = (quiet_world.submit()["id"] for _ in range(3))
    quiet_world.agent_post("leases", {"max_jobs": 3})
    quiet_world.agent_post("claims", {"claims": [{"job_id": ran}]})
    other = quiet_world.submit(node="trusting")["id"]
    waiting = quiet_world.submit()["id"]
    refusal = result(outcome="refused", exit_code=None, code="authz.denied", reason="no grant")
    items = [
        {"job_id": ran, "result": result()},
        {"job_id": refused, "result": refusal},  # a refusal decided before start: from leased
        {"job_id": never, "result": result()},  # success without a claim
        {"job_id": other, "result": result()},  # another node's job
    ]
    answer = lease_carrying(quiet_world, items, max_jobs=2)
    codes = [outcome.get("code") for outcome in answer["outcomes"]]
    assert codes == [None, None, "job.lease_lost", "job.not_found"]
    assert [lease["job"]["id"] for lease in answer["leases"]] == [waiting]
    states = [state_of(quiet_world, job_id) for job_id in (ran, refused, never, other)]
    assert states == ["succeeded", "refused", "leased", "queued"]
    # The same reports again (an outbox retry): the same answers, nothing recorded twice; a
    # different result for a job that has one is a conflict.
    again = lease_carrying(quiet_world, items[:2])
    assert [outcome["state"] for outcome in again["outcomes"]] == ["succeeded", "refused"]
    changed = lease_carrying(quiet_world, [{"job_id": ran, "result": result(exit_code=5)}])
    assert changed["outcomes"][0]["code"] == "job.result_conflict"
