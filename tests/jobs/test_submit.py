"""POST /api/v1/jobs: roles, validation over HTTP, the minted job token, credentials for the
node's realm, fail-fast realm.untrusted, idempotency keys."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from sqlalchemy import select

from realms.tokens import JOB_TOKEN, verify
from realms.wire.digest import job_digest
from sts.jobs.models import Job, JobIdempotency
from sts.keys.master_key import MasterKeyMismatch
from tests.jobs.conftest import JOHN, World
from tests.sts.fakes import group_id, user_id

pytestmark = pytest.mark.db


def stored(world: World, job_id: str) -> Job:
    with world.services.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def job_count(world: World) -> int:
    with world.services.db.session() as session:
        return len(session.scalars(select(Job.id)).all())


def test_submit_creates_a_queued_job_with_a_signed_bound_job_token(world: World) -> None:
    response = world.client.post(
        "/api/v1/jobs",
        headers=world.as_user("john"),
        json={"node": "node1", "type": "shell", "spec": {"argv": ["/bin/echo", "hi"], "env": {"GREETING": "hello"}}},
    )
    assert response.status_code == 201
    job = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert job["state"] == "queued" and job["submitter"] == str(JOHN) and job["attempts"] == 0
    assert "eyJ" not in response.get_data(as_text=True)  # no token in the answer
    row = stored(world, job["id"])
    token = world.services.master_key.decrypt(row.token_ciphertext, job["id"].encode()).decode()
    assert token.encode() not in row.token_ciphertext
    verified = verify(token, JOB_TOKEN, world.services.keys.trust_resolver(), audience="node1")
    claims = verified.claims
    assert verified.header["typ"] == "job+jwt"
    assert claims["iss"] == "https://sts.test/realms/jobmgr" and claims["realm"] == "jobmgr"
    assert claims["sub"] == str(JOHN) and claims["aud"] == "node1" and claims["job_id"] == job["id"]
    assert set(claims["groups"]) == {str(group_id("jobmgr", "operators")), str(group_id("jobmgr", "ops-all"))}
    assert claims["job_digest"] == job_digest(job["id"], "node1", "shell", job["spec"]) == row.job_digest
    assert claims["jti"] == row.token_jti and claims["exp"] == row.deadline == row.token_exp
    assert claims["nbf"] == row.not_before


def test_the_stored_token_does_not_decrypt_under_another_job_id(world: World) -> None:
    one, two = world.submit(), world.submit()
    row = stored(world, one["id"])
    with pytest.raises(MasterKeyMismatch):
        world.services.master_key.decrypt(row.token_ciphertext, two["id"].encode())


@pytest.mark.parametrize(
    ("username", "status", "code"),
    [
        ("user2", 403, "authz.denied"),  # no role at all
        ("carol", 403, "authz.denied"),  # monitor only
    ],
)
def test_submitting_needs_operator(world: World, username: str, status: int, code: str) -> None:
    response = world.client.post(
        "/api/v1/jobs",
        headers=world.as_user(username),
        json={"node": "node1", "type": "shell", "spec": {"argv": ["/bin/true"]}},
    )
    assert (response.status_code, response.get_json()["code"]) == (status, code)
    assert job_count(world) == 0


def test_submitting_needs_a_token(world: World) -> None:
    response = world.client.post("/api/v1/jobs", json={"node": "node1", "type": "x", "spec": {"argv": ["/bin/true"]}})
    assert response.status_code == 401


def test_an_administrator_may_submit(world: World) -> None:
    assert world.submit("admin")["submitter"] == str(user_id("jobmgr", "admin"))


@pytest.mark.parametrize(
    "extra",
    [
        {"owner": "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"},
        {"groups": ["group:jobmgr/cn=jm-admins,ou=groups,dc=jobmgr,dc=example"]},
        {"exp": 9999999999},
        {"run_as": "root"},
        {"token": "eyJ..."},
    ],
)
def test_identity_fields_over_http_are_refused_and_nothing_is_stored(world: World, extra: dict[str, Any]) -> None:
    body = world.submit("john", 400, None, **extra)
    assert body["code"] == "job.identity_field"
    assert job_count(world) == 0


def test_an_identity_field_inside_the_spec_is_refused(world: World) -> None:
    body = world.submit(expect=400, spec={"argv": ["/bin/id"], "account": "root"})
    assert body["code"] == "job.identity_field"


def test_unknown_node_and_foreign_authgroup(world: World) -> None:
    assert world.submit(expect=404, node="ghost")["code"] == "node.unknown"
    assert world.submit(expect=400, spec={"argv": ["/bin/true"], "authgroup": "other"})["code"] == "job.invalid_spec"
    assert world.submit(spec={"argv": ["/bin/true"], "authgroup": "batch"})["spec"]["authgroup"] == "batch"


def test_a_body_over_the_size_cap_is_refused(world: World) -> None:
    body = world.client.post(
        "/api/v1/jobs",
        headers=world.as_user("john"),
        data=b"{" + b" " * 200_000 + b"}",
        content_type="application/json",
    )
    assert body.status_code == 413


def test_the_deadline_is_capped_by_the_realm_policy(world: World) -> None:
    now = int(time.time())
    job = world.submit(deadline=now + 365 * 86400)
    policy = world.services.config.realms["jobmgr"].token.job_token_max_ttl
    assert now + policy - 5 <= job["deadline"] <= now + policy + 5
    assert stored(world, job["id"]).token_exp == job["deadline"]


def test_bad_times_are_refused(world: World) -> None:
    now = int(time.time())
    assert world.submit(expect=400, deadline=now - 10)["code"] == "job.invalid_spec"
    assert world.submit(expect=400, not_before=now + 100, deadline=now + 50)["code"] == "job.invalid_spec"


def test_fail_fast_when_the_node_does_not_trust_the_callers_realm(world: World) -> None:
    body = world.submit(expect=409, node="cellnode")
    assert body["code"] == "realm.untrusted"
    detail = body["detail"]
    assert "jobmgr" in detail and "cellB" in detail and "cellnode" in detail
    assert "credentials" in detail and "trusted realms" in detail and "import" in detail
    assert job_count(world) == 0


def test_a_node_that_trusts_the_realm_gets_a_token_of_the_callers_realm(world: World) -> None:
    job = world.submit(node="trusting")
    assert (job["realm"], job["subject"]) == ("jobmgr", str(JOHN))


def test_credentials_for_the_nodes_realm_make_that_realm_issue_the_token(world: World) -> None:
    job = world.submit(node="cellnode", credentials={"username": "bob", "password": "bob-password"})
    bob = str(user_id("cellB", "bob"))
    assert (job["submitter"], job["subject"], job["realm"]) == (str(JOHN), bob, "cellB")
    row = stored(world, job["id"])
    token = world.services.master_key.decrypt(row.token_ciphertext, job["id"].encode()).decode()
    claims = verify(token, JOB_TOKEN, world.services.keys.trust_resolver(), audience="cellnode").claims
    assert claims["iss"] == "https://sts.test/realms/cellB" and claims["sub"] == bob
    assert claims["groups"] == sorted([str(group_id("cellB", "cell-all")), str(group_id("cellB", "cell-ops"))])


def test_same_uid_in_another_realm_is_another_identity(world: World) -> None:
    job = world.submit(node="cellnode", credentials={"username": "john", "password": "john-password"})
    assert job["subject"] == str(user_id("cellB", "john")) != job["submitter"]


def test_bad_credentials_and_a_down_directory(world: World) -> None:
    body = world.submit(expect=401, node="cellnode", credentials={"username": "bob", "password": "nope"})
    assert body["code"] == "login.failed" and "cellB" in body["detail"]
    world.services.registries["cellB"].down = True  # type: ignore[attr-defined]
    body = world.submit(expect=503, node="cellnode", credentials={"username": "bob", "password": "bob-password"})
    assert body["code"] == "ldap.unavailable"
    assert job_count(world) == 0


def test_credentials_share_the_login_throttle(world: World) -> None:
    registry = world.services.registries["cellB"]
    factor = world.services.config.throttle.failure_factor
    for _ in range(factor):
        world.submit(expect=401, node="cellnode", credentials={"username": "bob", "password": "guess"})
    calls = len(registry.calls)  # type: ignore[attr-defined]
    locked = world.submit(expect=401, node="cellnode", credentials={"username": "bob", "password": "bob-password"})
    assert locked["code"] == "login.failed"
    assert len(registry.calls) == calls  # type: ignore[attr-defined]  # the directory was not asked
    assert job_count(world) == 0


def _everything_stored(world: World) -> str:
    """Every row of every table, as text (both backends)."""
    from sqlalchemy import MetaData

    metadata = MetaData()
    with world.services.db.engine.connect() as conn:
        metadata.reflect(conn)
        return "\n".join(repr(row) for table in metadata.sorted_tables for row in conn.execute(table.select()))


def test_the_password_is_never_stored_nor_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "Canary-7d1e-pa55word"
    world.submit(node="cellnode", credentials={"username": "bob", "password": canary}, expect=401)
    ok = world.submit(
        node="cellnode",
        credentials={"username": "deployer", "password": "deployer-password"},
        headers={"Idempotency-Key": "canary-1"},
    )
    assert ok["realm"] == "cellB"
    dump = _everything_stored(world)
    assert "uid=deployer" in dump  # the dump does see the job (the check can fail)
    for secret in (canary, "deployer-password"):
        assert secret not in dump
        assert secret not in caplog.text
    if world.services.db.is_sqlite:
        database_file = world.services.db.engine.url.database
        for suffix in ("", "-wal"):
            try:
                with open(f"{database_file}{suffix}", "rb") as handle:
                    raw = handle.read()
            except FileNotFoundError:
                continue
            assert canary.encode() not in raw and b"deployer-password" not in raw


def test_idempotency_key_returns_the_original_job(world: World) -> None:
    first = world.submit(headers={"Idempotency-Key": "retry-1"})
    response = world.client.post(
        "/api/v1/jobs",
        headers={**world.as_user("john"), "Idempotency-Key": "retry-1"},
        json={"node": "node1", "type": "shell", "spec": {"argv": ["/bin/echo", "hi"]}},
    )
    assert response.status_code == 200 and response.headers["Idempotent-Replayed"] == "true"
    assert response.get_json()["id"] == first["id"]
    assert job_count(world) == 1
    conflict = world.submit(expect=409, headers={"Idempotency-Key": "retry-1"}, spec={"argv": ["/bin/false"]})
    assert conflict["code"] == "job.idempotency_conflict"
    # The key is per submitter: another operator's identical key is their own job.
    other = world.submit("user1", headers={"Idempotency-Key": "retry-1"})
    assert other["id"] != first["id"]
    with world.services.db.session() as session:
        assert len(session.scalars(select(JobIdempotency.key)).all()) == 2


def test_a_bad_idempotency_key_is_refused(world: World) -> None:
    assert world.submit(expect=400, headers={"Idempotency-Key": "x" * 300})["code"] == "job.invalid_spec"


def test_history_never_contains_a_token(world: World) -> None:
    job = world.submit()
    listing = world.client.get("/api/v1/jobs", headers=world.as_user("john"))
    shown = world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("john"))
    text = listing.get_data(as_text=True) + shown.get_data(as_text=True)
    row = stored(world, job["id"])
    token = world.services.master_key.decrypt(row.token_ciphertext, job["id"].encode()).decode()
    assert token not in text and "token" not in json.loads(shown.get_data(as_text=True))
