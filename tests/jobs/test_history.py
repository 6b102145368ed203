"""History (monitors see all, others their own, others' jobs are 404) and cancel."""

from __future__ import annotations

import pytest

from authz_tables.roles import Role
from tests.jobs.conftest import JOHN, World
from tests.sts.fakes import user_id

pytestmark = pytest.mark.db


def listing(world: World, username: str, query: str = "") -> list[str]:
    response = world.client.get(f"/api/v1/jobs{query}", headers=world.as_user(username))
    assert response.status_code == 200, response.get_json()
    return [job["id"] for job in response.get_json()["jobs"]]


def test_visibility(world: World) -> None:
    johns = world.submit("john")["id"]
    user1s = world.submit("user1")["id"]
    assert set(listing(world, "carol")) == {johns, user1s}  # monitor: everything
    assert listing(world, "user2") == []  # no role: only their own (none)
    shown = world.client.get(f"/api/v1/jobs/{johns}", headers=world.as_user("user2"))
    assert shown.status_code == 404 and shown.get_json()["code"] == "job.not_found"
    assert world.client.get(f"/api/v1/jobs/{johns}", headers=world.as_user("carol")).status_code == 200
    missing = world.client.get("/api/v1/jobs/00000000-0000-4000-8000-000000000000", headers=world.as_user("carol"))
    assert missing.status_code == 404 and missing.get_json()["code"] == "job.not_found"
    assert world.client.get("/api/v1/jobs/not-a-uuid", headers=world.as_user("carol")).status_code == 404
    assert world.client.get("/api/v1/jobs").status_code == 401


def test_a_caller_without_monitor_sees_only_their_own(world: World) -> None:
    # user2 submits while it holds operator, then loses it: it still sees its own job, no other.
    world.grant(user_id("jobmgr", "user2"), Role.OPERATOR)
    own = world.submit("user2")["id"]
    world.services.authz.revoke(user_id("jobmgr", "user2"), Role.OPERATOR, changed_by="test")
    world.services.authz.refresh()
    johns = world.submit("john")["id"]
    assert listing(world, "user2") == [own]
    assert world.client.get(f"/api/v1/jobs/{johns}", headers=world.as_user("user2")).status_code == 404
    assert world.client.get(f"/api/v1/jobs/{own}", headers=world.as_user("user2")).status_code == 200


def test_filters(world: World) -> None:
    first = world.submit("john")["id"]
    second = world.submit("john", node="trusting")["id"]
    other = world.submit("user1")["id"]
    world.lease()
    assert listing(world, "carol", f"?submitter={JOHN}") == [second, first]
    assert listing(world, "carol", "?node=trusting") == [second]
    assert listing(world, "carol", "?state=leased") == [first]
    assert set(listing(world, "carol", "?state=queued")) == {second, other}
    assert len(listing(world, "carol", "?limit=1")) == 1
    bad = world.client.get("/api/v1/jobs?state=bogus", headers=world.as_user("carol"))
    assert bad.status_code == 400 and bad.get_json()["code"] == "job.invalid_spec"


@pytest.mark.parametrize("limit", ["\u00b2", "\u2460", "\u0661", "-1", "1.5", "", "1234567"])
def test_a_limit_that_is_not_a_whole_number_is_refused(world: World, limit: str) -> None:
    # "²" and "①" are digits to str.isdigit() that int() refuses: once a 500.
    bad = world.client.get("/api/v1/jobs", query_string={"limit": limit}, headers=world.as_user("carol"))
    assert bad.status_code == 400 and bad.get_json()["code"] == "job.invalid_spec", bad.get_json()


def revocations(world: World) -> set[str]:
    response = world.client.get("/api/v1/agent/revocations", headers=world.as_agent())
    return {item["jti"] for item in response.get_json()["revoked"]}


def test_the_submitter_cancels_and_the_token_is_revoked(world: World) -> None:
    job = world.submit()
    before = revocations(world)
    response = world.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=world.as_user("john"))
    assert response.status_code == 200 and response.get_json()["state"] == "cancelled"
    assert len(revocations(world) - before) == 1
    assert world.lease() is None
    again = world.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=world.as_user("john"))
    assert again.status_code == 409 and again.get_json()["code"] == "job.state"


def test_cancelling_a_leased_job_stops_its_start(world: World) -> None:
    job = world.submit()
    world.lease()
    assert world.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=world.as_user("john")).status_code == 200
    start = world.agent_post(f"jobs/{job['id']}/start")
    assert start.status_code == 409 and start.get_json()["code"] == "job.lease_lost"


def test_who_may_cancel(world: World) -> None:
    job = world.submit("john")
    path = f"/api/v1/jobs/{job['id']}/cancel"
    by_operator = world.client.post(path, headers=world.as_user("user1"))
    assert by_operator.status_code == 403 and by_operator.get_json()["code"] == "job.forbidden"
    assert world.client.post(path, headers=world.as_user("carol")).status_code == 403
    assert world.client.post(path, headers=world.as_user("user2")).status_code == 404
    assert world.client.post(path, headers=world.as_user("admin")).status_code == 200


def test_a_running_job_cannot_be_cancelled(world: World) -> None:
    job = world.submit()
    world.lease()
    world.agent_post(f"jobs/{job['id']}/start")
    response = world.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=world.as_user("john"))
    assert response.status_code == 409 and response.get_json()["code"] == "job.state"


@pytest.mark.parametrize("before", ["nan", "inf", "-inf", "1e999", "soon"])
def test_a_before_that_is_not_a_finite_number_is_refused(world: World, before: str) -> None:
    bad = world.client.get("/api/v1/jobs", query_string={"before": before}, headers=world.as_user("carol"))
    assert bad.status_code == 400 and bad.get_json()["detail"] == "before: must be a number", bad.get_json()
